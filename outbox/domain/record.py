"""The stored state of a message and where its items live in the table."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from outbox.domain.status import Status

RECORD_SK = "MSG"
RECORD_PREFIX = "MSG#"
OUTBOX_PREFIX = "OUTBOX#"


def utc_now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


def iso(at: datetime) -> str:
    """ISO 8601 with milliseconds and a Z: sorts as text in time order."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" -> "Z"


def record_pk(message_id: str) -> str:
    """Partition key of a message record."""
    return f"{RECORD_PREFIX}{message_id}"


def bucket_of(ordering_key: str, buckets: int) -> int:
    """Stable bucket of a group key (or message id): one group, one bucket, so order is kept."""
    digest = hashlib.sha256(ordering_key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % buckets


def outbox_pk(bucket: int) -> str:
    """Partition key of an outbox bucket."""
    return f"{OUTBOX_PREFIX}{bucket:04d}"


def outbox_sk(created_at: str, message_id: str) -> str:
    """Time-ordered sort key of an outbox entry: replay queries a bucket by time range."""
    return f"{created_at}#{message_id}"


# The two helpers below are the only code that reads time out of a sort key: change them with outbox_sk.
def outbox_sk_floor(at: datetime) -> str:
    """The lowest sort key of an entry created at ``at``: every entry created earlier sorts below it."""
    return iso(at)


def outbox_sk_time(sk: str) -> datetime:
    """When the entry at sort key ``sk`` was created (the key's leading time)."""
    return datetime.fromisoformat(sk.partition("#")[0])


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a record's audit trail."""

    status: Status
    at: str
    by: str
    reason: str | None = None


@dataclass(frozen=True)
class Lease:
    """Who holds a message in PROCESSING, and until when (an ISO time, as every time in a record)."""

    owner: str
    until: str


@dataclass(frozen=True)
class MessageRecord:
    """A message's current status and history, as stored, with its type and payload."""

    message_id: str
    status: Status
    payload_hash: str
    created_at: str
    updated_at: str
    history: tuple[HistoryEntry, ...]
    type: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    group_key: str | None = None
    attempts: int = 0
    relay_attempts: int = 0
    reason: str | None = None
    lease: Lease | None = None
    owner: str | None = None  # a keyed hash of the principal that wrote it (``IdKey.owner``); None: unscoped
    expires_at: int | None = None  # once COMPLETED or FAILED: when the table's TTL removes it (epoch seconds)
    # Ended under a lease: that lease's owner, so a retried end recognises its own effect (the lease is gone).
    ended_lease_owner: str | None = None


@dataclass(frozen=True)
class AcceptResult:
    """What ``accept`` did: a new message, or the existing one for a repeated Idempotency-Key."""

    message_id: str
    status: Status
    created: bool


@dataclass(frozen=True)
class TransitionResult:
    """A status change that won its condition; ``attempts`` after PROCESSING (+1) or QUEUED (reset), else 0.

    ``repeated``: the change had taken effect on an earlier try whose answer was lost (a timeout,
    a 500), and this try found the writer's own effect: the change happened once, and is this one.
    """

    message_id: str
    previous: Status
    status: Status
    attempts: int
    repeated: bool = False
