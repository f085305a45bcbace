"""The stream use case on the fakes: a group's older PENDING message that the stream lost is relayed first."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from outbox.domain.envelope import Envelope, new_envelope
from outbox.domain.errors import AwsError
from outbox.domain.message import new_message_id
from outbox.domain.record import bucket_of, iso, outbox_pk, utc_now
from outbox.domain.status import Status
from outbox.service.relay import Relay
from outbox.service.stream import StreamWorker
from outbox.testing import FakePublisher, InMemoryMessageStore, InMemorySweepSource, outbox_insert

BUCKETS = 4


@pytest.fixture
def worker(store: InMemoryMessageStore, publisher: FakePublisher) -> Iterator[StreamWorker]:
    """A worker that looks for a batch's older PENDING messages in the store."""
    relay = Relay(store, publisher)
    yield StreamWorker(relay, pending=InMemorySweepSource(store, buckets=BUCKETS))
    relay.close()


def _accept(store: InMemoryMessageStore, n: int, group: str | None) -> Envelope:
    created = iso(utc_now() - timedelta(seconds=60 - n))
    envelope = new_envelope({"n": n}, type="T", message_id=new_message_id(), created_at=created, group_key=group)
    store.accept(envelope, idempotency_key=None, by="service")
    return envelope


def _event(*envelopes: Envelope) -> dict[str, Any]:
    """The stream records of these entries, each in its group's bucket."""
    records = []
    for n, envelope in enumerate(envelopes):
        bucket = outbox_pk(bucket_of(envelope.group_key or envelope.message_id, BUCKETS))
        image = {"pk": {"S": bucket}} | ({"group_key": {"S": envelope.group_key}} if envelope.group_key else {})
        records.append(outbox_insert(envelope, f"{n + 1:05d}", image))
    return {"Records": records}


def test_an_older_message_the_stream_lost_is_sent_before_its_group(
    worker: StreamWorker, store: InMemoryMessageStore, publisher: FakePublisher
) -> None:
    """Invariant 8: the lost message goes just before its group's first newer one; other groups wait for the sweeper."""
    lost = _accept(store, 0, "g")
    other_group = _accept(store, 1, "h")
    ungrouped = _accept(store, 2, None)
    newer = [_accept(store, n, "g") for n in (3, 4)]

    assert worker.handle(_event(*newer)) == {"batchItemFailures": []}

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
    event = _event(newer)

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

    assert worker.handle(_event(swept, waiting, fresh)) == {"batchItemFailures": []}
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

    assert worker.handle(_event(*envelopes)) == {"batchItemFailures": []}
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

    assert worker.handle(_event(swept)) == {"batchItemFailures": []}
    relay.close()

    assert publisher.sent_ids() == [swept.message_id]  # sent once more; the flip found it QUEUED
    assert [h.by for h in store.records[swept.message_id].history] == ["service", "sweeper"]


class _FailingMovedOn(InMemorySweepSource):
    def moved_on(self, message_ids: Iterable[str]) -> set[str]:
        raise AwsError("BatchGetItem throttled", retryable=True)
