"""Where a message's items live in the table: their keys, the times in them, a copy's deduplication id.

The only code that builds or reads an item's key (the layout's builders call these). Pure
functions and constants, no classes: every function imports them, and none pays for the values
the others read (``record.py``, ``results.py``).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

RECORD_SK = "MSG"
RECORD_PREFIX = "MSG#"
OUTBOX_PREFIX = "OUTBOX#"
# Records in flight (QUEUED, PROCESSING) sit in the record index under these partitions, spread by
# message id. A fixed count, unlike the outbox's buckets: every writer and the sweeper agree on it
# whatever their settings say. Never change it: records written under another count go unread.
IN_FLIGHT_PREFIX = "SENT#"
IN_FLIGHT_PARTITIONS = 16


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


# outbox_sk and the helpers below are the only code that builds or reads a sort key: change them together.
def outbox_sk(created_at: str, message_id: str, sequence: str | None = None) -> str:
    """Sort key of an outbox entry (and of its record in the record index): time, then write order, then id.

    ``<created_at>#<sequence>#<message_id>``: sorted as text, oldest first, and one writer's
    messages of one millisecond in the order they were made (``domain/clock.py``); replay queries
    a bucket by time range on its ``created_at`` prefix. Without a ``sequence``:
    ``<created_at>#<message_id>``, which sorts by time just the same: the key of the entries
    0.1.0 wrote, and of a record in flight in the record index (the time it went in flight).
    """
    return f"{created_at}#{message_id}" if sequence is None else f"{created_at}#{sequence}#{message_id}"


def outbox_sk_floor(at: datetime) -> str:
    """The lowest sort key of an entry created at ``at``: every entry created earlier sorts below it."""
    return iso(at)


def outbox_sk_created_at(sk: str) -> str:
    """The ``created_at`` a sort key starts with (either format), as text."""
    return sk.partition("#")[0]


def outbox_sk_time(sk: str) -> datetime:
    """When the entry at sort key ``sk`` was created (the key's leading time); ValueError if it holds no zoned time."""
    at = datetime.fromisoformat(outbox_sk_created_at(sk))
    if at.tzinfo is None:
        raise ValueError(f"no time zone in sort key {sk!r}")
    return at


def outbox_sk_sequence(sk: str) -> str | None:
    """The write sequence of a sort key, or None for a key without one (0.1.0's, or in flight)."""
    parts = sk.split("#")
    return parts[1] if len(parts) == 3 else None  # time, sequence, id


def in_flight_pk(message_id: str) -> str:
    """The record index partition of a message in flight (QUEUED or PROCESSING)."""
    return f"{IN_FLIGHT_PREFIX}{bucket_of(message_id, IN_FLIGHT_PARTITIONS):02d}"


def in_flight_partition(partition: int) -> str:
    """The record index partition ``partition`` (0 to ``IN_FLIGHT_PARTITIONS`` - 1) of messages in flight."""
    return f"{IN_FLIGHT_PREFIX}{partition:02d}"


def dedup_id(message_id: str, generation: int) -> str:
    """A FIFO copy's MessageDeduplicationId: the message id, and the send generation once it was re-sent.

    SQS swallows a send whose id it accepted in the last 5 minutes, even once that copy is gone: a
    deliberate re-send (a new generation) gets an id of its own, a retry of the same send keeps it.
    """
    return message_id if generation == 0 else f"{message_id}:{generation}"


def generation_of(deduplication_id: str, message_id: str) -> int | None:
    """The send generation ``dedup_id`` put in a copy's deduplication id; None when it is not one of ours."""
    if deduplication_id == message_id:
        return 0
    head, _, tail = deduplication_id.rpartition(":")
    return int(tail) if head == message_id and tail.isdigit() and tail[0] != "0" else None
