"""The sweeper: relay every message left PENDING past a minimum age, whatever happened to its stream record.

The stream relays almost everything within a second. What it cannot relay — the trigger was
off, the mapping gave up on a batch, the stream was trimmed, the outbox entry expired or was
deleted — stays PENDING in its record. Every few minutes the sweeper reads the pending index
(only PENDING records are in it), rebuilds the envelope of each message older than ``min_age``
from its record and relays it through the same relay as the worker, oldest first, so in group
order. A sweep reads the backlog, never the settled table. It also reports the true age of the
oldest PENDING message.

Its second step (``resend_stranded``) ends what no copy can end any more: a message QUEUED, or
PROCESSING with no live lease, whose copy is gone (it outlived the queue's retention, was purged
or deleted by hand). Such a message is re-sent from its record under a new send generation, so
SQS's deduplication window cannot swallow the copy, counted by ``MessagesResent`` (alarmed). When
a message counts as stranded is ``stranded``'s rule, bounded by the queue's settings
(``StrandedBounds``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import structlog

from outbox.domain.errors import InvalidTransitionError, OutboxError
from outbox.domain.record import IN_FLIGHT_PARTITIONS, iso, utc_now
from outbox.domain.status import Status
from outbox.metrics import MESSAGES_QUARANTINED, MESSAGES_RESENT, OLDEST_PENDING_AGE, SWEEP_FAILURES, emit_metrics
from outbox.ports import SweepSource, SweptRecord
from outbox.service.relay import Relay, RelayItem

log = structlog.get_logger("outbox.service.sweep")

DEFAULT_MIN_AGE = timedelta(seconds=300)
IN_FLIGHT = frozenset({Status.QUEUED, Status.PROCESSING})


@dataclass(frozen=True)
class StrandedBounds:
    """The main queue's message retention and visibility timeout: how long a copy can still be somewhere.

    The defaults are SQS's retention (4 days) and six times a 30 s consumer timeout, as the
    Terraform module sets the visibility timeout.
    """

    retention: timedelta = timedelta(seconds=345_600)
    visibility: timedelta = timedelta(seconds=180)

    @property
    def soonest(self) -> timedelta:
        """The shortest time in flight after which a message can be stranded."""
        return min(self.retention, self.visibility)


def stranded(record: SweptRecord, now: datetime, bounds: StrandedBounds) -> bool:
    """Whether a message in flight can have no copy left anywhere, so that only a re-send ends it.

    QUEUED means no receive has taken it yet: its last copy was sent at its flip (``updated_at``)
    or its last re-send (``sent_at``), and no copy outlives the queue's retention. PROCESSING with
    a lease that has run out means its last receive ended with no outcome: that copy was visible
    again within the visibility timeout after the lease ended, and a healthy consumer would have
    taken the message over by then. A re-send since then is judged as QUEUED is.
    """
    if record.status not in IN_FLIGHT or record.envelope is None:
        return False
    at = datetime.fromisoformat
    last_sent = max(record.updated_at, record.sent_at or "")
    if record.status is Status.PROCESSING:
        lease_end = record.lease_until or record.updated_at
        if at(lease_end) > now:
            return False  # a receive holds it
        if not record.sent_at or record.sent_at < record.updated_at:
            return at(max(lease_end, record.updated_at)) + bounds.visibility < now
    return at(last_sent) + bounds.retention < now


@dataclass
class SweepReport:
    """What one sweep found and did."""

    scanned: int = 0
    pending: int = 0
    relayed: int = 0
    already_moved: int = 0
    quarantined: int = 0
    failed: int = 0
    in_flight_scanned: int = 0  # in flight past the soonest stranded bound: read to be judged
    resent: int = 0  # stranded in flight, re-sent under a new send generation
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
        resender: Relay | None = None,
        bounds: StrandedBounds | None = None,
    ) -> None:
        """``resender`` re-sends stranded messages in flight (a relay that flips nothing); None skips that step."""
        self.source = source
        self.relay = relay
        self.buckets = buckets
        self.min_age = min_age
        self.clock = clock
        self.resender = resender
        self.bounds = bounds or StrandedBounds()

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
                        stuck.append((record.sk, RelayItem.rebuilt(record.envelope, record.generation)))
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
        self.resend_stranded(report, now, time_left_ms=time_left_ms)
        self._emit(report)
        return report

    def resend_stranded(
        self, report: SweepReport, now: datetime, *, time_left_ms: Callable[[], int] | None = None
    ) -> None:
        """The in-flight step: re-send every message in flight that ``stranded`` finds, partition by partition.

        Reads only what went in flight before the soonest bound; each page is settled as it comes
        (``resend_page``), so memory stays at one page.
        """
        if self.resender is None:
            return
        horizon = iso(now - self.bounds.soonest)
        margin = self.resender.policy.deadline_margin_ms
        for partition in range(IN_FLIGHT_PARTITIONS):
            for page in self.source.in_flight(partition, horizon):
                if time_left_ms is not None and time_left_ms() < margin:
                    log.warning("resend_deadline_reached", partition=partition)  # the next sweep goes on
                    return
                self.resend_page(page, report, now, time_left_ms=time_left_ms)

    def resend_page(
        self,
        page: Sequence[SweptRecord],
        report: SweepReport,
        now: datetime,
        *,
        time_left_ms: Callable[[], int] | None = None,
    ) -> None:
        """Re-send the stranded messages of one page of in-flight records, each under a new send generation.

        The new generation is one conditional write that also checks the record is as it was read
        (still in flight, no live lease, not changed since): one that moved on meanwhile is left.
        """
        resender = self.resender
        if resender is None:
            return
        report.in_flight_scanned += len(page)
        items: list[tuple[str, RelayItem]] = []
        for record in page:
            if not stranded(record, now, self.bounds) or record.message_id is None or record.envelope is None:
                continue
            try:
                generation = resender.store.new_send_generation(
                    record.message_id, expected=IN_FLIGHT, updated_at=record.updated_at, generation=record.generation
                )
            except InvalidTransitionError:
                report.already_moved += 1
                continue
            except OutboxError as exc:
                log.warning("resend_not_prepared", message_id=record.message_id, error=exc.code)
                report.failed += 1
                report.failed_ids.append(record.message_id)
                continue
            items.append((record.sk, RelayItem.rebuilt(record.envelope, generation)))
        if not items:
            return
        items.sort(key=lambda place: place[0])  # oldest first: a group's messages in their order
        outcome = resender.relay([item for _, item in items], time_left_ms=time_left_ms)
        report.resent += len(outcome.sent)
        report.failed += len(outcome.failed) + len(outcome.quarantined)
        report.failed_ids += [*outcome.failed, *outcome.quarantined]
        generations = {item.message_id: item.generation for _, item in items}
        for message_id in outcome.sent:
            log.warning("message_resent", message_id=message_id, reason="in flight with no copy left")
            try:  # its copy now has the queue's retention to arrive; unnoted, the next sweep sends one more
                resender.store.note_resent(message_id, generations[message_id])
            except OutboxError as exc:
                log.info("resend_not_noted", message_id=message_id, error=exc.code)

    def _emit(self, report: SweepReport) -> None:
        emit_metrics(
            {
                "MessagesSwept": report.relayed,
                MESSAGES_QUARANTINED: report.quarantined,
                SWEEP_FAILURES: report.failed,
                MESSAGES_RESENT: report.resent,
            }
        )
        emit_metrics({OLDEST_PENDING_AGE: report.oldest_pending_age_s}, unit="Seconds")
        log_method = log.warning if report.relayed or report.failed or report.resent else log.info
        log_method(
            "sweep_done",
            scanned=report.scanned,
            pending=report.pending,
            relayed=report.relayed,
            already_moved=report.already_moved,
            quarantined=report.quarantined,
            failed=report.failed,
            in_flight_scanned=report.in_flight_scanned,
            resent=report.resent,
            oldest_pending_age_s=round(report.oldest_pending_age_s, 3),
        )
