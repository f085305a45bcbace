"""The one exception tree of the outbox: every error has a stable ``code`` and a ``retryable`` flag.

Adapters translate botocore and PynamoDB errors into these at the edge, so the core and the
handlers never see a ``ClientError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from outbox.domain.cancellation import CancellationReason, ItemPart
    from outbox.domain.status import Status


class OutboxError(Exception):
    """Root of every error this library raises."""

    code: ClassVar[str] = "SYSTEM_ERROR"
    default_retryable: ClassVar[bool] = False

    def __init__(self, detail: str, *, retryable: bool | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retryable = self.default_retryable if retryable is None else retryable


class ConfigurationError(OutboxError):
    """A required setting is missing or malformed; raised at start, never per request."""

    code = "CONFIGURATION_ERROR"


class PackageError(OutboxError):
    """A Lambda package cannot be built as asked (``outbox package``): what is wrong and how to fix it."""

    code = "PACKAGE_ERROR"


@dataclass(frozen=True)
class FieldError:
    """One rejected field of a request: where (a dotted path) and why."""

    field: str
    reason: str


class ValidationError(OutboxError):
    """Not a valid message; ``errors`` says which fields (arguments, or paths in the payload) and why."""

    code = "VALIDATION_ERROR"

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = tuple(errors)
        self.summary = "; ".join(f"{e.field}: {e.reason}" for e in self.errors)
        super().__init__(f"invalid message: {self.summary}")


class NotFoundError(OutboxError):
    """No such route or no such message."""

    code = "NOT_FOUND"


class IdempotencyKeyReusedError(OutboxError):
    """An Idempotency-Key was sent again with a different payload."""

    code = "IDEMPOTENCY_KEY_REUSED"

    def __init__(self, message_id: str | None) -> None:
        super().__init__("this Idempotency-Key was already used with a different payload")
        self.message_id = message_id  # the caller's own message; None when it is not theirs to know


class InvalidTransitionError(OutboxError):
    """A status change lost its condition: the record is missing or in another status."""

    code = "INVALID_TRANSITION"

    def __init__(self, message_id: str, *, current: Status | None, to: Status, lease_until: str | None = None) -> None:
        state = current.value if current is not None else "missing"
        super().__init__(f"message {message_id} cannot move to {to.value} from {state}")
        self.message_id = message_id
        self.current = current
        self.to = to
        self.lease_until = lease_until  # while PROCESSING: until when another receive holds the lease


class MalformedEntryError(OutboxError):
    """A stored outbox entry or SQS body cannot be read: poison, never retried."""

    code = "MALFORMED_ENTRY"

    def __init__(self, detail: str, *, message_id: str | None = None) -> None:
        super().__init__(detail)
        self.message_id = message_id


# Cancellation codes that pass: the same transaction may succeed when sent again.
RETRYABLE_CANCELLATIONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})


class TransactionCancelledError(OutboxError):
    """DynamoDB cancelled the whole transaction, so nothing was written; ``reasons`` names each failed item."""

    code = "TRANSACTION_CANCELLED"

    def __init__(self, reasons: Sequence[CancellationReason]) -> None:
        self.reasons = tuple(reasons)
        codes = {r.code for r in self.reasons}
        retryable = bool(codes) and codes <= RETRYABLE_CANCELLATIONS
        summary = "; ".join(r.describe() for r in self.reasons) or "no reason given"
        hint = " (a conflict: send the same transaction again)" if retryable else ""
        super().__init__(f"transaction cancelled, nothing written: {summary}{hint}", retryable=retryable)

    @property
    def duplicate_message_ids(self) -> tuple[str, ...]:
        """Messages whose record already existed: their message_id was written before."""
        from outbox.domain.cancellation import ItemPart  # noqa: PLC0415 - loaded by the first cancellation

        return tuple(
            r.message_id
            for r in self.reasons
            if r.part is ItemPart.RECORD and r.code == "ConditionalCheckFailed" and r.message_id
        )


class DeliveryError(OutboxError):
    """Raised by a delivery function: retried by default; ``retryable=False`` fails the message for good."""

    code = "DELIVERY_FAILED"
    default_retryable = True

    def __init__(self, detail: str = "the delivery failed", *, retryable: bool | None = None) -> None:
        super().__init__(detail, retryable=retryable)


class ThrottledError(OutboxError):
    """AWS throttled us: retry later."""

    code = "THROTTLED"
    default_retryable = True


class AwsError(OutboxError):
    """Any other AWS fault; ``retryable`` tells a passing fault (5xx, timeout) from a lasting one."""

    code = "SYSTEM_ERROR"


__all__ = [
    "RETRYABLE_CANCELLATIONS",
    "AwsError",
    "CancellationReason",
    "ConfigurationError",
    "DeliveryError",
    "FieldError",
    "IdempotencyKeyReusedError",
    "InvalidTransitionError",
    "ItemPart",
    "MalformedEntryError",
    "NotFoundError",
    "OutboxError",
    "PackageError",
    "ThrottledError",
    "TransactionCancelledError",
    "ValidationError",
]


def __getattr__(name: str) -> Any:
    """``CancellationReason`` and ``ItemPart``, from ``outbox.domain.cancellation``, where they live.

    A transaction's cancellation is the one place they are made: a function that never sees one
    (the worker, the consumer) never creates their classes (bench/RESULTS.md, "Cold start").
    """
    if name in ("CancellationReason", "ItemPart"):
        from outbox.domain import cancellation  # noqa: PLC0415 - on first use

        return getattr(cancellation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names, the two served from ``outbox.domain.cancellation`` included."""
    return sorted({*globals(), "CancellationReason", "ItemPart"})
