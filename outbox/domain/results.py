"""What a write did: ``accept``'s result, and a status change that won its condition."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from outbox.domain.status import Status

if TYPE_CHECKING:
    from outbox.domain.record import MessageRecord


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
    ``record``: the record the write returned, on a move to PROCESSING under a lease (the lease
    write's own answer, no extra read): what the consumer delivers. None on every other move.
    """

    message_id: str
    previous: Status
    status: Status
    attempts: int
    repeated: bool = False
    record: MessageRecord | None = None
