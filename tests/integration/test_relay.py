"""The worker on moto: stream records in, SQS messages out, records flipped conditionally."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from outbox.domain.errors import InvalidTransitionError
from outbox.domain.keys import in_flight_pk, iso, record_pk, utc_now
from outbox.domain.record import Lease
from outbox.domain.status import Status
from outbox.testing import FakeLambdaContext
from tests.integration.conftest import Stack


def _post(stack: Stack, n: int = 1, **fields: Any) -> list[str]:
    ids = []
    for i in range(n):
        body = {"channel": "sms", "recipient": "+14155550100", "body": f"code {i}", **fields}
        response = stack.post(json.dumps(body))
        assert response["statusCode"] == 202, response
        ids.append(json.loads(response["body"])["message_id"])
    return ids


def _record(stack: Stack, message_id: str) -> dict[str, Any]:
    item = stack.raw_item(record_pk(message_id), "MSG")
    assert item is not None
    return item


def test_stream_batch_sends_one_message_and_flips_record_keeping_other_attributes(stack: Stack) -> None:
    """Invariants 3 and 5: one SQS message per entry, then QUEUED with two history lines and nothing else changed."""
    (message_id,) = _post(stack)
    before = _record(stack, message_id)
    event = stack.stream_event()
    assert len(event["Records"]) == 2  # the record and the entry, both INSERTs
    assert all(r["eventSourceARN"] == stack.resources.stream_arn for r in event["Records"])

    response = stack.worker.handle(event, FakeLambdaContext())

    assert response == {"batchItemFailures": []}
    messages = stack.receive_all()
    assert [json.loads(m["Body"])["message_id"] for m in messages] == [message_id]
    after = _record(stack, message_id)
    assert after["status"]["S"] == "QUEUED"
    assert [h["M"]["status"]["S"] for h in after["history"]["L"]] == ["PENDING", "QUEUED"]
    assert after["history"]["L"][1]["M"]["by"]["S"] == "worker"
    # Out of its outbox bucket with PENDING: under its in-flight partition, since the flip.
    assert after["outbox_pk"]["S"] == in_flight_pk(message_id)
    assert after["outbox_sk"]["S"] == f"{after['updated_at']['S']}#{message_id}"
    untouched = set(before) - {"status", "history", "updated_at", "outbox_pk", "outbox_sk"}
    assert {k: after[k] for k in untouched} == {k: before[k] for k in untouched}


def test_same_batch_fed_again_changes_nothing_and_reports_no_failure(stack: Stack) -> None:
    """Invariant 4 (forward only): a duplicate delivery loses its condition, changes nothing, and is not a failure."""
    (message_id,) = _post(stack)
    event = stack.stream_event()
    stack.worker.handle(event, FakeLambdaContext())
    queued = _record(stack, message_id)

    response = stack.worker.handle(event, FakeLambdaContext())

    assert response == {"batchItemFailures": []}
    assert _record(stack, message_id) == queued


def test_fifo_duplicate_delivery_shows_no_second_message(fifo_stack: Stack) -> None:
    """Invariant 6 (dedupable): on FIFO every copy has MessageDeduplicationId = message_id; SQS drops the copy."""
    (message_id,) = _post(fifo_stack)
    event = fifo_stack.stream_event()
    fifo_stack.worker.handle(event, FakeLambdaContext())
    fifo_stack.worker.handle(event, FakeLambdaContext())

    messages = fifo_stack.receive_all()

    assert len(messages) == 1
    assert json.loads(messages[0]["Body"])["message_id"] == message_id
    assert messages[0]["Attributes"]["MessageDeduplicationId"] == message_id
    assert messages[0]["Attributes"]["MessageGroupId"] == message_id


def test_fifo_group_key_becomes_message_group_id(fifo_stack: Stack) -> None:
    """On FIFO the group key orders messages: it is the MessageGroupId, and order is kept."""
    ids = _post(fifo_stack, 3, group_key="customer-1")
    fifo_stack.worker.handle(fifo_stack.stream_event(), FakeLambdaContext())

    messages = fifo_stack.receive_all()

    assert [json.loads(m["Body"])["message_id"] for m in messages] == ids
    assert {m["Attributes"]["MessageGroupId"] for m in messages} == {"customer-1"}


def test_sqs_refusing_one_entry_leaves_it_pending_reported_and_blocks_its_group(stack: Stack) -> None:
    """Invariant 2 (nothing lost): a refused entry stays PENDING, its SequenceNumber is reported, its group waits."""
    first, second, third = _post(stack, 3, group_key="g1")
    (other,) = _post(stack, 1, group_key="g2")
    event = stack.stream_event()
    stack.faults.refuse({first}, code="InternalError", sender_fault=False)

    response = stack.worker.handle(event, FakeLambdaContext())

    seq = {
        json.loads(r["dynamodb"]["NewImage"]["envelope"]["S"])["message_id"]: r["dynamodb"]["SequenceNumber"]
        for r in event["Records"]
        if r["dynamodb"]["Keys"]["pk"]["S"].startswith("OUTBOX#")
    }
    reported = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert reported[0] == seq[first]
    assert set(reported) == {seq[first], seq[second], seq[third]}
    assert all(reported)
    assert [json.loads(m["Body"])["message_id"] for m in stack.receive_all()] == [other]
    assert _record(stack, first)["status"]["S"] == "PENDING"
    assert _record(stack, second)["status"]["S"] == "PENDING"
    assert _record(stack, other)["status"]["S"] == "QUEUED"


def test_sender_fault_is_quarantined_not_reported(stack: Stack) -> None:
    """Invariant 7 (no poison blocks a shard): an entry SQS rejects as a sender fault becomes FAILED with the reason."""
    (message_id,) = _post(stack)
    stack.faults.refuse({message_id}, code="InvalidParameterValue", sender_fault=True)

    response = stack.worker.handle(stack.stream_event(), FakeLambdaContext())

    assert response == {"batchItemFailures": []}
    record = _record(stack, message_id)
    assert record["status"]["S"] == "FAILED"
    assert "InvalidParameterValue" in record["reason"]["S"]


def test_malformed_outbox_image_is_quarantined_not_retried(stack: Stack) -> None:
    """Invariant 7 (no poison blocks a shard): an outbox entry without its envelope is FAILED, never reported."""
    (message_id,) = _post(stack)
    event = stack.stream_event()
    for record in event["Records"]:
        record["dynamodb"]["NewImage"].pop("envelope", None)

    response = stack.worker.handle(event, FakeLambdaContext())

    assert response == {"batchItemFailures": []}
    assert _record(stack, message_id)["status"]["S"] == "FAILED"
    assert stack.receive_all() == []


def test_flip_failure_reports_the_record_and_redelivery_completes_it(stack: Stack) -> None:
    """Invariant 2 (nothing lost): sent but not flipped is reported; the redelivery re-sends and flips."""
    (message_id,) = _post(stack)
    event = stack.stream_event()
    stack.faults.fail("UpdateItem", "ProvisionedThroughputExceededException")

    first = stack.worker.handle(event, FakeLambdaContext())
    assert len(first["batchItemFailures"]) == 1
    assert _record(stack, message_id)["status"]["S"] == "PENDING"

    second = stack.worker.handle(event, FakeLambdaContext())

    assert second == {"batchItemFailures": []}
    assert _record(stack, message_id)["status"]["S"] == "QUEUED"
    assert [json.loads(m["Body"])["message_id"] for m in stack.receive_all()] == [message_id, message_id]


def test_worker_sends_in_batches_of_ten(stack: Stack) -> None:
    """SQS costs at most 0.1 requests per message: 25 entries go out in 3 SendMessageBatch calls."""
    _post(stack, 25)
    event = stack.stream_event()
    stack.faults.calls.clear()

    assert stack.worker.handle(event, FakeLambdaContext()) == {"batchItemFailures": []}

    assert stack.faults.calls["SendMessageBatch"] == 3
    assert stack.faults.calls["UpdateItem"] == 25
    assert sum(stack.faults.calls.values()) / 25 <= 1.12  # the AWS floor: 0.1 SQS + 1 flip per message
    assert len(stack.receive_all()) == 25


def test_a_lost_lease_condition_says_until_when_the_lease_holds(stack: Stack) -> None:
    """The store reads the holder's lease_until back from the failed condition (ALL_OLD): no extra request."""
    (message_id,) = _post(stack)
    held = Lease("receive-1", iso(utc_now() + timedelta(seconds=40)))
    stack.store.transition(message_id, Status.PROCESSING, by="consumer", lease=held)
    stack.faults.calls.clear()

    other = Lease("receive-2", iso(utc_now() + timedelta(seconds=40)))
    with pytest.raises(InvalidTransitionError) as lost:
        stack.store.transition(message_id, Status.PROCESSING, by="consumer", lease=other)

    assert (lost.value.current, lost.value.lease_until) == (Status.PROCESSING, held.until)
    assert stack.faults.calls["UpdateItem"] == 1
    assert stack.faults.calls["GetItem"] == 0
