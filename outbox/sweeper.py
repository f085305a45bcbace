"""The sweeper: relay every message left PENDING past a minimum age, whatever happened to its stream record.

The stream relays almost everything within a second. What it cannot relay — the trigger was
off, the mapping gave up on a batch, the stream was trimmed, the outbox entry expired or was
deleted — stays PENDING in its record. Every few minutes the sweeper walks the records in outbox
order (bucket, then time) from each bucket's mark, rebuilds the envelope of each PENDING message
older than ``min_age`` from its record and relays it through the same relay as the worker, in
group order. Each mark then moves past everything settled, so a sweep reads the backlog and the
new messages, never the whole table. It also reports the true age of the oldest PENDING message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from outbox.domain.record import iso, utc_now
from outbox.domain.status import Status
from outbox.metrics import MESSAGES_QUARANTINED, OLDEST_PENDING_AGE, SWEEP_FAILURES, emit_metrics
from outbox.ports import SweepSource
from outbox.relay import Relay, RelayItem

log = structlog.get_logger("outbox.sweeper")

DEFAULT_MIN_AGE = timedelta(seconds=300)


@dataclass
class SweepReport:
    """What one sweep found and did."""

    scanned: int = 0
    pending: int = 0
    relayed: int = 0
    already_moved: int = 0
    quarantined: int = 0
    failed: int = 0
    oldest_pending_age_s: float = 0.0
    marks_moved: int = 0
    failed_ids: list[str] = field(default_factory=list)


@dataclass
class _Bucket:
    """One bucket's records up to the horizon, in order, and whether each is settled."""

    mark: str
    places: list[tuple[str, str | None, bool]] = field(default_factory=list)  # (sk, message_id, settled)


class Sweeper:
    """One sweep over every bucket: relay what is stuck, move the marks, report the oldest PENDING age."""

    def __init__(
        self,
        source: SweepSource,
        relay: Relay,
        *,
        buckets: int,
        min_age: timedelta = DEFAULT_MIN_AGE,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.source = source
        self.relay = relay
        self.buckets = buckets
        self.min_age = min_age
        self.clock = clock

    def sweep(self, *, time_left_ms: Callable[[], int] | None = None) -> SweepReport:
        """Relay every PENDING message older than ``min_age``; returns what happened."""
        report = SweepReport()
        now = self.clock()
        horizon = iso(now - self.min_age)
        marks = self.source.load_marks()
        oldest: str | None = None
        buckets: dict[int, _Bucket] = {}
        items: list[RelayItem] = []
        for bucket in range(self.buckets):
            seen = buckets[bucket] = _Bucket(marks.get(bucket, ""))
            for page in self.source.records_after(bucket, seen.mark):
                for record in page:
                    report.scanned += 1
                    stuck = record.status is Status.PENDING
                    if stuck:
                        report.pending += 1
                        oldest = record.created_at if oldest is None else min(oldest, record.created_at)
                    if record.sk <= horizon:  # only what the stream had its time for
                        seen.places.append((record.sk, record.message_id, not stuck))
                        if stuck and record.envelope is not None and record.message_id is not None:
                            items.append(
                                RelayItem(
                                    record.message_id,
                                    record.message_id,
                                    record.envelope.to_json(),
                                    record.envelope.group_key,
                                )
                            )
        settled: set[str] = set()
        if items:
            outcome = self.relay.relay(items, time_left_ms=time_left_ms)
            settled = {*outcome.sent, *outcome.duplicates, *outcome.quarantined}
            report.relayed, report.already_moved = len(outcome.sent), len(outcome.duplicates)
            report.quarantined, report.failed = len(outcome.quarantined), len(outcome.failed)
            report.failed_ids = list(outcome.failed)
        moved = {bucket: mark for bucket, seen in buckets.items() if (mark := _advance(seen, settled)) != seen.mark}
        if moved:
            self.source.save_marks(marks | moved)
            report.marks_moved = len(moved)
        if oldest is not None:
            report.oldest_pending_age_s = max((now - datetime.fromisoformat(oldest)).total_seconds(), 0.0)
        self._emit(report)
        return report

    def _emit(self, report: SweepReport) -> None:
        emit_metrics(
            {"MessagesSwept": report.relayed, MESSAGES_QUARANTINED: report.quarantined, SWEEP_FAILURES: report.failed}
        )
        emit_metrics({OLDEST_PENDING_AGE: report.oldest_pending_age_s}, unit="Seconds")
        log_method = log.warning if report.relayed or report.failed else log.info
        log_method(
            "sweep_done",
            scanned=report.scanned,
            pending=report.pending,
            relayed=report.relayed,
            already_moved=report.already_moved,
            quarantined=report.quarantined,
            failed=report.failed,
            oldest_pending_age_s=round(report.oldest_pending_age_s, 3),
        )


def _advance(seen: _Bucket, settled_now: set[str]) -> str:
    """The bucket's new mark: the last place before the first record that is still PENDING."""
    mark = seen.mark
    for sk, message_id, settled in seen.places:
        if not (settled or (message_id is not None and message_id in settled_now)):
            break
        mark = sk
    return mark
