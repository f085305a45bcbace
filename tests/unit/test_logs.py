"""A deployed function's lines without structlog: the JSON structlog's pipeline writes; structlog's once imported."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from outbox.logs import bind_invocation, configure_logging, get_logger, invocation_context

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Opaque:
    """A value JSON has no type for: both routes write its repr."""

    def __repr__(self) -> str:
        return "<opaque>"


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    for line in lines:
        assert ISO_UTC.match(line.pop("timestamp"))
    return lines


def _log_a_bit() -> None:
    bind_invocation("req-1", handler="worker")
    log = get_logger("outbox.test")
    log.debug("not_written", message_id="m0")
    log.info("message_queued", message_id="m1", recipient="ada@example.com", size=3, extra=Opaque())
    with invocation_context("req-2", attempt=2):
        log.warning("delivery_retried", payload={"body": "secret"}, aws_request_id="overridden")
    log.error("relay_failed", reason=None, ids=["a", "b"])


@pytest.fixture
def structlog_reset() -> Iterator[None]:
    """Afterwards, structlog's defaults and no bound context (conftest's configure_logging sets it up again)."""
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def test_without_structlog_the_lines_are_those_structlog_writes(
    monkeypatch: pytest.MonkeyPatch, structlog_reset: None
) -> None:
    """The same calls, once through structlog and once with structlog not imported: the same JSON lines."""
    # GIVEN the deployed functions' set-up in a process that has structlog imported
    through_structlog = io.StringIO()
    configure_logging(through_structlog, level="INFO")
    _log_a_bit()

    # WHEN structlog is not imported (as in a deployed function's cold start)
    monkeypatch.delitem(sys.modules, "structlog")
    written_here = io.StringIO()
    configure_logging(written_here, level="INFO")
    _log_a_bit()

    # THEN every line is the same, personal data redacted on both routes
    expected = _lines(through_structlog)
    assert _lines(written_here) == expected
    assert [line["event"] for line in expected] == ["message_queued", "delivery_retried", "relay_failed"]
    assert expected[0] == {
        "aws_request_id": "req-1",
        "event": "message_queued",
        "extra": "<opaque>",
        "handler": "worker",
        "level": "info",
        "message_id": "m1",
        "recipient": "[redacted]",
        "size": 3,
    }
    assert expected[1]["aws_request_id"] == "overridden"
    assert expected[1]["attempt"] == 2
    assert expected[1]["payload"] == "[redacted]"
    assert "attempt" not in expected[2]  # the invocation_context ended


def test_structlog_imported_later_is_set_up_with_the_invocations_fields(
    monkeypatch: pytest.MonkeyPatch, structlog_reset: None
) -> None:
    """A delivery module imports structlog: its lines and the outbox's go through it, with the invocation's fields."""
    # GIVEN a deployed function set up before anything imported structlog, in an invocation
    module = sys.modules["structlog"]
    monkeypatch.delitem(sys.modules, "structlog")
    out = io.StringIO()
    configure_logging(out, level="INFO")
    bind_invocation("req-9", handler="consumer")
    get_logger("outbox.test").info("before")

    # WHEN structlog is imported (unconfigured) and logged with
    structlog.reset_defaults()
    monkeypatch.setitem(sys.modules, "structlog", module)
    get_logger("outbox.test").info("after")
    structlog.get_logger("shop").info("delivered", recipient="ada@example.com")

    # THEN all three are JSON lines with the invocation's fields, personal data redacted
    lines = _lines(out)
    assert [line["event"] for line in lines] == ["before", "after", "delivered"]
    assert {line["aws_request_id"] for line in lines} == {"req-9"}
    assert lines[2]["recipient"] == "[redacted]"


def test_structlog_configured_by_your_code_stays_yours(monkeypatch: pytest.MonkeyPatch, structlog_reset: None) -> None:
    """Your module configured structlog after the function's set-up: the outbox's lines follow your processors."""
    module = sys.modules["structlog"]
    monkeypatch.delitem(sys.modules, "structlog")
    configure_logging(io.StringIO(), level="INFO")
    captured: list[dict[str, Any]] = []

    def capture(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        captured.append(dict(event_dict))
        raise structlog.DropEvent

    monkeypatch.setitem(sys.modules, "structlog", module)
    structlog.reset_defaults()  # a process whose structlog only your code configures
    structlog.configure(processors=[capture])
    get_logger("outbox.test").info("message_queued", message_id="m1")

    assert captured == [{"event": "message_queued", "message_id": "m1"}]
