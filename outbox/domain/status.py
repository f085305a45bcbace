"""Message statuses and the single table of allowed transitions."""

from __future__ import annotations

import enum
from collections.abc import Mapping


class Status(enum.StrEnum):
    """Where a message is in its life."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


# The single source of truth: every status change in the system is one of these edges.
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    # relayed; or a copy reached the consumer before the flip (a copy in hand proves the send); or quarantined
    Status.PENDING: frozenset({Status.QUEUED, Status.PROCESSING, Status.FAILED}),
    Status.QUEUED: frozenset({Status.PROCESSING}),
    Status.PROCESSING: frozenset({Status.PROCESSING, Status.COMPLETED, Status.FAILED}),
    Status.FAILED: frozenset({Status.QUEUED}),  # operator re-drive
    Status.COMPLETED: frozenset(),
}

TERMINAL: frozenset[Status] = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
# A message whose life has ended: delivered, or given up on with a reason (only an operator's
# re-drive moves FAILED on). Its record expires by the table's TTL.
ENDED: frozenset[Status] = frozenset({Status.COMPLETED, Status.FAILED})


def is_allowed(current: Status, to: Status) -> bool:
    """Whether ``current -> to`` is an edge of the lifecycle."""
    return to in TRANSITIONS[current]


def sources_of(to: Status) -> frozenset[Status]:
    """Every status from which ``to`` may be reached."""
    return frozenset(s for s, targets in TRANSITIONS.items() if to in targets)


def check_sources(to: Status, expected: frozenset[Status]) -> frozenset[Status]:
    """Return ``expected`` after checking that each of its members may move to ``to``."""
    illegal = sorted(s.value for s in expected if not is_allowed(s, to))
    if illegal or not expected:
        raise ValueError(f"not a lifecycle edge: {illegal or '[]'} -> {to.value}")
    return expected
