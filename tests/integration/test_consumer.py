"""The reference consumer on moto: QUEUED -> PROCESSING -> COMPLETED, dedup by message_id."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
import structlog

from outbox.consumer import make_handler
from outbox.domain.envelope import Envelope, new_envelope
from outbox.domain.errors import DeliveryError
from outbox.domain.keys import iso, utc_now
from outbox.domain.message import new_message_id
from outbox.domain.status import Status
from outbox.local import emulator
from outbox.logs import configure_logging
from outbox.service.consume import Consumer, ConsumerPolicy
from outbox.testing import FakeLambdaContext
from tests.integration.conftest import Stack, sqs_event

TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
OTHER_TRACE = "Root=1-67c2f5a0-3f1e2d4c5b6a798012345678;Parent=1111111111111111;Sampled=0"
FORGED_TRACE = "Root=1-00000000-000000000000000000000bad;Parent=000000000000dead;Sampled=1"


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


def _traced_message(stack: Stack, trace: str, *, payload: dict[str, Any] | None = None) -> Envelope:
    """A message accepted through the store with ``trace`` (its created_at now), relayed by the stream worker."""
    envelope = new_envelope(
        payload or {"order_id": "o-1"},
        type="OrderPlaced",
        message_id=new_message_id(),
        created_at=iso(utc_now()),
        group_key="customer-7",
        trace_id=trace,
    )
    stack.store.accept(envelope, idempotency_key=None)
    assert stack.worker.handle(stack.stream_event(), FakeLambdaContext()) == {"batchItemFailures": []}
    return envelope


def _consumer_handler(stack: Stack, delivered: list[Envelope]) -> Callable[[dict[str, Any]], Any]:
    """The consumer's Lambda handler (``make_handler``) on the stack's table, delivering into ``delivered``."""
    handler = make_handler(delivered.append)

    def handle(event: dict[str, Any]) -> Any:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("OUTBOX_TABLE_NAME", stack.resources.table_name)
            return handler(event, FakeLambdaContext())

    return handle


def _as_0_1_0_body(envelope: Envelope, **change: Any) -> str:
    """The whole envelope as 0.1.0 sent it (schema 2), with ``change`` made to it."""
    return json.dumps(json.loads(envelope.to_json()) | {"schema_version": 2} | change)


def test_a_forged_copy_is_delivered_as_its_record_holds_it(stack: Stack) -> None:
    """Invariant 11: a body with the record's type, payload and group but other trace and time delivers the record's."""
    # GIVEN a message relayed, and a forged copy naming it: same payload hash, forged created_at and trace_id
    envelope = _traced_message(stack, TRACE)
    (genuine,) = stack.receive_all()
    forged_body = _as_0_1_0_body(envelope, created_at="1999-01-01T00:00:00.000Z", trace_id=FORGED_TRACE)
    forged = dict(genuine, Body=forged_body, MessageId="forged-1", ReceiptHandle="forged-rh")
    delivered: list[Envelope] = []
    handle = _consumer_handler(stack, delivered)
    # WHEN the consumer's handler receives it
    assert handle(sqs_event([forged])) == {"batchItemFailures": []}
    # THEN what is delivered is the record's, and the genuine copy that follows is a duplicate
    assert delivered == [envelope]
    assert (delivered[0].created_at, delivered[0].trace_id) == (envelope.created_at, TRACE)
    assert handle(sqs_event([genuine])) == {"batchItemFailures": []}
    assert delivered == [envelope]
    assert stack.store.get(envelope.message_id).status is Status.COMPLETED


def test_a_replayed_genuine_body_is_delivered_as_the_record_it_names_holds_it(stack: Stack) -> None:
    """Invariant 11: a genuine body replayed under another id of the same payload hash delivers that id's record."""
    # GIVEN two messages of the same type, payload and group, written at different times under different traces
    first = _traced_message(stack, TRACE)
    second = _traced_message(stack, OTHER_TRACE)
    assert first.payload_hash() == second.payload_hash()
    copies = {json.loads(m["Body"])["message_id"]: m for m in stack.receive_all()}
    genuine = copies[first.message_id]
    replayed = dict(genuine, Body=_as_0_1_0_body(first, message_id=second.message_id), MessageId="replayed-1")
    delivered: list[Envelope] = []
    handle = _consumer_handler(stack, delivered)
    # WHEN the first's genuine body comes back naming the second
    assert handle(sqs_event([replayed])) == {"batchItemFailures": []}
    # THEN the second is delivered as its record holds it, never with the first's time or trace
    assert delivered == [second]
    # AND a genuine copy replayed once its message has COMPLETED delivers nothing again
    assert handle(sqs_event([copies[second.message_id]])) == {"batchItemFailures": []}
    assert handle(sqs_event([dict(copies[second.message_id], MessageId="replayed-2")])) == {"batchItemFailures": []}
    assert delivered == [second]


def test_the_lease_write_returns_what_is_delivered_at_no_extra_request(stack: Stack) -> None:
    """One UpdateItem takes the lease and returns the record (no GetItem), one completes it: two requests."""
    envelope = _traced_message(stack, TRACE)
    (copy,) = stack.receive_all()
    assert json.loads(copy["Body"]) == {"message_id": envelope.message_id, "schema_version": 3}
    delivered: list[Envelope] = []
    stack.faults.calls.clear()
    assert Consumer(stack.store, delivered.append).handle(sqs_event([copy])) == {"batchItemFailures": []}
    assert dict(stack.faults.calls) == {"UpdateItem": 2}
    assert delivered == [envelope]


def test_the_trace_travels_from_the_writer_to_the_consumers_log_lines(stack: Stack) -> None:
    """Issue 26: the relay sends the record's trace as AWSTraceHeader; the consumer's lines carry it."""
    emulator.install_batch_system_attributes()  # moto as shipped drops a batch entry's AWSTraceHeader
    try:
        envelope = _traced_message(stack, TRACE)
        (copy,) = stack.receive_all()
    finally:
        emulator.uninstall_batch_system_attributes()
    # GIVEN the copy as Lambda's SQS mapping delivers it: attributes.AWSTraceHeader set by the relay
    event = sqs_event([copy])
    assert event["Records"][0]["attributes"]["AWSTraceHeader"] == TRACE
    lines = io.StringIO()
    configure_logging(lines)

    def deliver(delivered: Envelope) -> None:
        structlog.get_logger("orders").info("order_shipped", message_id=delivered.message_id)

    # WHEN the consumer's handler delivers it
    handler = make_handler(deliver)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OUTBOX_TABLE_NAME", stack.resources.table_name)
        assert handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    # THEN the delivery's own line carries the trace, and nothing of it outlives the copy
    logged = [json.loads(line) for line in lines.getvalue().splitlines()]
    (shipped,) = [line for line in logged if line["event"] == "order_shipped"]
    assert (shipped["trace_id"], shipped["message_id"]) == (TRACE, envelope.message_id)
    assert "trace_id" not in next(line for line in logged if line["event"] == "batch_consumed")
    assert "trace_id" not in structlog.contextvars.get_contextvars()
