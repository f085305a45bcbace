"""The sweep use case on the in-memory fakes: what the stream left PENDING is relayed, oldest first, in group order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from outbox.domain.envelope import new_envelope
from outbox.domain.message import new_message_id
from outbox.domain.record import iso, utc_now
from outbox.domain.status import Status
from outbox.service.relay import Relay
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

    assert (report.scanned, report.pending, report.relayed, report.failed) == (6, 6, 5, 0)
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
