"""The sweep use case on the in-memory fakes: what the stream left PENDING is relayed, oldest first, in group order."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from outbox.domain.envelope import new_envelope
from outbox.domain.errors import ThrottledError
from outbox.domain.keys import iso, utc_now
from outbox.domain.message import new_message_id
from outbox.domain.record import Lease
from outbox.domain.status import Status
from outbox.ports import SweptRecord
from outbox.service.relay import Relay, RelayPolicy
from outbox.service.sweep import StrandedBounds, Sweeper, stranded
from outbox.testing import FakePublisher, InMemoryMessageStore, InMemorySweepSource

NOW = utc_now()


@pytest.fixture
def relay(store: InMemoryMessageStore, publisher: FakePublisher) -> Iterator[Relay]:
    """The sweeper's relay."""
    built = Relay(store, publisher, by="sweeper")
    yield built
    built.close()


def _sweeper(store: InMemoryMessageStore, relay: Relay, *, at: datetime = NOW) -> Sweeper:
    return Sweeper(InMemorySweepSource(store, buckets=4, page_size=2), relay, buckets=4, clock=lambda: at)


def _accept(store: InMemoryMessageStore, age: timedelta, *, group: str | None = None) -> str:
    envelope = new_envelope(
        {"n": len(store.records)},
        type="T",
        message_id=new_message_id(),
        created_at=iso(NOW - age),
        group_key=group,
    )
    store.accept(envelope, idempotency_key=None, by="service")
    return envelope.message_id


def test_pending_past_the_minimum_age_is_relayed_oldest_first_across_buckets(
    store: InMemoryMessageStore, relay: Relay, publisher: FakePublisher
) -> None:
    """Invariant 2: every stuck message is sent and flipped by the sweeper, the oldest first, whatever its bucket."""
    ages = [timedelta(minutes=m) for m in (20, 40, 10, 30, 50)]
    ids = {age: _accept(store, age) for age in ages}
    young = _accept(store, timedelta(minutes=1))

    report = _sweeper(store, relay).sweep()

    assert (report.scanned, report.pending, report.relayed, report.failed) == (5, 5, 5, 0)  # the young one unread
    assert publisher.sent_ids() == [ids[age] for age in sorted(ages, reverse=True)]
    assert all(store.records[m].status is Status.QUEUED for m in ids.values())
    assert [h.by for h in store.records[ids[ages[0]]].history] == ["service", "sweeper"]
    assert store.records[young].status is Status.PENDING  # the stream's turn still
    assert report.oldest_pending_age_s == pytest.approx(50 * 60, abs=1)


def test_a_failure_stops_its_group_and_leaves_it_for_the_next_sweep(
    store: InMemoryMessageStore, relay: Relay, publisher: FakePublisher
) -> None:
    """Invariant 8: a refused message holds back the later ones of its group, not the other groups."""
    first, refused, later = (_accept(store, timedelta(minutes=m), group="g") for m in (30, 20, 10))
    other = _accept(store, timedelta(minutes=15), group="h")
    publisher.refuse[refused] = ("InternalError", False)

    report = _sweeper(store, relay).sweep()

    assert (report.relayed, report.failed) == (2, 2)
    assert set(report.failed_ids) == {refused, later}
    assert publisher.sent_ids() == [first, other]
    assert [store.records[m].status for m in (first, refused, later)] == [Status.QUEUED, Status.PENDING, Status.PENDING]

    publisher.refuse.clear()
    assert _sweeper(store, relay).sweep().relayed == 2
    assert publisher.sent_ids()[-2:] == [refused, later]


def test_a_sweep_with_nothing_pending_sends_nothing(
    store: InMemoryMessageStore, relay: Relay, publisher: FakePublisher
) -> None:
    """Records that moved on are not the sweeper's: nothing is sent, the oldest PENDING age is 0."""
    moved = _accept(store, timedelta(hours=1))
    store.transition(moved, Status.QUEUED, by="worker")

    report = _sweeper(store, relay).sweep()

    assert (report.scanned, report.relayed, report.oldest_pending_age_s) == (0, 0, 0.0)
    assert publisher.batches == []


class _Stopwatch:
    """A deadline that counts work instead of time: each index query, record read and send costs ``cost`` ms."""

    def __init__(self, source: InMemorySweepSource, publisher: FakePublisher, *, budget_ms: int) -> None:
        self.source, self.publisher, self.budget_ms = source, publisher, budget_ms
        self.start = self._spent()

    def _spent(self) -> int:
        return 10 * self.source.queries + 2 * self.source.records_read + 10 * len(self.publisher.batches)

    def time_left_ms(self) -> int:
        """What is left of the budget this run."""
        return self.budget_ms - (self._spent() - self.start)


def _paged(store: InMemoryMessageStore, relay: Relay, *, page_size: int) -> tuple[Sweeper, InMemorySweepSource]:
    """A sweeper reading the index 3 keys a query and relaying ``page_size`` records at a time."""
    source = InMemorySweepSource(store, buckets=4, page_size=3)
    return Sweeper(source, relay, buckets=4, page_size=page_size, clock=lambda: NOW), source


@pytest.fixture
def quick_relay(store: InMemoryMessageStore, publisher: FakePublisher) -> Iterator[Relay]:
    """The sweeper's relay with a deadline margin of 10 ms (the stopwatch's unit)."""
    built = Relay(store, publisher, by="sweeper", policy=RelayPolicy(deadline_margin_ms=10))
    yield built
    built.close()


def test_a_backlog_bigger_than_one_run_drains_over_consecutive_runs_oldest_first(
    store: InMemoryMessageStore, quick_relay: Relay, publisher: FakePublisher
) -> None:
    """Invariant 2: under a short deadline every run relays the oldest pages it reaches, and the backlog drains."""
    ids = [_accept(store, timedelta(minutes=100 - n)) for n in range(60)]  # oldest first
    sweeper, source = _paged(store, quick_relay, page_size=5)

    runs = []
    while any(store.records[m].status is Status.PENDING for m in ids) and len(runs) < 20:
        runs.append(sweeper.sweep(time_left_ms=_Stopwatch(source, publisher, budget_ms=200).time_left_ms))

    assert all(run.relayed > 0 for run in runs)  # every run made progress
    assert len(runs) > 2
    assert all(run.deadline_reached for run in runs[:-1])
    assert publisher.sent_ids() == ids  # oldest first, across buckets and across runs
    assert all(store.records[m].status is Status.QUEUED for m in ids)
    ages = [run.oldest_pending_age_s for run in runs]
    assert ages == sorted(ages, reverse=True)
    assert ages[0] == pytest.approx(100 * 60, abs=1)


def test_a_sweep_holds_a_page_of_records_never_the_backlog(
    store: InMemoryMessageStore, relay: Relay, publisher: FakePublisher
) -> None:
    """Records are read a page at a time, just before that page is sent: never more than a page unsent."""
    for n in range(47):
        _accept(store, timedelta(minutes=60 - n))
    sweeper, source = _paged(store, relay, page_size=10)
    held: list[int] = []
    publisher.after_send = lambda accepted: held.append(
        source.records_read - (len(publisher.sent) - len(accepted))  # read, and not sent before this batch
    )

    report = sweeper.sweep()

    assert report.relayed == 47
    assert held
    assert max(held) <= 10
    assert held[0] <= 10  # the first send came after one page, not after the backlog


def test_a_message_whose_entry_expired_is_relayed_from_its_record_with_its_group_and_trace(
    store: InMemoryMessageStore, relay: Relay, publisher: FakePublisher
) -> None:
    """The copy is made from the record's id, group and trace: the body its outbox entry held, byte for byte."""
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    envelope = new_envelope(
        {"n": 1}, type="T", message_id=new_message_id(), created_at=iso(NOW - timedelta(hours=1)), group_key="g"
    )
    store.accept(replace(envelope, trace_id=trace), idempotency_key=None, by="service")
    del store.envelopes[envelope.message_id]  # TTL took the outbox entry; the record is still PENDING

    report = _sweeper(store, relay).sweep()

    assert report.relayed == 1
    (sent,) = publisher.sent
    assert (sent.message_id, sent.body, sent.group_key, sent.trace_header) == (
        envelope.message_id,
        envelope.body(),
        "g",
        trace,
    )


def test_a_run_with_no_time_left_reads_nothing(
    store: InMemoryMessageStore, relay: Relay, publisher: FakePublisher
) -> None:
    """The deadline is checked before every read: a run started too late queries no index and reads no record."""
    for n in range(8):
        _accept(store, timedelta(minutes=30 + n))
    sweeper, source = _paged(store, relay, page_size=5)

    report = sweeper.sweep(time_left_ms=lambda: 0)

    assert (source.queries, source.records_read, publisher.batches) == (0, 0, [])
    assert report.deadline_reached
    assert not report.oldest_known
    assert all(r.status is Status.PENDING for r in store.records.values())


def test_a_run_stopped_after_the_index_heads_knows_the_oldest_age(
    store: InMemoryMessageStore, relay: Relay, publisher: FakePublisher
) -> None:
    """Time for the index queries but not for a record: the oldest PENDING age still comes from the index keys."""
    for n in range(8):
        _accept(store, timedelta(minutes=30 + n))
    sweeper, source = _paged(store, relay, page_size=5)

    report = sweeper.sweep(time_left_ms=lambda: 10_000 if source.queries < 4 else 0)

    assert (source.queries, source.records_read, publisher.batches) == (4, 0, [])  # one query per bucket
    assert report.deadline_reached
    assert report.oldest_known
    assert report.oldest_pending_age_s == pytest.approx(37 * 60, abs=1)


def test_a_failure_stops_its_group_across_pages(
    store: InMemoryMessageStore, relay: Relay, publisher: FakePublisher
) -> None:
    """Invariant 8: a refused message holds back its group's later messages in the pages after it too."""
    group = [_accept(store, timedelta(minutes=60 - n), group="g") for n in range(9)]
    others = [_accept(store, timedelta(minutes=55 - n), group=f"h{n}") for n in range(6)]
    publisher.refuse[group[1]] = ("InternalError", False)
    sweeper, _ = _paged(store, relay, page_size=2)

    report = sweeper.sweep()

    assert set(publisher.sent_ids()) == {group[0], *others}
    assert set(report.failed_ids) == set(group[1:])
    assert [store.records[m].status for m in group] == [Status.QUEUED] + [Status.PENDING] * 8

    publisher.refuse.clear()
    assert sweeper.sweep().relayed == 8
    assert publisher.sent_ids()[-8:] == group[1:]


# -- the in-flight step: nothing left in flight with no copy -------------------------------------

BOUNDS = StrandedBounds(retention=timedelta(hours=4), visibility=timedelta(minutes=3))


def _swept(status: Status, **moment: str | int | None) -> SweptRecord:
    return SweptRecord("x", "m-1", status, iso(NOW - timedelta(hours=9)), **moment)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "moment", "expected"),
    [
        (Status.QUEUED, {"updated_at": iso(NOW - timedelta(hours=3))}, False),  # its copy may still be queued
        (Status.QUEUED, {"updated_at": iso(NOW - timedelta(hours=5))}, True),  # past retention: gone
        # re-sent an hour ago: that copy has the retention to arrive
        (Status.QUEUED, {"updated_at": iso(NOW - timedelta(hours=5)), "sent_at": iso(NOW - timedelta(hours=1))}, False),
        (
            Status.PROCESSING,
            {"updated_at": iso(NOW - timedelta(hours=5)), "lease_until": iso(NOW + timedelta(minutes=1))},
            False,
        ),
        (
            Status.PROCESSING,
            {"updated_at": iso(NOW - timedelta(minutes=5)), "lease_until": iso(NOW - timedelta(minutes=2))},
            False,
        ),
        (
            Status.PROCESSING,
            {"updated_at": iso(NOW - timedelta(minutes=5)), "lease_until": iso(NOW - timedelta(minutes=4))},
            True,
        ),
        (
            Status.PROCESSING,
            {
                "updated_at": iso(NOW - timedelta(minutes=9)),
                "lease_until": iso(NOW - timedelta(minutes=8)),
                "sent_at": iso(NOW - timedelta(minutes=1)),
            },
            False,  # re-sent after its lease ran out: judged as QUEUED
        ),
        (Status.PENDING, {"updated_at": iso(NOW - timedelta(days=9))}, False),  # the other step's
        (Status.COMPLETED, {"updated_at": iso(NOW - timedelta(days=9))}, False),
    ],
)
def test_a_message_in_flight_is_stranded_only_when_no_copy_can_be_left(
    status: Status, moment: dict[str, str], expected: bool
) -> None:
    """QUEUED: past the queue's retention since its last send; PROCESSING: lease run out plus the visibility."""
    assert stranded(_swept(status, **moment), NOW, BOUNDS) is expected


@pytest.fixture
def resender(store: InMemoryMessageStore, publisher: FakePublisher) -> Iterator[Relay]:
    """The sweeper's relay for re-sends in flight: it flips nothing."""
    built = Relay(store, publisher, by="sweeper", expected=frozenset())
    yield built
    built.close()


def _in_flight(store: InMemoryMessageStore, age: timedelta, to: Status) -> str:
    message_id = _accept(store, age)
    store.transition(message_id, Status.QUEUED, by="worker")
    if to is Status.PROCESSING:
        store.transition(message_id, Status.PROCESSING, by="consumer", lease=Lease("c", iso(utc_now())))
    record = store.records[message_id]  # as if it all happened ``age`` ago
    history = tuple(replace(line, at=iso(NOW - age)) for line in record.history)
    lease = Lease("c", iso(NOW - age)) if record.lease else None
    store.records[message_id] = replace(record, updated_at=iso(NOW - age), history=history, lease=lease)
    return message_id


def test_the_sweep_resends_what_is_stranded_in_flight_under_a_new_generation(
    store: InMemoryMessageStore, relay: Relay, resender: Relay, publisher: FakePublisher
) -> None:
    """Defect 5 on the fakes: stranded QUEUED and PROCESSING are re-sent, each once, with a new send generation."""
    queued_lost = _in_flight(store, timedelta(hours=5), Status.QUEUED)
    queued_young = _in_flight(store, timedelta(hours=1), Status.QUEUED)
    processing_lost = _in_flight(store, timedelta(minutes=10), Status.PROCESSING)
    processing_young = _in_flight(store, timedelta(minutes=1), Status.PROCESSING)
    source = InMemorySweepSource(store, buckets=4, page_size=2)
    sweeper = Sweeper(source, relay, buckets=4, clock=lambda: NOW, resender=resender, bounds=BOUNDS)

    report = sweeper.sweep()

    assert (report.in_flight_scanned, report.resent, report.failed) == (3, 2, 0)  # the 1-minute one is not read
    assert sorted(publisher.sent_ids()) == sorted([queued_lost, processing_lost])
    assert {m.message_id: m.generation for m in publisher.sent} == {queued_lost: 1, processing_lost: 1}
    for message_id, lines in ((queued_lost, 2), (processing_lost, 3)):
        record = store.records[message_id]
        assert record.send_generation == 1
        assert len(record.history) == lines  # no status change, no history line
    assert store.records[queued_lost].status is Status.QUEUED
    assert store.records[processing_lost].status is Status.PROCESSING
    assert {store.records[m].send_generation for m in (queued_young, processing_young)} == {0}

    again = sweeper.sweep()  # re-sent a moment ago (the store's clock): not again
    assert again.resent == 0


def test_a_failed_resend_is_counted_and_left_for_the_next_sweep(
    store: InMemoryMessageStore, relay: Relay, resender: Relay, publisher: FakePublisher
) -> None:
    """SQS refusing the re-send: a sweep failure (alarmed), nothing changed but the generation."""
    lost = _in_flight(store, timedelta(hours=5), Status.QUEUED)
    publisher.fail_next.append(ThrottledError("SQS is throttling"))
    sweeper = Sweeper(InMemorySweepSource(store, buckets=4), relay, buckets=4, clock=lambda: NOW, resender=resender)
    sweeper.bounds = BOUNDS

    report = sweeper.sweep()

    assert (report.resent, report.failed, report.failed_ids) == (0, 1, [lost])
    assert store.records[lost].status is Status.QUEUED
    assert store.records[lost].sent_at is None  # not sent: nothing noted

    retried = sweeper.sweep()  # the next sweep sends it, under a generation of its own again
    assert (retried.resent, retried.failed) == (1, 0)
    assert [m.generation for m in publisher.sent] == [2]


def test_one_run_relays_the_pending_then_resends_the_stranded(
    store: InMemoryMessageStore, relay: Relay, resender: Relay, publisher: FakePublisher
) -> None:
    """The in-flight step is the run's second: the PENDING pass sends first, then the stranded are re-sent."""
    pending = [_accept(store, timedelta(minutes=30 + n)) for n in range(3)]
    lost = [_in_flight(store, timedelta(hours=5 + n), Status.QUEUED) for n in range(3)]
    source = InMemorySweepSource(store, buckets=4, page_size=2)
    sweeper = Sweeper(source, relay, buckets=4, page_size=2, clock=lambda: NOW, resender=resender, bounds=BOUNDS)

    report = sweeper.sweep()

    assert (report.relayed, report.resent, report.deadline_reached) == (3, 3, False)
    assert set(publisher.sent_ids()[:3]) == set(pending)
    assert set(publisher.sent_ids()[3:]) == set(lost)
    assert all(store.records[m].status is Status.QUEUED and store.records[m].send_generation == 1 for m in lost)


def test_a_run_out_of_time_in_the_pending_pass_leaves_the_stranded_to_the_next_run(
    store: InMemoryMessageStore, quick_relay: Relay, resender: Relay, publisher: FakePublisher
) -> None:
    """The deadline reached while relaying PENDING: no in-flight read, no new generation; the next run re-sends."""
    _accept(store, timedelta(minutes=30))
    lost = _in_flight(store, timedelta(hours=5), Status.QUEUED)
    source = InMemorySweepSource(store, buckets=4, page_size=3)
    sweeper = Sweeper(source, quick_relay, buckets=4, clock=lambda: NOW, resender=resender, bounds=BOUNDS)

    report = sweeper.sweep(time_left_ms=lambda: 0 if publisher.batches else 10_000)  # time for one send

    assert (report.relayed, report.resent, report.in_flight_scanned, report.deadline_reached) == (1, 0, 0, True)
    assert store.records[lost].send_generation == 0
    again = sweeper.sweep()
    assert (again.relayed, again.resent) == (0, 1)
    assert store.records[lost].send_generation == 1


def test_the_in_flight_step_checks_the_deadline_before_each_request(
    store: InMemoryMessageStore, relay: Relay, resender: Relay, publisher: FakePublisher
) -> None:
    """Out of time after its first re-send: no read after it; the next run re-sends the rest, each message once."""
    lost = [_in_flight(store, timedelta(hours=5), Status.QUEUED) for _ in range(24)]
    source = InMemorySweepSource(store, buckets=4, page_size=2)
    sweeper = Sweeper(source, relay, buckets=4, clock=lambda: NOW, resender=resender, bounds=BOUNDS)
    at_send: list[tuple[int, int]] = []
    publisher.after_send = lambda _accepted: at_send.append((source.queries, source.records_read))

    first = sweeper.sweep(time_left_ms=lambda: 0 if publisher.batches else 10_000)  # time for one send

    assert first.deadline_reached
    assert 0 < first.resent <= 2  # one page
    assert at_send == [(source.queries, source.records_read)]  # nothing read after the send
    assert all(store.records[m].sent_at for m in publisher.sent_ids())  # each re-send noted
    rest = sweeper.sweep()
    assert first.resent + rest.resent == len(lost)
    assert sorted(publisher.sent_ids()) == sorted(lost)  # each re-sent once over both runs
