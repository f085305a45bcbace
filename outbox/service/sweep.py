"""The sweeper: relay every message left PENDING past a minimum age, whatever happened to its stream record.

The stream relays almost everything within a second. What it cannot relay — the trigger was
off, the mapping gave up on a batch, the stream was trimmed, the outbox entry expired or was
deleted — stays PENDING in its record. Every few minutes the sweeper reads the pending index
(only PENDING records are in it), rebuilds the envelope of each message older than ``min_age``
from its record and relays it through the same relay as the worker, oldest first, so in group
order. A sweep reads the backlog, never the settled table. It also reports the true age of the
oldest PENDING message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import structlog

from outbox.domain.record import iso, utc_now
from outbox.domain.status import Status
from outbox.metrics import MESSAGES_QUARANTINED, OLDEST_PENDING_AGE, SWEEP_FAILURES, emit_metrics
from outbox.ports import SweepSource
from outbox.service.relay import Relay, RelayItem

log = structlog.get_logger("outbox.service.sweep")

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
    failed_ids: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, int | float]:
        """The counts and the oldest PENDING age, not the ids: what the Lambda returns and `outbox sweep` prints."""
        return {name: value for name, value in asdict(self).items() if name != "failed_ids"}


class Sweeper:
    """One sweep over every bucket: relay what is stuck, oldest first, and report the oldest PENDING age."""

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
        """Relay every PENDING message older than ``min_age``, oldest first; returns what happened."""
        report = SweepReport()
        now = self.clock()
        horizon = iso(now - self.min_age)
        oldest: str | None = None
        stuck: list[tuple[str, RelayItem]] = []
        for bucket in range(self.buckets):
            for page in self.source.pending(bucket):
                for record in page:
                    report.scanned += 1
                    if record.status is not Status.PENDING:  # moved on since the index was written
                        continue
                    report.pending += 1
                    oldest = record.created_at if oldest is None else min(oldest, record.created_at)
                    if record.sk <= horizon and record.envelope is not None:  # the stream had its time
                        stuck.append((record.sk, RelayItem.rebuilt(record.envelope)))
        # Oldest first across buckets: no bucket waits behind another when sends keep failing, and a
        # group (one bucket, places in time order) keeps its order.
        stuck.sort(key=lambda place: place[0])
        if stuck:
            outcome = self.relay.relay([item for _, item in stuck], time_left_ms=time_left_ms)
            report.relayed, report.already_moved = len(outcome.sent), len(outcome.duplicates)
            report.quarantined, report.failed = len(outcome.quarantined), len(outcome.failed)
            report.failed_ids = list(outcome.failed)
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
