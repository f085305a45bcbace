"""Trace context: X-Ray headers and W3C traceparents become one X-Ray header; anything else is no trace."""

from __future__ import annotations

import pytest

from outbox.domain.trace import LAMBDA_TRACE_ENV, current_trace_header, trace_header

ROOT = "Root=1-5759e988-bd862e3fe1be46a994272793"
XRAY = f"{ROOT};Parent=53995c3f42cd8ad8;Sampled=1"


@pytest.mark.parametrize(
    ("value", "header"),
    [
        (XRAY, XRAY),
        (ROOT, ROOT),  # what API Gateway puts in X-Amzn-Trace-Id: a Root alone
        (f"Sampled=0;Parent=53995c3f42cd8ad8;{ROOT}", f"{ROOT};Parent=53995c3f42cd8ad8;Sampled=0"),
        (f"{XRAY};Lineage=a87bd80c:1", f"{XRAY};Lineage=a87bd80c:1"),  # Lambda's recursion check reads it
        (f"Self=1-67891233-12456789abcdef012345678;{ROOT};CalledFrom=app", ROOT),  # ALB's and an app's own
        (f"{ROOT};Sampled=?", f"{ROOT};Sampled=?"),
        (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=b7ad6b7169203331;Sampled=1",
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-02",
            "Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=b7ad6b7169203331;Sampled=0",
        ),
    ],
)
def test_a_trace_header_or_a_traceparent_becomes_an_x_ray_header(value: str, header: str) -> None:
    """Root, Parent, Sampled and Lineage kept in that order; a traceparent's trace id split as X-Ray reads it."""
    assert trace_header(value) == header


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "t-1",
        "req-id-1234",
        "Root=1-xyz",
        "Parent=53995c3f42cd8ad8;Sampled=1",  # no Root
        f"{ROOT};Parent=53995C3F42CD8AD8",  # X-Ray ids are lowercase hex
        f"{ROOT};Parent=53995c3f42cd8ad8;Sampled=yes",
        f"{ROOT};{ROOT}",
        f"{ROOT};Lineage=" + "1" * 65,
        f"{ROOT};Other=" + "x" * 300,  # over 256 characters
        f"{ROOT}\n;Sampled=1",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # the version W3C forbids
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        12,
    ],
)
def test_anything_else_is_no_trace(value: object) -> None:
    """A malformed value is None: never sent as AWSTraceHeader, which must be a well-formed X-Ray header."""
    assert trace_header(value) is None


def test_the_current_trace_is_this_lambda_invocations(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_X_AMZN_TRACE_ID`` (set by the Lambda runtime per invocation) is the current trace, when valid."""
    monkeypatch.setenv(LAMBDA_TRACE_ENV, f"{XRAY};Lineage=a87bd80c:1")
    assert current_trace_header() == f"{XRAY};Lineage=a87bd80c:1"
    monkeypatch.setenv(LAMBDA_TRACE_ENV, "garbage")
    assert current_trace_header() is None
    monkeypatch.delenv(LAMBDA_TRACE_ENV)
    assert current_trace_header() is None
