"""The stream use case on the fakes: a group's older PENDING message that the stream lost is relayed first."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from outbox.domain.envelope import Envelope, new_envelope
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
