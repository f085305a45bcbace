"""Order per group after a loss: relay a group's older PENDING messages before its newer ones.

When the stream lost records (trimmed, the trigger was off, the mapping gave up) or an outbox
entry expired, a group's older message can still be PENDING while a newer one is about to be
sent: by the worker (the stream brought the newer one) or by replay (only the newer one has an
entry in the window). Both ask the pending index, per bucket, for older PENDING records of the
groups they are about to send, and send those first, rebuilt from their records (invariant 8).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from outbox.domain.status import Status
from outbox.ports import SweepSource
from outbox.service.relay import RelayItem

log = structlog.get_logger("outbox.order")


@dataclass(frozen=True)
class Place:
    """Where an outbox entry sits: its bucket and its sort key (time, then id)."""

    bucket: int
    sk: str


def older_first(
    items: Sequence[RelayItem],
    places: Mapping[str, Place],
    pending: SweepSource,
    *,
    known: Callable[[str], bool],
) -> list[RelayItem]:
    """``items``, each group's older PENDING messages placed just before its first newer item.

    ``places`` holds the place of each grouped item, by its key. One index Query per bucket holding
    a grouped item; records are read back only for messages that ``known`` does not name (those
    being sent here, or flipped lately).
    """
    groups: dict[int, set[str]] = {}
    last: dict[int, str] = {}
    for item in items:
        if (place := places.get(item.key)) is not None and item.group_key is not None:
            groups.setdefault(place.bucket, set()).add(item.group_key)
            last[place.bucket] = max(last.get(place.bucket, ""), place.sk)
    older: dict[str, list[tuple[str, RelayItem]]] = {}  # by group, in outbox order
    for bucket, before in last.items():
        for page in pending.pending(bucket, before, known=known):
            for record in page:
                envelope = record.envelope
                if record.status is Status.PENDING and envelope and envelope.group_key in groups[bucket]:
                    older.setdefault(envelope.group_key, []).append(
                        (record.sk, RelayItem.rebuilt(envelope, record.generation))
                    )
    if not older:
        return list(items)
    log.warning("older_pending_relayed_first", messages=sum(len(found) for found in older.values()))
    merged: list[RelayItem] = []
    for item in items:  # each older message goes just before the first newer one of its group
        waiting = older.get(item.ordering_key)
        place = places.get(item.key)
        while waiting and place is not None and waiting[0][0] < place.sk:
            merged.append(waiting.pop(0)[1])
        merged.append(item)
    merged += [item for found in older.values() for _, item in found]
    return merged
