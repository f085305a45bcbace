"""A transactional outbox for DynamoDB: accept atomically, relay through the stream, flip conditionally.

``Outbox`` adds a message to your own ``TransactWriteItems``; the rest of the package relays,
consumes and replays it. Your consumer: ``outbox.consumer.make_handler``. The notification API, the
reference application, is ``outbox.notifications``.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from outbox._outbox import Outbox
    from outbox.adapters.store import OutboxMessage
    from outbox.domain.envelope import Envelope
    from outbox.domain.errors import (
        AwsError,
        CancellationReason,
        ConfigurationError,
        DeliveryError,
        FieldError,
        IdempotencyKeyReusedError,
        InvalidTransitionError,
        MalformedEntryError,
        NotFoundError,
        OutboxError,
        ThrottledError,
        TransactionCancelledError,
        ValidationError,
    )
    from outbox.domain.id_secret import IdSecret
    from outbox.domain.record import HistoryEntry, MessageRecord
    from outbox.domain.results import AcceptResult, TransitionResult
    from outbox.domain.status import Status

__version__ = "0.1.0"

# Every name is imported when first asked for: a Lambda handler imports ``outbox.<module>``, which
# runs this file first, and needs neither the library's front door nor the modules behind it (each
# of their dataclasses costs a cold start time: bench/RESULTS.md, "Cold start").
_LAZY = {
    "Outbox": "outbox._outbox",
    "OutboxMessage": "outbox.adapters.store",
    "Envelope": "outbox.domain.envelope",
    "IdSecret": "outbox.domain.id_secret",
    "Status": "outbox.domain.status",
    **dict.fromkeys(("HistoryEntry", "MessageRecord"), "outbox.domain.record"),
    **dict.fromkeys(("AcceptResult", "TransitionResult"), "outbox.domain.results"),
    **dict.fromkeys(
        (
            "AwsError",
            "CancellationReason",
            "ConfigurationError",
            "DeliveryError",
            "FieldError",
            "IdempotencyKeyReusedError",
            "InvalidTransitionError",
            "MalformedEntryError",
            "NotFoundError",
            "OutboxError",
            "ThrottledError",
            "TransactionCancelledError",
            "ValidationError",
        ),
        "outbox.domain.errors",
    ),
}


def __getattr__(name: str) -> Any:
    """The public names, each imported on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'outbox' has no attribute {name!r}")
    import importlib  # noqa: PLC0415 - only for the lazy names

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the lazy ones included."""
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AcceptResult",
    "AwsError",
    "CancellationReason",
    "ConfigurationError",
    "DeliveryError",
    "Envelope",
    "FieldError",
    "HistoryEntry",
    "IdSecret",
    "IdempotencyKeyReusedError",
    "InvalidTransitionError",
    "MalformedEntryError",
    "MessageRecord",
    "NotFoundError",
    "Outbox",
    "OutboxError",
    "OutboxMessage",
    "Status",
    "ThrottledError",
    "TransactionCancelledError",
    "TransitionResult",
    "ValidationError",
]
