"""structlog set up for Lambda: one JSON object per line, personal data never written."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from contextlib import AbstractContextManager
from typing import Any, TextIO

import structlog

# Fields that would carry personal data; whatever logs them, the value never leaves the process.
PERSONAL_FIELDS = frozenset({"recipient", "subject", "body", "payload", "metadata", "envelope"})
REDACTED = "[redacted]"
# The level configure_logging set; NOTSET until then (structlog's defaults write every level).
_configured = {"level": logging.NOTSET}
_warned: set[str] = set()  # the events warn_once has written in this process


def redact_personal_data(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace the value of any personal-data field, however it got into the event."""
    for name in PERSONAL_FIELDS.intersection(event_dict):
        event_dict[name] = REDACTED
    return event_dict


def configure_logging(stream: TextIO | None = None, level: str | None = None) -> None:
    """JSON logs to ``stream`` (stdout by default) at ``level`` (``LOG_LEVEL``, default INFO)."""
    name = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    _configured["level"] = logging.getLevelNamesMapping().get(name, logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_personal_data,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_configured["level"]),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )


def debug_enabled() -> bool:
    """Whether DEBUG lines are written.

    A per-message path asks before logging: a module logger is a lazy proxy that builds a bound
    logger on every call, even for a level that is filtered out.
    """
    return _configured["level"] <= logging.DEBUG


def invocation_context(aws_request_id: str | None, **context: Any) -> AbstractContextManager[Any]:
    """Bind one invocation's context for its duration, then restore what was bound before.

    For handlers that run in someone else's process (``make_handler``): their own context
    (a ``correlation_id``) stays bound, and nothing of the invocation outlives it.
    """
    return structlog.contextvars.bound_contextvars(aws_request_id=aws_request_id, **context)


def bind_invocation(aws_request_id: str | None, **context: Any) -> None:
    """Start a fresh log context for one Lambda invocation (the deployed entry points: they own the process)."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(aws_request_id=aws_request_id, **context)


def warn_once(event: str, **fields: Any) -> None:
    """Log a warning the first time ``event`` happens in this process, and never again.

    For a fault that repeats with every message (a caller's malformed trace header): one line
    says it, rather than one per message.
    """
    if event in _warned:
        return
    _warned.add(event)
    structlog.get_logger("outbox").warning(event, **fields)
