"""The sweeper: relay every message left PENDING past a minimum age, whatever happened to its stream record.

The stream relays almost everything within a second. What it cannot relay — the trigger was
off, the mapping gave up on a batch, the stream was trimmed, the outbox entry expired or was
deleted — stays PENDING in its record. Every few minutes the sweeper reads the record index's
outbox buckets (only PENDING records are in them) and relays each message older than ``min_age``, re-sent from
its record (its id, group and trace: the copy's body is the id alone), through the same relay as the worker.

It works a page at a time, so a run that ends at its deadline has relayed the oldest messages
and the next run goes on from there: the index keys of every bucket (small: a place and an id)
are merged oldest first, and the records behind the next page of keys (what re-sending needs,
never a payload) are read just before that page is relayed. Oldest first across buckets means no
bucket waits behind another, and a group (one bucket, its places in time order) keeps its order; a
failure stops its group for the rest of the run. The deadline is checked before every index query,
every read of a page of records and every send, so the sweeper holds a page of small records, never
the backlog. It also reports the age of the oldest PENDING message, from the index keys, which
carry the time.

Its second step (``_resend_stranded``, under the same deadline) ends what no copy can end any
more: a message QUEUED, or PROCESSING with no live lease, whose copy is gone (it outlived the
queue's retention, was purged or deleted by hand). The record index keeps a record in flight
under its ``SENT#`` partition by the time it went in flight, so the step reads only what went in
flight before the soonest bound, a page of keys per query and the records behind each page just
before it settles them. A stranded message is re-sent from its record under a new send
generation, so SQS's deduplication window cannot swallow the copy, counted by ``MessagesResent``
(alarmed). When a message counts as stranded is ``stranded``'s rule, bounded by the queue's
settings (``StrandedBounds``).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from outbox.domain.errors import InvalidTransitionError, OutboxError
from outbox.domain.keys import IN_FLIGHT_PARTITIONS, outbox_sk_floor, outbox_sk_time, utc_now
from outbox.domain.status import Status
from outbox.logs import get_logger
from outbox.metrics import MESSAGES_QUARANTINED, MESSAGES_RESENT, OLDEST_PENDING_AGE, SWEEP_FAILURES, emit_metrics
from outbox.ports import PendingKey, SweepSource, SweptRecord
from outbox.service.relay import Relay, RelayItem

log = get_logger("outbox.service.sweep")

DEFAULT_MIN_AGE = timedelta(seconds=300)
# Records read and relayed at a time (one BatchGetItem): what a sweep holds at once.
DEFAULT_PAGE_SIZE = 100
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
    if record.status not in IN_FLIGHT:  # ended, gone (None) or still PENDING: not the in-flight pass's
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

    scanned: int = 0  # records read back: the index listed them past the minimum age
    pending: int = 0  # of those, still PENDING
    relayed: int = 0
    already_moved: int = 0
    quarantined: int = 0
    failed: int = 0
    in_flight_scanned: int = 0  # in flight past the soonest stranded bound: read to be judged
    resent: int = 0  # stranded in flight, re-sent under a new send generation
    oldest_pending_age_s: float = 0.0
    deadline_reached: bool = False  # the run stopped at its deadline; the next one goes on from the oldest
    oldest_known: bool = False  # the index was read far enough to know the oldest PENDING message
    failed_ids: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, int | float]:
        """The counts and the oldest PENDING age, not the ids: what the Lambda returns and `outbox sweep` prints."""
        return {name: value for name, value in asdict(self).items() if name not in ("failed_ids", "oldest_known")}


class _OutOfTime(Exception):
    """The deadline came: the sweep stops where it is."""


@dataclass(frozen=True)
class _Deadline:
    """The Lambda's deadline less the relay's margin; none when there is no ``time_left_ms``."""

    time_left_ms: Callable[[], int] | None
    margin_ms: int

    def check(self) -> None:
        """Raise _OutOfTime once the time left is under the margin."""
        if self.time_left_ms is not None and self.time_left_ms() < self.margin_ms:
            raise _OutOfTime


class Sweeper:
    """A sweep over every bucket: relay what is stuck, oldest first, a page at a time; report the oldest PENDING age.

    With a ``resender``, then re-send what is stranded in flight.
    """

    def __init__(
        self,
        source: SweepSource,
        relay: Relay,
        *,
        buckets: int,
        min_age: timedelta = DEFAULT_MIN_AGE,
        page_size: int = DEFAULT_PAGE_SIZE,
        clock: Callable[[], datetime] = utc_now,
        resender: Relay | None = None,
        bounds: StrandedBounds | None = None,
    ) -> None:
        """``resender`` re-sends stranded messages in flight (a relay that flips nothing); None skips that step."""
        self.source = source
        self.relay = relay
        self.buckets = buckets
        self.min_age = min_age
        self.page_size = page_size
        self.clock = clock
        self.resender = resender
        self.bounds = bounds or StrandedBounds()

    def sweep(self, *, time_left_ms: Callable[[], int] | None = None) -> SweepReport:
        """Relay what is PENDING past ``min_age``, oldest first, then re-send the stranded, until the deadline."""
        report = SweepReport()
        deadline = _Deadline(time_left_ms, self.relay.policy.deadline_margin_ms)
        now = self.clock()
        try:
            # Each pass checks the deadline before every request it makes.
            self._relay_pending(now, deadline, report)
            self._resend_stranded(now, deadline, report)
        except _OutOfTime:
            report.deadline_reached = True
        self._emit(report)
        return report

    def _relay_pending(self, now: datetime, deadline: _Deadline, report: SweepReport) -> None:
        """The PENDING pass: pages of stuck messages in global time order, each read just before it is relayed."""
        horizon = outbox_sk_floor(now - self.min_age)  # the stream has had its time for places below it
        merged = heapq.merge(*(self._keys(bucket, deadline) for bucket in range(self.buckets)))
        blocked: set[str] = set()  # groups a failure stopped in this run
        page: list[PendingKey] = []
        for key in merged:
            if not report.oldest_known:  # the merge's first key, once every bucket's first page is read
                report.oldest_pending_age_s = max((now - outbox_sk_time(key.sk)).total_seconds(), 0.0)
                report.oldest_known = True
            if key.sk >= horizon:  # every later key is younger still
                break
            page.append(key)
            if len(page) == self.page_size:
                if not self._relay_page(page, deadline, blocked, report):
                    return
                page = []
        report.oldest_known = True  # an index with nothing listed: nothing is PENDING
        if page:
            self._relay_page(page, deadline, blocked, report)

    def _keys(self, bucket: int, deadline: _Deadline) -> Iterator[PendingKey]:
        """A bucket's index keys in time order, the deadline checked before each query."""
        pages = self.source.keys(bucket)
        while True:
            deadline.check()
            page = next(pages, None)
            if page is None:
                return
            yield from page

    def _relay_page(
        self, keys: Sequence[PendingKey], deadline: _Deadline, blocked: set[str], report: SweepReport
    ) -> bool:
        """Read the records of one page and relay those still PENDING; False when the run must stop."""
        deadline.check()
        items: list[RelayItem] = []
        for record in self.source.records(keys):
            report.scanned += 1
            if record.status is not Status.PENDING or record.message_id is None:  # moved on since the index was written
                continue
            report.pending += 1
            item = RelayItem.from_record(record.message_id, record.group_key, record.trace_id, record.generation)
            if item.ordering_key in blocked:  # nothing after a failure in its group
                report.failed += 1
                report.failed_ids.append(item.key)
            else:
                items.append(item)
        if not items:
            return True
        outcome = self.relay.relay(items, time_left_ms=deadline.time_left_ms)
        report.relayed += len(outcome.sent)
        report.already_moved += len(outcome.duplicates)
        report.quarantined += len(outcome.quarantined)
        report.failed += len(outcome.failed)
        report.failed_ids += outcome.failed
        failed = set(outcome.failed)
        blocked.update(item.ordering_key for item in items if item.key in failed)
        if outcome.stopped:  # SQS failed a request, or the deadline came
            deadline.check()
            return False
        return True

    def _resend_stranded(self, now: datetime, deadline: _Deadline, report: SweepReport) -> None:
        """The in-flight pass: re-send every message in flight that ``stranded`` finds, partition by partition.

        Reads only the keys of what went in flight before the soonest bound, a page per query, and
        the records behind a page just before settling it, so memory stays at one page.
        """
        if self.resender is None:
            return
        horizon = outbox_sk_floor(now - self.bounds.soonest)
        for partition in range(IN_FLIGHT_PARTITIONS):
            pages = self.source.in_flight_keys(partition, horizon)
            while True:
                deadline.check()
                keys = next(pages, None)
                if keys is None:
                    break
                deadline.check()
                if not self._resend_page(self.source.records(keys, consistent=False), now, deadline, report):
                    return

    def _resend_page(
        self, page: Sequence[SweptRecord], now: datetime, deadline: _Deadline, report: SweepReport
    ) -> bool:
        """Re-send the stranded messages of one page of in-flight records; False when the pass must stop.

        Each gets a new send generation first: one conditional write that also checks the record is
        as it was read (still in flight, no live lease, not changed since), so one that moved on
        meanwhile is left. Its copy is noted as sent only once SQS accepted it.
        """
        resender = self.resender
        if resender is None:
            return False
        report.in_flight_scanned += len(page)
        items: list[tuple[str, RelayItem]] = []
        for record in page:
            if not stranded(record, now, self.bounds) or record.message_id is None:
                continue
            deadline.check()
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
            items.append(
                (record.sk, RelayItem.from_record(record.message_id, record.group_key, record.trace_id, generation))
            )
        if not items:
            return True
        items.sort(key=lambda place: place[0])  # oldest first: a group's messages in their order
        deadline.check()
        outcome = resender.relay([item for _, item in items], time_left_ms=deadline.time_left_ms)
        report.resent += len(outcome.sent)
        report.failed += len(outcome.failed) + len(outcome.quarantined)
        report.failed_ids += [*outcome.failed, *outcome.quarantined]
        generations = {item.message_id: item.generation for _, item in items}
        # The notes finish the sends, as the flips finish the relay's, within its deadline margin: one
        # left unnoted would be judged as before by the next sweep, which would send one more copy.
        for message_id in outcome.sent:
            log.warning("message_resent", message_id=message_id, reason="in flight with no copy left")
            try:  # its copy now has the queue's retention to arrive
                resender.store.note_resent(message_id, generations[message_id])
            except OutboxError as exc:
                log.info("resend_not_noted", message_id=message_id, error=exc.code)
        if outcome.stopped:  # SQS failed a request, or the deadline came
            deadline.check()
            return False
        return True

    def _emit(self, report: SweepReport) -> None:
        emit_metrics(
            {
                "MessagesSwept": report.relayed,
                MESSAGES_QUARANTINED: report.quarantined,
                SWEEP_FAILURES: report.failed,
                MESSAGES_RESENT: report.resent,
            }
        )
        if report.oldest_known:  # a run out of time before it read the index knows no age: 0 would clear the alarm
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
            deadline_reached=report.deadline_reached,
        )
