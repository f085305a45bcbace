"""The sweep use case on the in-memory fakes: what the stream left PENDING is relayed, oldest first, in group order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from outbox.domain.envelope import new_envelope
from outbox.domain.message import new_message_id
from outbox.domain.record import iso, utc_now
from outbox.domain.status import Status
from outbox.service.relay import Relay, RelayPolicy
from outbox.service.sweep import Sweeper
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


def test_a_sweep_holds_a_page_of_payloads_never_the_backlog(
    store: InMemoryMessageStore, relay: Relay, publisher: FakePublisher
) -> None:
    """Records (payloads) are read a page at a time, just before that page is sent: never more than a page unsent."""
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
