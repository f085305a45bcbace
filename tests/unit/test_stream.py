"""The stream use case on the fakes: a group's older PENDING message that the stream lost is relayed first."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from outbox.domain.clock import WriteClock
from outbox.domain.envelope import Envelope, new_envelope
from outbox.domain.errors import AwsError
from outbox.domain.keys import bucket_of, iso, outbox_pk, utc_now
from outbox.domain.message import new_message_id
from outbox.domain.status import Status
from outbox.service.order import Place, lost_before
from outbox.service.relay import Relay
from outbox.service.stream import StreamWorker
from outbox.testing import FakePublisher, InMemoryMessageStore, InMemorySweepSource, outbox_insert

BUCKETS = 4
WRITER = WriteClock()  # one writing process: its write sequences, beside the times the tests choose


@pytest.fixture
def worker(store: InMemoryMessageStore, publisher: FakePublisher) -> Iterator[StreamWorker]:
    """A worker that looks for a batch's older PENDING messages in the store."""
    relay = Relay(store, publisher)
    yield StreamWorker(relay, pending=InMemorySweepSource(store, buckets=BUCKETS))
    relay.close()


def _accept(
    store: InMemoryMessageStore, n: int, group: str | None, *, writer: WriteClock | None = WRITER, ago_s: float = 0
) -> Envelope:
    """Message ``n``, made ``60 - n`` seconds ago (or ``ago_s``), by ``writer`` (None: one that names no writer)."""
    created = iso(utc_now() - timedelta(seconds=ago_s or 60 - n))
    envelope = new_envelope({"n": n}, type="T", message_id=new_message_id(), created_at=created, group_key=group)
    sequence = writer.stamp().sequence if writer else None
    store.accept(envelope, idempotency_key=None, by="service", sequence=sequence)
    return envelope


def _event(store: InMemoryMessageStore, *envelopes: Envelope, committed: float | None = None) -> dict[str, Any]:
    """The stream records of these entries, each in its group's bucket (``committed``: epoch seconds)."""
    records = []
    for n, envelope in enumerate(envelopes):
        bucket = outbox_pk(bucket_of(envelope.group_key or envelope.message_id, BUCKETS))
        image = {"pk": {"S": bucket}} | ({"group_key": {"S": envelope.group_key}} if envelope.group_key else {})
        sequence = store.sequences[envelope.message_id]
        record = outbox_insert(envelope, f"{n + 1:05d}", image, sequence=sequence)
        if committed is not None:
            record["dynamodb"]["ApproximateCreationDateTime"] = committed
        records.append(record)
    return {"Records": records}


def test_an_older_message_the_stream_lost_is_sent_before_its_group(
    worker: StreamWorker, store: InMemoryMessageStore, publisher: FakePublisher
) -> None:
    """Invariant 8: the lost message goes just before its group's first newer one; other groups wait for the sweeper."""
    lost = _accept(store, 0, "g")
    other_group = _accept(store, 1, "h")
    ungrouped = _accept(store, 2, None)
    newer = [_accept(store, n, "g") for n in (3, 4)]

    assert worker.handle(_event(store, *newer)) == {"batchItemFailures": []}

    assert publisher.sent_ids() == [lost.message_id, *(e.message_id for e in newer)]
    assert [h.by for h in store.records[lost.message_id].history] == ["service", "worker"]
    assert {store.records[e.message_id].status for e in (other_group, ungrouped)} == {Status.PENDING}


def test_an_older_message_that_cannot_be_sent_holds_its_group_back(
    worker: StreamWorker, store: InMemoryMessageStore, publisher: FakePublisher
) -> None:
    """The older message is refused: the newer one is not sent either, and the stream is told to retry it."""
    lost = _accept(store, 0, "g")
    newer = _accept(store, 1, "g")
    publisher.refuse[lost.message_id] = ("InternalError", False)
    event = _event(store, newer)

    assert worker.handle(event) == {"batchItemFailures": [{"itemIdentifier": "00001"}]}
    assert publisher.sent == []
    assert {store.records[e.message_id].status for e in (lost, newer)} == {Status.PENDING}

    publisher.refuse.clear()
    assert worker.handle(event) == {"batchItemFailures": []}  # the stream's retry
    assert publisher.sent_ids() == [lost.message_id, newer.message_id]


def test_an_entry_the_sweeper_relayed_already_is_not_sent_again(
    store: InMemoryMessageStore, publisher: FakePublisher
) -> None:
    """After a stream lag, entries older than the sweeper's minimum age are sent only if still PENDING."""
    source = InMemorySweepSource(store, buckets=BUCKETS)
    relay = Relay(store, publisher)
    worker = StreamWorker(relay, pending=source, swept_after=timedelta(seconds=30))
    swept, waiting = _accept(store, 0, None), _accept(store, 1, None)  # both a minute old
    store.transition(swept.message_id, Status.QUEUED, by="sweeper")
    fresh = new_envelope({"n": 9}, type="T", message_id=new_message_id(), created_at=iso(utc_now()))
    store.accept(fresh, idempotency_key=None, by="service")

    assert worker.handle(_event(store, swept, waiting, fresh)) == {"batchItemFailures": []}
    relay.close()

    assert publisher.sent_ids() == [waiting.message_id, fresh.message_id]
    assert source.reads == [[swept.message_id, waiting.message_id]]  # the fresh entry cost no read
    assert [h.by for h in store.records[swept.message_id].history] == ["service", "sweeper"]
    assert store.records[waiting.message_id].status is Status.QUEUED


def test_without_a_lag_the_worker_reads_no_record(store: InMemoryMessageStore, publisher: FakePublisher) -> None:
    """Entries younger than the sweeper's minimum age (the usual case) are sent without a status read."""
    source = InMemorySweepSource(store, buckets=BUCKETS)
    relay = Relay(store, publisher)
    worker = StreamWorker(relay, pending=source, swept_after=timedelta(minutes=5))
    envelopes = [_accept(store, n, None) for n in range(3)]  # under a minute old

    assert worker.handle(_event(store, *envelopes)) == {"batchItemFailures": []}
    relay.close()

    assert publisher.sent_ids() == [e.message_id for e in envelopes]
    assert source.reads == []


def test_a_failed_status_read_sends_them_all(store: InMemoryMessageStore, publisher: FakePublisher) -> None:
    """The check only saves copies: when it fails, every entry is sent, the flip stays conditional."""
    source = _FailingMovedOn(store, buckets=BUCKETS)
    relay = Relay(store, publisher)
    worker = StreamWorker(relay, pending=source, swept_after=timedelta(seconds=30))
    swept = _accept(store, 0, None)
    store.transition(swept.message_id, Status.QUEUED, by="sweeper")

    assert worker.handle(_event(store, swept)) == {"batchItemFailures": []}
    relay.close()

    assert publisher.sent_ids() == [swept.message_id]  # sent once more; the flip found it QUEUED
    assert [h.by for h in store.records[swept.message_id].history] == ["service", "sweeper"]


class _FailingMovedOn(InMemorySweepSource):
    def moved_on(self, message_ids: Iterable[str]) -> set[str]:
        raise AwsError("BatchGetItem throttled", retryable=True)


def test_a_lost_message_goes_before_the_batch_never_between_two_entries_the_stream_gave(
    worker: StreamWorker, store: InMemoryMessageStore, publisher: FakePublisher
) -> None:
    """Another writer's PENDING message timed between two entries of the batch may come later: never put between."""
    first = _accept(store, 1, "g")
    between = _accept(store, 2, "g", writer=WriteClock())  # perhaps committed after ``last``, on a clock behind
    last = _accept(store, 3, "g")

    assert worker.handle(_event(store, first, last)) == {"batchItemFailures": []}

    assert publisher.sent_ids() == [first.message_id, last.message_id]
    assert store.records[between.message_id].status is Status.PENDING


def test_a_message_of_a_clock_ahead_is_never_overtaken_by_one_committed_after_it(
    worker: StreamWorker, store: InMemoryMessageStore, publisher: FakePublisher
) -> None:
    """Writer A's clock is 2 s ahead; B commits after A's entry, with an earlier created_at: A's goes first."""
    now = utc_now()
    ahead = _accept(store, 1, "g", writer=WriteClock(), ago_s=-2)  # created_at 2 s in the future
    behind = _accept(store, 2, "g", writer=WriteClock(), ago_s=0.001)  # committed later, PENDING, not yet streamed

    assert worker.handle(_event(store, ahead, committed=int(now.timestamp()))) == {"batchItemFailures": []}
    assert worker.handle(_event(store, behind, committed=int(now.timestamp()))) == {"batchItemFailures": []}

    assert publisher.sent_ids() == [ahead.message_id, behind.message_id]


def test_a_message_of_another_writer_made_well_before_the_batch_is_sent_first(
    worker: StreamWorker, store: InMemoryMessageStore, publisher: FakePublisher
) -> None:
    """Another writer's message made more than twice the clock skew before the batch committed: surely lost."""
    now = utc_now()
    lost = _accept(store, 1, "g", writer=None, ago_s=10)
    newer = _accept(store, 2, "g", ago_s=0.001)

    assert worker.handle(_event(store, newer, committed=int(now.timestamp()))) == {"batchItemFailures": []}

    assert publisher.sent_ids() == [lost.message_id, newer.message_id]


@pytest.mark.parametrize(
    ("candidate", "first", "committed", "lost"),
    [
        # one writer: its order is the order it wrote in, however close in time
        ("2026-01-01T00:00:00.000Z#000000000001-w#a", "2026-01-01T00:00:00.000Z#000000000002-w#b", None, True),
        ("2026-01-01T00:00:00.000Z#000000000003-w#a", "2026-01-01T00:00:00.000Z#000000000002-w#b", None, False),
        # two writers: surely before only when made more than the skew before the first committed
        ("2026-01-01T00:00:00.000Z#000000000001-v#a", "2026-01-01T00:00:00.500Z#000000000002-w#b", None, False),
        ("2026-01-01T00:00:00.000Z#000000000001-v#a", "2026-01-01T00:00:04.001Z#000000000002-w#b", None, True),
        # the stream's commit time raises the bound: the first's clock may be behind
        ("2026-01-01T00:00:00.000Z#000000000001-v#a", "2026-01-01T00:00:00.500Z#000000000002-w#b", 1767225603, True),
        # ... but never lowers it: a first made 2 s ahead of its commit
        ("2026-01-01T00:00:01.000Z#000000000001-v#a", "2026-01-01T00:00:02.000Z#000000000002-w#b", 1767225600, False),
        # keys of 0.1.0 (no writer): by time alone
        ("2026-01-01T00:00:00.000Z#a", "2026-01-01T00:00:00.000Z#000000000001-w#b", None, False),
        ("2026-01-01T00:00:00.000Z#a", "2026-01-01T00:00:05.000Z#b", None, True),
        # a key that is no time: never put first
        ("2026-01-01T00:00:00.000Z#a", "yesterday#b", 1767225610, False),
    ],
)
def test_what_surely_committed_before_means(candidate: str, first: str, committed: int | None, lost: bool) -> None:
    """``lost_before`` with a 2 s clock skew: one writer's order, or a margin of two skews before the commit."""
    assert lost_before(candidate, Place(0, first, committed), timedelta(seconds=2)) is lost


def test_a_lost_message_is_known_lost_by_any_entry_of_its_group_in_the_batch(
    worker: StreamWorker, store: InMemoryMessageStore, publisher: FakePublisher
) -> None:
    """The batch starts with another writer's entry (in doubt), then one of the lost message's writer: lost, first."""
    now = utc_now()
    lost = _accept(store, 1, "g", ago_s=0.003)
    other = _accept(store, 2, "g", writer=WriteClock(), ago_s=-2)  # a clock 2 s ahead
    newer = _accept(store, 3, "g", ago_s=0.001)

    assert worker.handle(_event(store, other, newer, committed=int(now.timestamp()))) == {"batchItemFailures": []}

    assert publisher.sent_ids() == [lost.message_id, other.message_id, newer.message_id]
