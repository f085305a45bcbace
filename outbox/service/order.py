"""Order per group after a loss: relay a group's older PENDING messages before its newer ones.

When the stream lost records (trimmed, the trigger was off, the mapping gave up) or an outbox
entry expired, a group's older message can still be PENDING while a newer one is about to be
sent: by the worker (the stream brought the newer one) or by replay (only the newer one has an
entry in the window). Both ask the pending index, per bucket, for older PENDING records of the
groups they are about to send, and send those first, re-sent from their records (invariant 8): their
ids, groups and traces, never their payloads, which a copy does not carry.

"Older" is not the same for both. Replay reads the table, whose order (time, then each writer's
own order: ``domain/clock.py``) is its truth: ``older_first`` merges by sort key. The worker's
truth is the stream, which gives a shard's records in commit order, and what it lost came before
what it gives now; but a PENDING message it has not given may also be one committed *after* the
batch, which the stream brings later, with an earlier ``created_at`` if its writer's clock is
behind. ``lost_first`` therefore puts first only what surely committed before the batch, and
only before the group's first item, never between two items the stream gave.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from outbox.domain.clock import writer_of
from outbox.domain.keys import outbox_sk_sequence, outbox_sk_time
from outbox.domain.status import Status
from outbox.logs import get_logger
from outbox.ports import SweepSource
from outbox.service.relay import RelayItem

log = get_logger("outbox.order")


@dataclass(frozen=True)
class Place:
    """Where an outbox entry sits: its bucket and its sort key (time, write sequence, id).

    ``committed``: from the stream, when the entry was written, in epoch seconds on DynamoDB's
    clock (the record's ``ApproximateCreationDateTime``, which Lambda rounds down to the second).
    """

    bucket: int
    sk: str
    committed: float | None = None


def older_first(
    items: Sequence[RelayItem],
    places: Mapping[str, Place],
    pending: SweepSource,
    *,
    known: Callable[[str], bool],
) -> list[RelayItem]:
    """``items`` (in table order), each group's older PENDING messages placed just before its first newer item.

    Replay's step: older means earlier in the table's order. ``places`` holds the place of each
    grouped item, by its key. One index Query per bucket holding a grouped item; records are read
    back only for messages that ``known`` does not name (those being sent here, or flipped lately).
    """
    older = _older_pending(items, places, pending, known)
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


def lost_first(
    items: Sequence[RelayItem],
    places: Mapping[str, Place],
    pending: SweepSource,
    *,
    known: Callable[[str], bool],
    clock_skew: timedelta,
) -> list[RelayItem]:
    """``items`` in the stream's order, each group's PENDING messages the stream lost put before its first item.

    The stream worker's step. A batch is a run of consecutive records of a shard, and a group's
    entries are all in one shard: a PENDING message of the group that surely committed before
    any of the group's entries in the batch (``lost_before``) committed before the whole run, so
    the stream lost it; it goes before the group's first entry. Any other may be a later commit
    the stream brings next: it is left where it is, for the stream or the sweeper, so the worker
    never sends a message ahead of one the stream gave it. The same reads as ``older_first``.
    """
    given: dict[str, list[Place]] = {}
    for item in items:
        if (place := places.get(item.key)) is not None and item.group_key is not None:
            given.setdefault(item.group_key, []).append(place)
    lost: dict[str, list[RelayItem]] = {}
    doubtful = 0
    for group, found in _older_pending(items, places, pending, known).items():
        for sk, item in found:
            if any(lost_before(sk, place, clock_skew) for place in given[group]):
                lost.setdefault(group, []).append(item)
            else:
                doubtful += 1
    if doubtful:
        log.info("pending_left_in_doubt", messages=doubtful)
    if not lost:
        return list(items)
    log.warning("older_pending_relayed_first", messages=sum(len(found) for found in lost.values()))
    merged: list[RelayItem] = []
    for item in items:
        merged += lost.pop(item.ordering_key, [])  # before the group's first entry, never between two
        merged.append(item)
    return merged


def lost_before(candidate: str, entry: Place, clock_skew: timedelta) -> bool:
    """Whether the PENDING message at sort key ``candidate`` surely committed before the stream's ``entry``.

    It must come earlier in the table's order, and then either one writer made both (a writer's
    order is the order it wrote in), or its ``created_at`` is earlier, by more than
    ``clock_skew``, than the earliest ``entry`` can have committed: not before the stream's commit
    time, nor before its own ``created_at`` less ``clock_skew``. A message made after ``entry``
    committed, on a clock at most ``clock_skew`` off, cannot look that old. (A message made well
    before its transaction committed is taken at its ``created_at``.)
    """
    if candidate >= entry.sk:
        return False
    writer = writer_of(outbox_sk_sequence(candidate) or "")
    if writer is not None and writer == writer_of(outbox_sk_sequence(entry.sk) or ""):
        return True
    made, entry_made = _time(candidate), _time(entry.sk)
    if made is None or entry_made is None:
        return False
    committed = entry_made - clock_skew
    if entry.committed is not None:
        committed = max(committed, datetime.fromtimestamp(entry.committed, UTC))
    return made < committed - clock_skew


def _older_pending(
    items: Sequence[RelayItem], places: Mapping[str, Place], pending: SweepSource, known: Callable[[str], bool]
) -> dict[str, list[tuple[str, RelayItem]]]:
    """Each group's PENDING messages placed before the last of the batch's items in its bucket, in table order."""
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
                group, message_id = record.group_key, record.message_id
                if record.status is Status.PENDING and message_id and group is not None and group in groups[bucket]:
                    item = RelayItem.from_record(message_id, group, record.trace_id, record.generation)
                    older.setdefault(group, []).append((record.sk, item))
    return older


def _time(sk: str) -> datetime | None:
    """The time a sort key leads with, or None if it holds none (a stream record is input like any other)."""
    try:
        return outbox_sk_time(sk)
    except ValueError:
        return None
