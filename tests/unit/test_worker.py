"""The stream worker and the consumer on fakes: event parsing, partial batch responses, poison."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from outbox.domain.envelope import Envelope
from outbox.domain.keys import iso, utc_now
from outbox.domain.message import new_message_id
from outbox.domain.status import Status
from outbox.logs import configure_logging
from outbox.notifications.notification import parse_notification
from outbox.service.consume import Consumer, ConsumerPolicy
from outbox.service.relay import Relay
from outbox.service.stream import StreamWorker
from outbox.testing import FakeLambdaContext, FakePublisher, InMemoryMessageStore, outbox_insert

NOTE = parse_notification({"channel": "sms", "recipient": "+14155550100", "body": "hi"})


@pytest.fixture
def worker(store: InMemoryMessageStore, publisher: FakePublisher) -> Iterator[StreamWorker]:
    """A fresh worker."""
    relay = Relay(store, publisher)
    yield StreamWorker(relay)
    relay.close()


def _accept(store: InMemoryMessageStore) -> Envelope:
    envelope = NOTE.envelope(message_id=new_message_id(), created_at=iso(utc_now()))
    store.accept(envelope, idempotency_key=None)
    return envelope


def _insert(envelope: Envelope, seq: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    return outbox_insert(envelope, seq, overrides)


def test_only_outbox_inserts_are_relayed(
    worker: StreamWorker, store: InMemoryMessageStore, publisher: FakePublisher
) -> None:
    """Record INSERTs, MODIFYs and REMOVEs are ignored; outbox INSERTs are sent."""
    envelope = _accept(store)
    record_insert = {"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"S": "MSG#x"}}, "SequenceNumber": "1"}}
    modify = _insert(envelope, "3") | {"eventName": "MODIFY"}
    event = {"Records": [record_insert, _insert(envelope, "2"), modify, "junk", {"eventName": "INSERT"}]}

    assert worker.handle(event, FakeLambdaContext()) == {"batchItemFailures": []}
    assert publisher.sent_ids() == [envelope.message_id]


def test_failures_are_reported_by_sequence_number_in_stream_order(
    worker: StreamWorker, store: InMemoryMessageStore, publisher: FakePublisher
) -> None:
    """BatchItemFailures lists SequenceNumbers of failed records, never an empty identifier."""
    first, second = _accept(store), _accept(store)
    publisher.refuse[first.message_id] = ("InternalError", False)
    publisher.refuse[second.message_id] = ("InternalError", False)

    response = worker.handle({"Records": [_insert(first, "10"), _insert(second, "11")]}, FakeLambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "10"}, {"itemIdentifier": "11"}]}


def test_record_without_sequence_number_is_skipped_not_reported(
    worker: StreamWorker, store: InMemoryMessageStore
) -> None:
    """A record with no SequenceNumber cannot be reported (an empty id fails the batch): it is logged and skipped."""
    envelope = _accept(store)
    record = _insert(envelope, "")

    assert worker.handle({"Records": [record]}, FakeLambdaContext()) == {"batchItemFailures": []}


@pytest.mark.parametrize(
    "overrides",
    [
        {"envelope": {"S": ""}},
        {"envelope": {"N": "1"}},
        {"created_at": {"N": "oops"}},
        {"created_at": {"S": "yesterday"}},  # a string, but no time: the worker validates every field it reads
        {"created_at": {"S": "2026-01-01T00:00:00"}},  # a time without a zone
        {"expires_at": {"S": "never"}},
    ],
)
def test_malformed_images_are_quarantined(
    worker: StreamWorker, store: InMemoryMessageStore, publisher: FakePublisher, overrides: dict[str, Any]
) -> None:
    """Invariant 7 (no poison blocks a shard): an unreadable entry is FAILED with a reason and never sent."""
    envelope = _accept(store)

    response = worker.handle({"Records": [_insert(envelope, "5", overrides)]}, FakeLambdaContext())

    assert response == {"batchItemFailures": []}
    assert publisher.sent == []
    record = store.records[envelope.message_id]
    assert record.status is Status.FAILED
    assert record.reason is not None
    assert record.reason.startswith("malformed outbox entry")


def test_malformed_image_without_message_id_is_skipped(worker: StreamWorker, publisher: FakePublisher) -> None:
    """With no message_id there is no record to mark: skipped, not retried forever."""
    envelope = NOTE.envelope(message_id=new_message_id(), created_at=iso(utc_now()))
    record = _insert(envelope, "9", {"message_id": {"S": "not-an-id"}})

    assert worker.handle({"Records": [record]}, FakeLambdaContext()) == {"batchItemFailures": []}
    assert publisher.sent == []


def test_worker_emits_metrics_including_oldest_pending_age(
    worker: StreamWorker, store: InMemoryMessageStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each invocation writes EMF metrics: relayed, quarantined, failures and the oldest pending age."""
    envelope = _accept(store)
    worker.handle({"Records": [_insert(envelope, "1")]}, FakeLambdaContext())

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    merged = {k: v for line in lines for k, v in line.items()}
    assert merged["MessagesRelayed"] == 1
    assert "RelayFailures" not in merged  # a count of 0 is not written
    assert merged["OldestPendingAgeSeconds"] >= 0


def _sqs(envelope_body: str, receive_count: int = 1) -> dict[str, Any]:
    return {
        "Records": [
            {"messageId": "sqs-1", "body": envelope_body, "attributes": {"ApproximateReceiveCount": str(receive_count)}}
        ]
    }


def test_consumer_delivers_a_copy_ahead_of_its_flip_and_drops_a_completed_one(store: InMemoryMessageStore) -> None:
    """A copy in hand proves the send: PENDING -> PROCESSING -> COMPLETED at once; a later copy is dropped."""
    envelope = _accept(store)
    consumer = Consumer(store)
    assert consumer.handle(_sqs(envelope.to_json())) == {"batchItemFailures": []}
    record = store.records[envelope.message_id]
    assert [h.status for h in record.history] == [Status.PENDING, Status.PROCESSING, Status.COMPLETED]
    assert consumer.handle(_sqs(envelope.to_json())) == {"batchItemFailures": []}
    assert len(store.records[envelope.message_id].history) == 3


def test_consumer_gives_up_after_max_attempts(store: InMemoryMessageStore) -> None:
    """Invariant 7 (no poison blocks a shard): after max delivery attempts the message is FAILED, not retried."""
    envelope = _accept(store)
    store.transition(envelope.message_id, Status.QUEUED, by="worker")

    def always_fails(_: Envelope) -> None:
        raise TimeoutError

    consumer = Consumer(store, always_fails, policy=ConsumerPolicy(max_attempts=2))
    results = [consumer.handle(_sqs(envelope.to_json())) for _ in range(3)]

    assert [len(r["batchItemFailures"]) for r in results] == [1, 1, 0]
    record = store.records[envelope.message_id]
    assert record.status is Status.FAILED
    assert record.reason == "gave up: 2 delivery attempts failed, the most allowed"
    assert record.attempts == 3  # the leases taken: the third gave up without delivering


def test_consumer_grace_for_a_failed_record_being_redriven(store: InMemoryMessageStore) -> None:
    """A copy of a FAILED record is retried for a few receives (a re-drive may be mid-flip), then dropped."""
    envelope = _accept(store)
    store.transition(envelope.message_id, Status.FAILED, by="worker", reason="poison")
    consumer = Consumer(store, policy=ConsumerPolicy(redrive_grace_receives=3))

    assert consumer.handle(_sqs(envelope.to_json(), 1))["batchItemFailures"] == [{"itemIdentifier": "sqs-1"}]
    assert consumer.handle(_sqs(envelope.to_json(), 3))["batchItemFailures"] == []
    assert store.records[envelope.message_id].status is Status.FAILED


def test_consumer_malformed_bodies(store: InMemoryMessageStore) -> None:
    """Garbage goes back to SQS (and so to the DLQ); a body in no format we write changes nothing of its record.

    A body that names no message in a format we write could be anyone's: it neither fails nor
    delivers the message it names (schema 1 was never written by a release).
    """
    consumer = Consumer(store)
    assert consumer.handle(_sqs("garbage"))["batchItemFailures"] == [{"itemIdentifier": "sqs-1"}]
    assert consumer.handle({"Records": [{"body": "no message id"}]}) == {"batchItemFailures": []}

    envelope = _accept(store)
    store.transition(envelope.message_id, Status.QUEUED, by="worker")
    before = store.records[envelope.message_id]
    other = json.dumps({"message_id": envelope.message_id, "schema_version": 1, "created_at": "t", "payload": {}})
    assert consumer.handle(_sqs(other))["batchItemFailures"] == [{"itemIdentifier": "sqs-1"}]
    unreadable = json.dumps({"message_id": envelope.message_id, "schema_version": 99, "payload": {}})
    assert consumer.handle(_sqs(unreadable))["batchItemFailures"] == [{"itemIdentifier": "sqs-1"}]
    assert store.records[envelope.message_id] == before


def test_default_delivery_logs_no_personal_data(store: InMemoryMessageStore) -> None:
    """The default delivery logs the id and channel only: no recipient or body in any line."""
    out = io.StringIO()
    configure_logging(out, level="DEBUG")
    envelope = _accept(store)
    store.transition(envelope.message_id, Status.QUEUED, by="worker")
    Consumer(store).handle(_sqs(envelope.to_json()))

    text = out.getvalue()
    assert "message_delivered" in text
    assert "+14155550100" not in text
    assert '"hi"' not in text
