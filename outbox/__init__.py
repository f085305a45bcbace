"""A transactional outbox for DynamoDB: accept atomically, relay through the stream, flip conditionally.

``Outbox`` adds a message to your own ``TransactWriteItems``; the rest of the package relays,
consumes and replays it.
"""

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
from outbox.domain.message import IdSecret
from outbox.domain.notification import Channel, Notification, parse_notification
from outbox.domain.record import AcceptResult, HistoryEntry, MessageRecord, TransitionResult
from outbox.domain.status import TRANSITIONS, Status

__version__ = "0.1.0"

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
