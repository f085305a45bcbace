"""The outbox's logging: structlog's API, one JSON object per line, personal data never written.

The outbox's modules log through ``get_logger(name)``. In a process that ``configure_logging`` set
up (a deployed function, the CLI, the local stack) and where nothing has imported structlog, a line
is written here, the same JSON object structlog's pipeline below writes (a test holds the two
equal), without importing structlog: its import pulls in asyncio, a tenth of a handler's cold start
(bench/RESULTS.md, "Cold start"). Once something in the process imports structlog (your delivery
function, a test capturing lines), every line goes through structlog, set up with that pipeline
unless you configured it yourself. In someone else's process (``Outbox``, ``make_handler``),
where ``configure_logging`` never runs, every line goes through structlog as that process set it.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TextIO

# Fields that would carry personal data; whatever logs them, the value never leaves the process.
PERSONAL_FIELDS = frozenset({"recipient", "subject", "body", "payload", "metadata", "envelope"})
REDACTED = "[redacted]"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
# The invocation's bound fields, for the lines written here (structlog keeps its own: both are bound).
_CONTEXT: ContextVar[Mapping[str, Any]] = ContextVar("outbox_log_context", default=MappingProxyType({}))
_WRITE_LOCK = threading.Lock()
_warned: set[str] = set()  # the events warn_once has written in this process


@dataclass
class _Setup:
    """What ``configure_logging`` set: NOTSET and unconfigured until it runs (structlog's defaults then)."""

    configured: bool = False
    level: int = logging.NOTSET
    stream: TextIO | None = None  # None: the current sys.stdout, as structlog's PrintLogger does
    structlog_set_up: bool = False


_setup = _Setup()


def redact_personal_data(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace the value of any personal-data field, however it got into the event."""
    for name in PERSONAL_FIELDS.intersection(event_dict):
        event_dict[name] = REDACTED
    return event_dict


def configure_logging(stream: TextIO | None = None, level: str | None = None) -> None:
    """JSON logs to ``stream`` (stdout by default) at ``level`` (``LOG_LEVEL``, default INFO)."""
    name = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    _setup.configured = True
    _setup.level = logging.getLevelNamesMapping().get(name, logging.INFO)
    _setup.stream = stream if stream is not sys.stdout else None
    _setup.structlog_set_up = False
    if "structlog" in sys.modules:  # already in the process: set up now, as before this module wrote lines
        _set_up_structlog(force=True)


def configure_structlog_if_imported() -> None:
    """Set up structlog with this module's pipeline if something (your delivery's module) imported it meanwhile."""
    if _setup.configured and not _setup.structlog_set_up and "structlog" in sys.modules:
        _set_up_structlog(force=False)


def _set_up_structlog(*, force: bool) -> None:
    """Structlog configured as the lines written here are (unless someone else configured it, when not ``force``)."""
    import structlog  # noqa: PLC0415 - only once something in the process uses structlog

    _setup.structlog_set_up = True
    if not force and structlog.is_configured():  # your own set-up, made after the function's: yours stays
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_personal_data,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_setup.level),
        logger_factory=structlog.PrintLoggerFactory(_setup.stream or sys.stdout),
        cache_logger_on_first_use=False,
    )
    if not force:  # the invocation under way keeps its fields on the lines structlog writes from now on
        structlog.contextvars.bind_contextvars(**_CONTEXT.get())


def _via_structlog() -> bool:
    """Whether lines go through structlog: a process this module did not set up, or one that imported it."""
    if not _setup.configured:
        return True
    if "structlog" not in sys.modules:
        return False
    configure_structlog_if_imported()
    return True


class Logger:
    """A module's logger: structlog's methods (``log.info("message_queued", message_id=...)``), routed per line."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def debug(self, event: str, **fields: Any) -> None:
        """A DEBUG line."""
        self._log("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        """An INFO line."""
        self._log("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        """A WARNING line."""
        self._log("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        """An ERROR line."""
        self._log("error", event, fields)

    def _log(self, method: str, event: str, fields: dict[str, Any]) -> None:
        if _via_structlog():
            import structlog  # noqa: PLC0415 - imported already, or a guest's process that uses it

            getattr(structlog.get_logger(self._name), method)(event, **fields)
        elif _LEVELS[method] >= _setup.level:
            _write(method, event, fields)


def get_logger(name: str) -> Logger:
    """The logger of the outbox's module ``name``."""
    return Logger(name)


def _write(method: str, event: str, fields: Mapping[str, Any]) -> None:
    """One line, as structlog's pipeline of ``_set_up_structlog`` renders it."""
    event_dict: dict[str, Any] = {**_CONTEXT.get(), **fields, "event": event, "level": method}
    event_dict["timestamp"] = datetime.datetime.now(tz=datetime.UTC).isoformat().replace("+00:00", "Z")
    redact_personal_data(None, method, event_dict)
    line = json.dumps(event_dict, default=_fallback, sort_keys=True)
    with _WRITE_LOCK:
        print(line, file=_setup.stream, flush=True)


def _fallback(value: Any) -> Any:
    """What structlog's JSONRenderer writes for a value JSON has no type for: its ``__structlog__()``, else repr."""
    render = getattr(value, "__structlog__", None)
    return render() if callable(render) else repr(value)


def debug_enabled() -> bool:
    """Whether DEBUG lines are written.

    A per-message path asks before logging: a module logger is a lazy proxy that builds a bound
    logger on every call, even for a level that is filtered out.
    """
    return _setup.level <= logging.DEBUG


def invocation_context(aws_request_id: str | None, **context: Any) -> AbstractContextManager[Any]:
    """Bind one invocation's context for its duration, then restore what was bound before.

    For handlers that run in someone else's process (``make_handler``): their own context
    (a ``correlation_id``) stays bound, and nothing of the invocation outlives it.
    """
    return _bound(aws_request_id=aws_request_id, **context)


@contextlib.contextmanager
def _bound(**fields: Any) -> Iterator[None]:
    token = _CONTEXT.set(MappingProxyType({**_CONTEXT.get(), **fields}))
    try:
        if _via_structlog():
            import structlog  # noqa: PLC0415 - imported already, or a guest's process that uses it

            with structlog.contextvars.bound_contextvars(**fields):
                yield
        else:
            yield
    finally:
        _CONTEXT.reset(token)


def bind_invocation(aws_request_id: str | None, **context: Any) -> None:
    """Start a fresh log context for one Lambda invocation (the deployed entry points: they own the process)."""
    _CONTEXT.set(MappingProxyType({"aws_request_id": aws_request_id, **context}))
    # structlog's own context too, if it is imported (set up later, it takes this one over)
    if "structlog" in sys.modules and _via_structlog():
        import structlog  # noqa: PLC0415 - imported already

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
    get_logger("outbox").warning(event, **fields)


def log_context(**fields: Any) -> AbstractContextManager[Any]:
    """Bind ``fields`` to the lines written in a block, then restore what was bound before (a copy's trace)."""
    return _bound(**fields)
