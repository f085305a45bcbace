"""Trace context: the X-Ray trace header a message carries from its writer to its consumer.

A message keeps its writer's trace context as an X-Ray trace header
(``Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1``): the relay sends it
to SQS as the ``AWSTraceHeader`` system attribute, so X-Ray links the consumer's invocation to the
writer's trace, and the consumer binds it to its log lines. A W3C ``traceparent``
(``00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>``) becomes the same header, as X-Ray reads
W3C trace ids: the trace id's first 8 digits, then the other 24. Anything else is no trace context:
a trace is a hint, never a reason to refuse or hold back a message, so a malformed value is dropped.
"""

from __future__ import annotations

import os
import re

# The Lambda runtime's trace header of the current invocation (X-Ray's, whether or not tracing is active).
LAMBDA_TRACE_ENV = "_X_AMZN_TRACE_ID"
# What a header may hold: Root, Parent, Sampled, and Lambda's Lineage (its recursion check reads it).
# A few dozen characters in practice; a bound keeps a caller's header from growing the record.
MAX_TRACE_HEADER_CHARS = 256
_ROOT = re.compile(r"1-[0-9a-f]{8}-[0-9a-f]{24}")
_PARENT = re.compile(r"[0-9a-f]{16}")
_SAMPLED = re.compile(r"[01?]")
_LINEAGE = re.compile(r"[0-9A-Za-z:]{1,64}")
_FIELDS = {"Root": _ROOT, "Parent": _PARENT, "Sampled": _SAMPLED, "Lineage": _LINEAGE}
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def trace_header(value: object) -> str | None:
    """``value`` (an X-Ray trace header or a W3C traceparent) as an X-Ray trace header; None if it is neither.

    An X-Ray header keeps its Root, Parent, Sampled and Lineage fields, in that order, and loses
    any other (``Self``, an application's own); a field with a malformed value makes the whole
    header malformed, as does a header without a Root.
    """
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TRACE_HEADER_CHARS:
        return None
    text = value.strip()
    parent = _TRACEPARENT.fullmatch(text)
    if parent is not None:
        return _from_traceparent(*parent.groups())
    fields: dict[str, str] = {}
    for part in text.split(";"):
        name, equals, field = part.partition("=")
        if not equals or name in fields:
            return None
        pattern = _FIELDS.get(name)
        if pattern is None:
            continue
        if not pattern.fullmatch(field):
            return None
        fields[name] = field
    if "Root" not in fields:
        return None
    return ";".join(f"{name}={fields[name]}" for name in _FIELDS if name in fields)


def current_trace_header() -> str | None:
    """The trace header of this Lambda invocation (``_X_AMZN_TRACE_ID``), if there is a valid one."""
    return trace_header(os.environ.get(LAMBDA_TRACE_ENV))


def _from_traceparent(version: str, trace_id: str, parent_id: str, flags: str) -> str | None:
    """A W3C traceparent's X-Ray header; None for the version the spec forbids or an all-zero id."""
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    sampled = int(flags, 16) & 1
    return f"Root=1-{trace_id[:8]}-{trace_id[8:]};Parent={parent_id};Sampled={sampled}"
