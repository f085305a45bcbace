"""The stored state of a message, as a read returns it: its status, history, lease and content."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from outbox.domain.envelope import Envelope
from outbox.domain.status import Status
from outbox.domain.trace import trace_header


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
    send_generation: int = 0  # deliberate re-sends so far (replay, the sweeper's re-send of a stranded copy)
    sent_at: str | None = None  # when SQS accepted the sweeper's last re-send of it in flight
    # Ended under a lease: that lease's owner, so a retried end recognises its own effect (the lease is gone).
    ended_lease_owner: str | None = None
    trace_id: str | None = None  # the writer's trace context, an X-Ray trace header (``domain/trace.py``)

    def envelope(self) -> Envelope:
        """The message as this record holds it: what the consumer delivers (invariant 11)."""
        return Envelope(
            self.message_id, self.type, self.payload, self.created_at, self.group_key, trace_header(self.trace_id)
        )
