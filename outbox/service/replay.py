"""Replay: re-drive outbox entries from the table (never the stream) through the worker's own relay.

Entries are read through an ``OutboxReader`` (one Query per bucket and time range, page by page;
each page's record statuses in one read). Selected entries go through ``Relay`` with
``by="replay"``: same envelope, same conditional flip, so a replay running beside the worker (or
another replay) has exactly one winner per message and moves nothing backwards.

A replay is a deliberate re-send: before its copy is sent, each selected message gets a new send
generation (one conditional write, while its record is still in the selected status), and so a
FIFO deduplication id of its own. SQS keeps an id for 5 minutes from its send, even once its copy
is gone: with the old id, a re-drive soon after the last send would be answered "successful" and
not enqueued, and the record flipped to QUEUED with no copy anywhere.

``outbox replay`` (``outbox/replay_cli.py``) reads the command line, confirms, shows progress and
keeps the checkpoint file; this module knows nothing of either.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from outbox.domain.errors import InvalidTransitionError, OutboxError
from outbox.domain.keys import iso
from outbox.domain.status import Status
from outbox.ports import OutboxReader, StoredEntry, SweepSource
from outbox.service.order import Place, older_first
from outbox.service.relay import Relay, RelayItem, RelayReport

MODES: dict[str, frozenset[Status]] = {
    "PENDING": frozenset({Status.PENDING}),
    "FAILED": frozenset({Status.FAILED}),
    "ANY": frozenset(Status),
}
# What the flip to QUEUED may start from, per mode (ANY re-sends QUEUED ones but never moves them).
FLIP_FROM: dict[str, frozenset[Status]] = {
    "PENDING": frozenset({Status.PENDING}),
    "FAILED": frozenset({Status.FAILED}),
    "ANY": frozenset({Status.PENDING, Status.FAILED}),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Selection:
    """Which entries to re-drive. Times are absolute, so a resumed replay covers the same window."""

    since: str
    until: str
    status: str = "PENDING"
    message_ids: tuple[str, ...] = ()
    group_key: str | None = None

    @classmethod
    def window(
        cls,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        min_age: timedelta = timedelta(0),
        status: str = "PENDING",
        message_ids: tuple[str, ...] = (),
        group_key: str | None = None,
        now: datetime | None = None,
    ) -> Selection:
        """Entries of ``status`` from ``since`` (the first) to ``until`` (now), none younger than ``min_age``.

        ValueError for a status that is not one of ``MODES``.
        """
        if status not in MODES:
            raise ValueError(f"unknown status {status!r}: use {', '.join(MODES)}")
        now = now or datetime.now(UTC)
        end = min(until or now, now - min_age)
        return cls(iso(since or _EPOCH), iso(end), status, tuple(sorted(set(message_ids))), group_key)

    def wants(self, entry: StoredEntry) -> bool:
        """Whether an entry read from the table is within this selection (before its status is known)."""
        if self.group_key is not None and entry.group_key != self.group_key:
            return False
        if self.message_ids and entry.message_id not in self.message_ids:
            return False
        return self.since <= entry.sk[: len(self.since)] <= self.until


@dataclass
class Summary:
    """What replay did; ``handled`` means nothing is left to do for it."""

    scanned: int = 0
    selected: int = 0
    sent: int = 0
    already_done: int = 0
    failed: int = 0
    would_send: int = 0
    not_found: int = 0  # message ids asked for (--message-id, --ids-file) with no outbox entry
    interrupted: bool = False
    stopped: bool = False  # SQS refused a whole request: the run stopped there, resumable

    def exit_code(self) -> int:
        """0: every selected entry handled; 1: some failed or were not found, or the run stopped; 130: interrupted."""
        if self.interrupted:
            return 130
        return 1 if self.failed or self.stopped or self.not_found else 0


@dataclass(frozen=True)
class Target:
    """Where a replay sends from and to: a checkpoint resumes only against the same."""

    table: str
    queue_url: str | None
    buckets: int

    def mismatch(self, other: Target) -> str | None:
        """What differs from ``other``, in one line, or None."""
        differences = [
            f"{name} {mine!r}, not {theirs!r}"
            for name, mine, theirs in (
                ("table", self.table, other.table),
                ("queue", self.queue_url, other.queue_url),
                ("buckets", self.buckets, other.buckets),
            )
            if mine != theirs and mine is not None
        ]
        return "; ".join(differences) or None


@dataclass
class Checkpoint:
    """Where a replay stopped; a resumed replay continues after ``position`` with the same selection."""

    selection: Selection
    position: tuple[int, str] | None = None
    summary: Summary = field(default_factory=Summary)
    target: Target | None = None
    # Sent by the batch a stopped run will redo: counted once, as sent, when the redo finds them moved on.
    sent_unconfirmed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint as JSON-ready data (``from_dict`` reads it back)."""
        return {
            "version": 1,
            "selection": asdict(self.selection),
            "position": self.position,
            "summary": asdict(self.summary),
            "target": asdict(self.target) if self.target else None,
            "sent_unconfirmed": list(self.sent_unconfirmed),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        """A checkpoint from ``to_dict``'s data; KeyError, TypeError or ValueError naming what is wrong."""
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ValueError("not a version 1 replay checkpoint")
        selection = dict(data["selection"])
        selection["message_ids"] = tuple(selection["message_ids"])
        position = data["position"]
        summary = Summary(**{**data.get("summary", {}), "interrupted": False, "stopped": False})
        target = Target(**data["target"]) if data.get("target") else None
        unconfirmed = tuple(str(m) for m in data.get("sent_unconfirmed", ()))
        return cls(Selection(**selection), tuple(position) if position else None, summary, target, unconfirmed)


Report = Callable[[dict[str, Any]], None]


class Replayer:
    """Streams the selection through the relay, batch by batch, honouring rate, dry run and stop."""

    def __init__(
        self,
        reader: OutboxReader,
        relay: Relay | None,
        *,
        batch_size: int = 10,
        rate: float | None = None,
        report: Report = lambda _: None,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        pending: SweepSource | None = None,
    ) -> None:
        self.reader = reader
        self.relay = relay  # None: dry run, nothing is sent or written
        self.pending = pending  # a group's older PENDING messages outside the selection go first
        self.batch_size = batch_size
        self.rate = rate
        self.report = report
        self.stop = stop or threading.Event()
        self.clock = clock
        self.sleep = sleep
        self._next_send = 0.0
        self._blocked: set[str] = set()  # groups with a failure: nothing later of them is sent this run

    def run(self, checkpoint: Checkpoint, on_progress: Callable[[Checkpoint], None] = lambda _: None) -> Summary:
        """Replay from the checkpoint's position; updates it after every batch.

        The summary counts what lies up to the position, so a resumed run, which starts after it,
        counts each entry once.
        """
        selection, summary = checkpoint.selection, checkpoint.summary
        wanted = MODES[selection.status]
        for page in self._pages(selection, checkpoint):
            candidates = [e for e in page if selection.wants(e)]
            statuses = self.reader.statuses(e.message_id for e in candidates) if candidates else {}
            chosen = [e for e in candidates if statuses.get(e.message_id) in wanted]
            scanned = 0  # entries of this page counted so far
            for start in range(0, len(chosen), self.batch_size):
                if self.stop.is_set():
                    summary.interrupted = True
                    return summary
                batch = chosen[start : start + self.batch_size]
                self._handle(batch, summary, checkpoint, wanted=wanted, resend=selection.status == "ANY")
                if summary.stopped:  # resume redoes this batch: the flips are conditional
                    return summary
                checkpoint.position = batch[-1].position
                reached = sum(1 for e in page if e.position <= checkpoint.position)
                summary.scanned += reached - scanned
                summary.selected += len(batch)
                scanned = reached
                on_progress(checkpoint)
            if page and not self.stop.is_set():
                summary.scanned += len(page) - scanned
                checkpoint.position = max(checkpoint.position or page[-1].position, page[-1].position)
        return summary

    def _pages(self, selection: Selection, checkpoint: Checkpoint) -> Iterator[list[StoredEntry]]:
        after = checkpoint.position
        if selection.message_ids:
            found = self.reader.entries_for(selection.message_ids)
            if after is None:  # counted once, by the first run
                missing = sorted(set(selection.message_ids) - {e.message_id for e in found})
                checkpoint.summary.not_found += len(missing)
                for message_id in missing:
                    self.report({"message_id": message_id, "action": "not_found"})
            entries = [e for e in found if after is None or e.position > after]
            for start in range(0, len(entries), self.reader.page_size):
                yield entries[start : start + self.reader.page_size]
            return
        buckets = [self.reader.bucket_of_group(selection.group_key)] if selection.group_key is not None else None
        yield from self.reader.pages(selection.since, selection.until + "~", buckets=buckets, after=after)

    def _handle(
        self,
        batch: list[StoredEntry],
        summary: Summary,
        checkpoint: Checkpoint,
        *,
        wanted: frozenset[Status],
        resend: bool,
    ) -> None:
        if self.relay is None:
            summary.would_send += len(batch)
            for entry in batch:
                self.report({"message_id": entry.message_id, "action": "would_send"})
            return
        blocked = [e for e in batch if _ordering_key(e) in self._blocked]
        for entry in blocked:
            self.report({"message_id": entry.message_id, "action": "blocked"})
        batch = [e for e in batch if _ordering_key(e) not in self._blocked]
        if not batch:
            summary.failed += len(blocked)
            return
        self._throttle(len(batch))
        items, moved, unprepared = self._new_generations(self.relay, batch, wanted)
        if items and self.pending is not None:  # an older message of a group whose entry is gone or outside the window
            places = {e.message_id: Place(e.bucket, e.sk) for e in batch if e.group_key is not None}
            items = older_first(items, places, self.pending, known={e.message_id for e in batch}.__contains__)
        result = self.relay.relay(items) if items else RelayReport()
        # A stopped run leaves its unsent part to --resume, which starts again at this batch.
        unsent, failed = (result.failed, []) if result.stopped else ([], result.failed)
        summary.stopped = summary.stopped or result.stopped
        group_of = {item.key: item.ordering_key for item in items}
        self._blocked.update(group_of[key] for key in failed)
        # With ANY a record already past PENDING was still sent again: that is the point of ANY. A
        # message the stopped run before this one sent moved on then (before its new generation, or
        # before its flip): it was sent, once.
        earlier = set(checkpoint.sent_unconfirmed)
        moved_on = [*moved, *([] if resend else result.duplicates)]
        resent = [*(result.duplicates if resend else []), *(key for key in moved_on if key in earlier)]
        done = [key for key in moved_on if key not in earlier]
        if result.stopped:
            checkpoint.sent_unconfirmed = tuple(sorted(earlier | set(result.sent)))
        outcomes = (
            [(key, "sent") for key in [*result.sent, *resent]]
            + [(key, "already_done") for key in [*done, *result.quarantined]]
            + [(key, "failed") for key in failed]
            + [(key, "unsent") for key in unsent]
        )
        for message_id, action in outcomes:
            self.report({"message_id": message_id, "action": action})
        if result.stopped:  # the redo on --resume counts this batch
            return
        checkpoint.sent_unconfirmed = ()
        summary.sent += len(result.sent) + len(resent)
        summary.already_done += len(done) + len(result.quarantined)
        summary.failed += len(failed) + len(blocked) + len(unprepared)

    def _new_generations(
        self, relay: Relay, batch: list[StoredEntry], wanted: frozenset[Status]
    ) -> tuple[list[RelayItem], list[str], list[str]]:
        """Each entry as a relay item under a new send generation of its record, and the ids that cannot be.

        Returns the items, the ids whose record is no longer in ``wanted`` (the worker, the
        consumer or another replay moved it on), and those not prepared, reported here: a failed
        write fails the entry and stops its group for this run (the rest of it is blocked). The
        caller counts them once it knows whether the batch is redone.
        """
        items: list[RelayItem] = []
        moved: list[str] = []
        unprepared: list[str] = []
        for entry in batch:
            if _ordering_key(entry) in self._blocked:
                self.report({"message_id": entry.message_id, "action": "blocked"})
                unprepared.append(entry.message_id)
                continue
            try:
                generation = relay.store.new_send_generation(entry.message_id, expected=wanted)
            except InvalidTransitionError:
                moved.append(entry.message_id)
                continue
            except OutboxError:
                self._blocked.add(_ordering_key(entry))
                self.report({"message_id": entry.message_id, "action": "failed"})
                unprepared.append(entry.message_id)
                continue
            items.append(
                RelayItem(
                    entry.message_id, entry.message_id, entry.body, entry.group_key, generation, entry.trace_header
                )
            )
        return items, moved, unprepared

    def _throttle(self, count: int) -> None:
        if not self.rate:
            return
        now = self.clock()
        if self._next_send > now:
            self.sleep(self._next_send - now)
        self._next_send = max(now, self._next_send) + count / self.rate


def _ordering_key(entry: StoredEntry) -> str:
    return entry.group_key or entry.message_id
