"""The reference consumer on moto: QUEUED -> PROCESSING -> COMPLETED, dedup by message_id."""

from __future__ import annotations

import json

from outbox.domain.envelope import Envelope
from outbox.domain.errors import DeliveryError
from outbox.domain.status import Status
from outbox.service.consume import Consumer, ConsumerPolicy
from outbox.testing import FakeLambdaContext
from tests.integration.conftest import Stack, sqs_event


def _accept_and_relay(stack: Stack) -> str:
    body = json.dumps({"channel": "push", "recipient": "a" * 64, "body": "ping"})
    message_id: str = json.loads(stack.post(body)["body"])["message_id"]
    assert stack.worker.handle(stack.stream_event(), FakeLambdaContext()) == {"batchItemFailures": []}
    return message_id


def test_message_reaches_completed_with_full_history(stack: Stack) -> None:
    """Invariant 4 (forward only): the whole lifecycle, each step one conditional write, in order."""
    message_id = _accept_and_relay(stack)
    messages = stack.receive_all()

    response = stack.consumer.handle(sqs_event(messages))

    assert response == {"batchItemFailures": []}
    record = stack.store.get(message_id)
    assert record.status is Status.COMPLETED
    assert [h.status for h in record.history] == [Status.PENDING, Status.QUEUED, Status.PROCESSING, Status.COMPLETED]
    assert [h.by for h in record.history] == ["api", "worker", "consumer", "consumer"]
    assert record.attempts == 1


def test_duplicate_copy_of_completed_message_is_acknowledged_and_skipped(stack: Stack) -> None:
    """Invariant 6 (dedupable): a second copy of a COMPLETED message is acknowledged and changes nothing."""
    message_id = _accept_and_relay(stack)
    event = sqs_event(stack.receive_all())
    stack.consumer.handle(event)
    delivered: list[str] = []
    consumer = Consumer(stack.store, lambda envelope: delivered.append(envelope.message_id))

    response = consumer.handle(event)

    assert response == {"batchItemFailures": []}
    assert delivered == []
    assert len(stack.store.get(message_id).history) == 4


def test_permanent_delivery_failure_marks_failed_with_reason(stack: Stack) -> None:
    """A delivery that can never succeed ends FAILED with its reason, and the SQS message is acknowledged."""
    message_id = _accept_and_relay(stack)

    def reject(envelope: Envelope) -> None:
        raise DeliveryError("provider rejected the device token", retryable=False)

    response = Consumer(stack.store, reject).handle(sqs_event(stack.receive_all()))

    assert response == {"batchItemFailures": []}
    record = stack.store.get(message_id)
    assert record.status is Status.FAILED
    assert record.reason == "delivery failed: provider rejected the device token"


def test_passing_delivery_failure_is_redelivered_and_counts_attempts(stack: Stack) -> None:
    """A retryable delivery failure is reported by SQS messageId; the redelivery is PROCESSING -> PROCESSING."""
    message_id = _accept_and_relay(stack)
    event = sqs_event(stack.receive_all())
    calls: list[int] = []

    def flaky(envelope: Envelope) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise DeliveryError("provider timed out")

    consumer = Consumer(stack.store, flaky)
    first = consumer.handle(event)
    second = consumer.handle(event)

    assert first == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert second == {"batchItemFailures": []}
    record = stack.store.get(message_id)
    assert record.status is Status.COMPLETED
    assert record.attempts == 2
    assert [h.status for h in record.history].count(Status.PROCESSING) == 2


def test_copy_arriving_before_the_flip_is_delivered_at_once(stack: Stack) -> None:
    """Invariant 3 (send, then move on): a copy in hand proves the send, so PENDING goes straight to PROCESSING."""
    body = json.dumps({"channel": "sms", "recipient": "+14155550100", "body": "x"})
    message_id = json.loads(stack.post(body)["body"])["message_id"]
    stream = stack.stream_event()
    stack.faults.fail("UpdateItem", "ProvisionedThroughputExceededException")
    assert stack.worker.handle(stream, FakeLambdaContext())["batchItemFailures"]  # sent, flip throttled
    event = sqs_event(stack.receive_all())

    assert stack.consumer.handle(event) == {"batchItemFailures": []}
    record = stack.store.get(message_id)
    assert [h.status for h in record.history] == [Status.PENDING, Status.PROCESSING, Status.COMPLETED]
    # The stream redelivers the batch: the late flip finds the message done and changes nothing.
    stack.worker.handle(stream, FakeLambdaContext())
    assert stack.store.get(message_id).history == record.history


def test_transitions_never_touch_payload_or_other_attributes(stack: Stack) -> None:
    """Invariant 5 (metadata preserved): through the whole lifecycle only status fields and history change."""
    message_id = _accept_and_relay(stack)
    key = (f"MSG#{message_id}", "MSG")
    queued = stack.raw_item(*key)
    assert queued is not None

    stack.consumer.handle(sqs_event(stack.receive_all()))

    completed = stack.raw_item(*key)
    assert completed is not None
    # expires_at: an ended record's time to live (OUTBOX_RECORD_RETENTION_DAYS), set by the terminal move.
    status_fields = {"status", "history", "updated_at", "attempts", "reason", "lease_owner", "lease_until"}
    status_fields |= {"expires_at", "ended_lease_owner"}  # ended_lease_owner: who ended it under a lease
    status_fields |= {"outbox_pk", "outbox_sk"}  # the record index's keys: in flight, then gone once it ends
    assert {k: v for k, v in completed.items() if k not in status_fields} == {
        k: v for k, v in queued.items() if k not in status_fields
    }
    assert completed["history"]["L"][: len(queued["history"]["L"])] == queued["history"]["L"]


def test_redriven_message_gets_a_fresh_delivery_budget(stack: Stack) -> None:
    """A message that exhausted its delivery attempts, re-driven FAILED -> QUEUED, can complete (chaos found it)."""
    message_id = _accept_and_relay(stack)
    event = sqs_event(stack.receive_all())

    def down(envelope: Envelope) -> None:
        raise DeliveryError("provider down")

    failing = Consumer(stack.store, down, policy=ConsumerPolicy(max_attempts=2))
    for _ in range(3):
        failing.handle(event)
    assert stack.store.get(message_id).status is Status.FAILED

    stack.store.transition(message_id, Status.QUEUED, by="replay")
    assert stack.consumer.handle(event) == {"batchItemFailures": []}

    record = stack.store.get(message_id)
    assert record.status is Status.COMPLETED
    assert record.attempts == 1


def test_a_forged_copy_fails_the_start_condition_in_one_request_and_changes_nothing(stack: Stack) -> None:
    """The payload hash is in the PROCESSING condition: one UpdateItem, no GetItem, no change, dropped."""
    message_id = _accept_and_relay(stack)
    (message,) = stack.receive_all()
    real = message["Body"]
    data = json.loads(real)
    data["payload"] = {"channel": "push", "recipient": "b" * 64, "body": "forged"}
    forged = dict(message, Body=json.dumps(data), MessageId="forged-1")
    before = stack.raw_item(f"MSG#{message_id}", "MSG")
    stack.faults.calls.clear()

    response = stack.consumer.handle(sqs_event([forged]))

    assert response == {"batchItemFailures": []}
    assert dict(stack.faults.calls) == {"UpdateItem": 1}
    assert stack.raw_item(f"MSG#{message_id}", "MSG") == before
    assert stack.consumer.stats["forged"] == 1
    # AND the real copy is delivered as ever
    assert stack.consumer.handle(sqs_event([message])) == {"batchItemFailures": []}
    assert stack.store.get(message_id).status is Status.COMPLETED
