"""A transactional outbox for DynamoDB: accept atomically, relay through the stream, flip conditionally."""

from outbox.domain.envelope import Envelope
from outbox.domain.errors import (
    AwsError,
    ConfigurationError,
    FieldError,
    IdempotencyKeyReusedError,
    InvalidTransitionError,
    MalformedEntryError,
    NotFoundError,
    OutboxError,
    ThrottledError,
    ValidationError,
)
from outbox.domain.message import Channel, Notification, parse_notification
from outbox.domain.record import AcceptResult, HistoryEntry, MessageRecord, TransitionResult
from outbox.domain.status import TRANSITIONS, Status

__version__ = "0.1.0"

__all__ = [
    "TRANSITIONS",
    "AcceptResult",
    "AwsError",
    "Channel",
    "ConfigurationError",
    "Envelope",
    "FieldError",
    "HistoryEntry",
    "IdempotencyKeyReusedError",
    "InvalidTransitionError",
    "MalformedEntryError",
    "MessageRecord",
    "NotFoundError",
    "Notification",
    "OutboxError",
    "Status",
    "ThrottledError",
    "TransitionResult",
    "ValidationError",
    "parse_notification",
]
