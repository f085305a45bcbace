"""The shipped test harness in memory (``outbox_memory``) and the event builders: what users' tests stand on.

No process, socket or emulator: the in-memory store, the real relay and consumer, and plain events.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import UTC, datetime

import pytest

from outbox import DeliveryError, Envelope, Status, ValidationError
from outbox.harness import LOCAL_EXTRA_MISSING, LocalExtraMissingError, MemoryOutbox, local_outbox
from outbox.lambda_events import (
    QUEUE_ARN,
    http_api_event,
    lambda_stream_record,
    sqs_event,
    sqs_record,
    stream_event,
    stream_record,
)
from outbox.service.accept import new_message
from outbox.service.consume import Consumer, sqs_copy
from outbox.testing import FakeLambdaContext, InMemoryMessageStore

# Every field Lambda's SQS mapping fills in a record.
SQS_FIELDS = {
    "messageId",
    "receiptHandle",
    "body",
    "attributes",
    "messageAttributes",
    "md5OfBody",
    "eventSource",
    "eventSourceARN",
    "awsRegion",
}


def test_a_message_reaches_the_delivery_function_once_and_completes(outbox_memory: MemoryOutbox) -> None:
    """run(): the message is relayed, delivered once, COMPLETED; its copy is gone, so a second run delivers nothing."""
    delivered: list[Envelope] = []
    message = outbox_memory.message({"order_id": "o-1"}, type="OrderPlaced")

    assert outbox_memory.run(delivered.append) == {"batchItemFailures": []}
    assert outbox_memory.run(delivered.append) == {"batchItemFailures": []}

    assert [(e.message_id, e.payload) for e in delivered] == [(message.message_id, {"order_id": "o-1"})]
    record = outbox_memory.record(message.message_id)
    assert [line.status for line in record.history] == [
        Status.PENDING,
        Status.QUEUED,
        Status.PROCESSING,
        Status.COMPLETED,
    ]


def test_a_retried_delivery_comes_back_on_the_next_consume(outbox_memory: MemoryOutbox) -> None:
    """A delivery that raises is listed for a retry, its copy stays queued, and the next consume delivers it again."""
    calls: list[str] = []

    def flaky(envelope: Envelope) -> None:
        calls.append(envelope.message_id)
        if len(calls) == 1:
            raise RuntimeError("the mail server hung up")

    message = outbox_memory.message({"n": 1}, type="Ping")
    first = outbox_memory.run(flaky)
    assert len(first["batchItemFailures"]) == 1
    assert outbox_memory.record(message.message_id).status is Status.PROCESSING

    assert outbox_memory.consume(flaky) == {"batchItemFailures": []}
    record = outbox_memory.record(message.message_id)
    assert (record.status, record.attempts, calls) == (Status.COMPLETED, 2, [message.message_id] * 2)


def test_a_refused_delivery_ends_failed_with_its_reason(outbox_memory: MemoryOutbox) -> None:
    """DeliveryError(retryable=False): FAILED at the first attempt, the reason kept, nothing asked of the queue."""

    def refuse(envelope: Envelope) -> None:
        raise DeliveryError(f"no route for {envelope.type}", retryable=False)

    message = outbox_memory.message({}, type="Unknown")
    assert outbox_memory.run(refuse) == {"batchItemFailures": []}
    record = outbox_memory.record(message.message_id)
    assert (record.status, record.attempts) == (Status.FAILED, 1)
    assert "no route for Unknown" in (record.reason or "")


def test_a_fifo_failure_holds_back_the_rest_of_its_group() -> None:
    """On a FIFO queue, the consumer stops a group at its first failure: the group's next message waits."""
    memory = MemoryOutbox(fifo=True)
    try:
        first = memory.message({"n": 1}, type="Step", group_key="customer-7")
        second = memory.message({"n": 2}, type="Step", group_key="customer-7")
        seen: list[int] = []

        def fail_first_time(envelope: Envelope) -> None:
            seen.append(envelope.payload["n"])
            if seen == [1]:
                raise RuntimeError("not yet")

        assert len(memory.run(fail_first_time)["batchItemFailures"]) == 2
        assert seen == [1]
        assert memory.consume(fail_first_time) == {"batchItemFailures": []}
        assert seen == [1, 1, 2]
        assert {memory.record(m.message_id).status for m in (first, second)} == {Status.COMPLETED}
    finally:
        memory.close()


def test_a_message_is_checked_as_outbox_message_checks_it(outbox_memory: MemoryOutbox) -> None:
    """A payload JSON cannot hold is refused, naming where, before anything is stored."""
    with pytest.raises(ValidationError, match=r"payload\.price"):
        outbox_memory.message({"price": float("nan")}, type="OrderPlaced")
    assert outbox_memory.store.records == {}


def test_without_moto_the_local_outbox_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """No moto: one line naming the [local] extra, from the harness and from the fixture."""
    monkeypatch.setitem(sys.modules, "moto", None)  # import moto now raises ImportError
    with (
        pytest.raises(
            LocalExtraMissingError, match=r"^the local outbox needs moto: pip install 'dynamodb-outbox\[local\]'$"
        ),
        local_outbox(),
    ):
        pass
    assert LOCAL_EXTRA_MISSING.endswith("pip install 'dynamodb-outbox[local]'")


def test_without_moto_the_fixture_fails_in_one_line(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outbox_local fixture fails the test (no traceback) with the line naming the extra."""
    monkeypatch.setitem(sys.modules, "moto", None)
    with pytest.raises(pytest.fail.Exception, match=r"^outbox_local: the local outbox needs moto") as failed:
        request.getfixturevalue("outbox_local")
    assert failed.value.pytrace is False


def test_an_sqs_record_has_every_field_lambda_fills() -> None:
    """sqs_record: Lambda's fields, the body's MD5, the receive count; a FIFO copy's group and dedup id."""
    record = sqs_record('{"message_id": "m-1"}', receive_count=3, group_id="g-1")
    assert set(record) == SQS_FIELDS
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode(), usedforsecurity=False).hexdigest()
    assert record["attributes"]["ApproximateReceiveCount"] == "3"
    assert record["attributes"]["MessageGroupId"] == "g-1"
    assert record["attributes"]["MessageDeduplicationId"]
    assert (record["eventSourceARN"], record["awsRegion"]) == (QUEUE_ARN, "us-east-1")
    copy = sqs_copy(record)  # as the consumer reads a copy
    assert copy is not None
    assert (copy.receives, copy.group) == (3, "g-1")
    assert "MessageGroupId" not in sqs_record("{}")["attributes"]


def test_the_consumer_delivers_from_a_built_sqs_event() -> None:
    """A stored message's copy, built as Lambda delivers it, runs through the real consumer to COMPLETED."""
    store = InMemoryMessageStore()
    envelope = new_message({"n": 1}, type="Ping").envelope
    store.accept(envelope, idempotency_key=None)
    delivered: list[str] = []
    event = sqs_event([sqs_record(envelope.to_json())])
    response = Consumer(store, lambda e: delivered.append(e.message_id)).handle(event, FakeLambdaContext())
    assert (response, delivered) == ({"batchItemFailures": []}, [envelope.message_id])
    assert store.get(envelope.message_id).status is Status.COMPLETED


def test_stream_records_say_what_changed() -> None:
    """stream_record: INSERT, MODIFY or REMOVE from the images given; GetRecords' datetime becomes epoch seconds."""
    keys = {"pk": {"S": "OUTBOX#0001"}, "sk": {"S": "x"}}
    assert stream_record(keys, new_image=keys)["eventName"] == "INSERT"
    assert stream_record(keys, new_image=keys, old_image=keys)["eventName"] == "MODIFY"
    assert stream_record(keys, old_image=keys)["eventName"] == "REMOVE"
    record = stream_record(keys, new_image=keys, sequence_number="42")
    assert (record["dynamodb"]["SequenceNumber"], record["eventSource"]) == ("42", "aws:dynamodb")
    created = datetime(2026, 1, 1, tzinfo=UTC)
    shaped = lambda_stream_record({"eventName": "INSERT", "dynamodb": {"ApproximateCreationDateTime": created}})
    assert shaped["dynamodb"]["ApproximateCreationDateTime"] == int(created.timestamp())
    assert stream_event([record]) == {"Records": [record]}


def test_an_http_api_event_carries_the_callers_identity() -> None:
    """http_api_event: payload 2.0, the IAM authorizer's fields for an assumed role, a JWT's claims."""
    event = http_api_event("POST", "/orders", body="{}", iam_arn="arn:aws:sts::123456789012:assumed-role/app/s-1")
    iam = event["requestContext"]["authorizer"]["iam"]
    assert (event["version"], event["requestContext"]["http"]["method"]) == ("2.0", "POST")
    assert iam["userId"].startswith("AROA")
    assert iam["userId"].endswith(":s-1")
    jwt = http_api_event("GET", "/orders", jwt_claims={"iss": "https://issuer", "sub": "u-1"})
    assert jwt["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] == "u-1"
