"""A transactional outbox for DynamoDB: accept atomically, relay through the stream, flip conditionally.

``Outbox`` adds a message to your own ``TransactWriteItems``; the rest of the package relays,
consumes and replays it.
"""

from typing import TYPE_CHECKING, Any

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
from outbox.domain.message import IdSecret
from outbox.domain.record import AcceptResult, HistoryEntry, MessageRecord, TransitionResult
from outbox.domain.status import TRANSITIONS, Status

if TYPE_CHECKING:
    from outbox._outbox import Outbox
    from outbox.adapters.store import OutboxMessage
    from outbox.domain.notification import Channel, Notification, parse_notification

__version__ = "0.1.0"

# Imported when first asked for: a Lambda handler imports ``outbox.<module>``, which runs this
# file, and needs neither the library's front door nor the reference application's rules.
_LAZY = {
    "Outbox": "outbox._outbox",
    "OutboxMessage": "outbox.adapters.store",
    "Channel": "outbox.domain.notification",
    "Notification": "outbox.domain.notification",
    "parse_notification": "outbox.domain.notification",
}


def __getattr__(name: str) -> Any:
    """``Outbox``, ``OutboxMessage`` and the notification names, imported on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'outbox' has no attribute {name!r}")
    import importlib  # noqa: PLC0415 - only for the lazy names

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "TRANSITIONS",
    "AcceptResult",
    "AwsError",
    "CancellationReason",
    "Channel",
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
    "Notification",
    "Outbox",
    "OutboxError",
    "OutboxMessage",
    "Status",
    "ThrottledError",
    "TransactionCancelledError",
    "TransitionResult",
    "ValidationError",
    "parse_notification",
]
