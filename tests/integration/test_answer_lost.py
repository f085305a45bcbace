"""Writes applied but unanswered, on moto: the fault at the botocore boundary, botocore's own retries included.

``FaultInjector.answer_lost`` lets a request take effect and then loses its answer (a read
timeout, or a 500): botocore retries it as it does any timeout (standard mode), and the retry
meets the write's own effect; with ``retried=False`` the caller sees the fault and our own retry
meets it. Either way the writer must know the effect for its own: a lease this receive holds is
this receive's, an end this lease holder wrote is its end, counted once.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from outbox.adapters.visibility import SqsVisibility
from outbox.bootstrap import DLQ_MAX_RECEIVE_COUNT
from outbox.domain.envelope import Envelope
from outbox.domain.errors import DeliveryError
from outbox.domain.status import Status
from outbox.faults import writes_status
from outbox.local.events import to_sqs_record
from outbox.metrics import MESSAGES_FAILED
from outbox.service.consume import Consumer, ConsumerPolicy
from outbox.service.dead_letter import DeadLetters
from outbox.testing import FakeLambdaContext
from tests.integration.conftest import Stack, sqs_event

# As deployed: the consumer knows the queue's maxReceiveCount; no pause between its own tries.
POLICY = ConsumerPolicy(max_receive_count=DLQ_MAX_RECEIVE_COUNT, status_write_pause_s=0)
LOST = [("timeout", True), ("500", True), ("timeout", False)]
LOST_IDS = ["timeout-retried-by-botocore", "500-retried-by-botocore", "timeout-retried-by-us"]


@pytest.fixture(autouse=True)
def _metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTBOX_METRICS", "on")


def _accept_and_relay(stack: Stack) -> str:
    body = json.dumps({"channel": "push", "recipient": "a" * 64, "body": "ping"})
    message_id: str = json.loads(stack.post(body)["body"])["message_id"]
    assert stack.worker.handle(stack.stream_event(), FakeLambdaContext()) == {"batchItemFailures": []}
    return message_id


def _last_receive(stack: Stack) -> list[dict[str, Any]]:
    """Receive the copy until its receive is the last the queue allows (each earlier one made visible again)."""
    url = stack.resources.queue_url
    for _ in range(DLQ_MAX_RECEIVE_COUNT):
        messages: list[dict[str, Any]] = stack.sqs.receive_message(
            QueueUrl=url, VisibilityTimeout=0, AttributeNames=["All"]
        ).get("Messages", [])
        (message,) = messages
        if int(message["Attributes"]["ApproximateReceiveCount"]) == DLQ_MAX_RECEIVE_COUNT:
            return messages
    raise AssertionError("the copy never reached its last receive")


def _metric(out: str, name: str) -> float:
    return sum(json.loads(line).get(name, 0) for line in out.splitlines() if line.startswith('{"_aws"'))


def _statuses(stack: Stack, message_id: str) -> list[Status]:
    return [line.status for line in stack.store.get(message_id).history]


@pytest.mark.parametrize(("answer", "retried"), LOST, ids=LOST_IDS)
def test_a_lease_taken_unanswered_on_the_last_receive_is_delivered_and_ended(
    stack: Stack, answer: str, retried: bool
) -> None:
    """Invariants 2 and 6: the last allowed receive's lease write lands unanswered; the record still ends COMPLETED.

    The old code took the retry's failed condition (PROCESSING, under this very receive's lease)
    for another receive's, acknowledged the copy and left the record PROCESSING for good: no
    delivery, nothing in the queue or the dead-letter queue, nothing the sweeper reads.
    """
    message_id = _accept_and_relay(stack)
    messages = _last_receive(stack)
    delivered: list[str] = []
    consumer = Consumer(stack.store, lambda e: delivered.append(e.message_id), policy=POLICY)
    stack.faults.answer_lost("UpdateItem", answer=answer, retried=retried, when=writes_status("PROCESSING"))

    response = consumer.handle(sqs_event(messages))

    assert stack.faults.injected["UpdateItem:answer_lost"] == 1
    assert response == {"batchItemFailures": []}
    assert delivered == [message_id]
    assert _statuses(stack, message_id) == [Status.PENDING, Status.QUEUED, Status.PROCESSING, Status.COMPLETED]
    assert stack.store.get(message_id).attempts == 1


@pytest.mark.parametrize(("answer", "retried"), LOST, ids=LOST_IDS)
def test_a_completion_applied_unanswered_counts_messages_completed_once(
    stack: Stack, capsys: pytest.CaptureFixture[str], answer: str, retried: bool
) -> None:
    """Metrics count what happened: the COMPLETED write landed, its answer was lost; MessagesCompleted is 1, not 0."""
    message_id = _accept_and_relay(stack)
    consumer = Consumer(stack.store, policy=POLICY)
    stack.faults.answer_lost("UpdateItem", answer=answer, retried=retried, when=writes_status("COMPLETED"))
    capsys.readouterr()

    response = consumer.handle(sqs_event(stack.receive_all()))

    assert stack.faults.injected["UpdateItem:answer_lost"] == 1
    assert response == {"batchItemFailures": []}
    assert stack.store.get(message_id).status is Status.COMPLETED
    assert (consumer.stats["completed"], consumer.stats["duplicates"]) == (1, 0)
    assert _metric(capsys.readouterr().out, "MessagesCompleted") == 1


def test_a_failure_applied_unanswered_counts_messages_failed_once(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """The alarm's metric: a FAILED write that landed unanswered is one MessagesFailed."""
    message_id = _accept_and_relay(stack)

    def refuse(_: Envelope) -> None:
        raise DeliveryError("the provider refused the device token", retryable=False)

    consumer = Consumer(stack.store, refuse, policy=POLICY)
    stack.faults.answer_lost("UpdateItem", when=writes_status("FAILED"))
    capsys.readouterr()

    assert consumer.handle(sqs_event(stack.receive_all())) == {"batchItemFailures": []}

    assert stack.store.get(message_id).status is Status.FAILED
    assert consumer.stats["failed"] == 1
    assert _metric(capsys.readouterr().out, MESSAGES_FAILED) == 1


def test_the_dead_letter_functions_writes_applied_unanswered_end_the_record_once(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Invariant 7: its lease and its FAILED write both land unanswered; one receive ends the record, counted once."""
    message_id = _accept_and_relay(stack)
    for _ in range(DLQ_MAX_RECEIVE_COUNT):  # receives that ended without an outcome; the next one moves the copy
        assert stack.sqs.receive_message(QueueUrl=stack.resources.queue_url, VisibilityTimeout=0).get("Messages")
    assert not stack.sqs.receive_message(QueueUrl=stack.resources.queue_url).get("Messages")
    (copy,) = stack.receive_all(stack.resources.dlq_url)
    dlq_arn = stack.sqs.get_queue_attributes(QueueUrl=stack.resources.dlq_url, AttributeNames=["QueueArn"])
    event = {"Records": [to_sqs_record(copy, dlq_arn["Attributes"]["QueueArn"])]}
    dead_letters = DeadLetters(stack.store, visibility=SqsVisibility(stack.sqs))
    stack.faults.answer_lost("UpdateItem", when=writes_status("PROCESSING", "FAILED"), times=2)
    capsys.readouterr()

    assert dead_letters.handle(event, FakeLambdaContext()) == {"batchItemFailures": []}

    assert stack.faults.injected["UpdateItem:answer_lost"] == 2
    assert _statuses(stack, message_id) == [Status.PENDING, Status.QUEUED, Status.PROCESSING, Status.FAILED]
    assert _metric(capsys.readouterr().out, MESSAGES_FAILED) == 1


def test_a_flip_applied_unanswered_is_counted_relayed_not_duplicate(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """The worker's PENDING -> QUEUED lands unanswered and botocore retries it: one flip, counted as relayed."""
    body = json.dumps({"channel": "push", "recipient": "a" * 64, "body": "ping"})
    message_id = json.loads(stack.post(body)["body"])["message_id"]
    stack.faults.answer_lost("UpdateItem", when=writes_status("QUEUED"))
    capsys.readouterr()

    assert stack.worker.handle(stack.stream_event(), FakeLambdaContext()) == {"batchItemFailures": []}

    assert stack.faults.injected["UpdateItem:answer_lost"] == 1
    assert _statuses(stack, message_id) == [Status.PENDING, Status.QUEUED]
    out = capsys.readouterr().out
    assert (_metric(out, "MessagesRelayed"), _metric(out, "DuplicateDeliveries")) == (1, 0)


@pytest.mark.parametrize("operation", ["SendMessageBatch", "ChangeMessageVisibility", "DeleteMessage"])
def test_every_sqs_write_can_lose_its_answer(stack: Stack, operation: str) -> None:
    """The fault reaches SQS writes too: the request takes effect, botocore sends it again, the caller sees success."""
    body = json.dumps({"channel": "push", "recipient": "a" * 64, "body": "ping"})
    message_id = json.loads(stack.post(body)["body"])["message_id"]
    stack.faults.answer_lost(operation)
    assert stack.worker.handle(stack.stream_event(), FakeLambdaContext()) == {"batchItemFailures": []}
    copies = stack.receive_all()
    url = stack.resources.queue_url
    stack.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=copies[0]["ReceiptHandle"], VisibilityTimeout=0)
    for copy in stack.receive_all():
        stack.sqs.delete_message(QueueUrl=url, ReceiptHandle=copy["ReceiptHandle"])

    assert stack.faults.injected[f"{operation}:answer_lost"] == 1
    # A send whose answer was lost was sent twice (a standard queue keeps both copies): consumers dedupe.
    assert len(copies) == (2 if operation == "SendMessageBatch" else 1)
    assert {json.loads(c["Body"])["message_id"] for c in copies} == {message_id}
    assert stack.receive_all() == []


def test_a_relay_failure_whose_answer_was_lost_counts_once(stack: Stack) -> None:
    """SQS refuses a send (passing); the count's UpdateItem lands but its answer is lost: one failure, counted once."""
    body = json.dumps({"channel": "push", "recipient": "a" * 64, "body": "ping"})
    message_id = json.loads(stack.post(body)["body"])["message_id"]
    stack.faults.refuse({message_id}, code="InternalError", times=1)
    stack.faults.answer_lost("UpdateItem", when=lambda params: "relay_attempts" in params.get("UpdateExpression", ""))

    assert stack.worker.handle(stack.stream_event(), FakeLambdaContext()) != {"batchItemFailures": []}

    item = stack.dynamodb.get_item(
        TableName=stack.resources.table_name, Key={"pk": {"S": f"MSG#{message_id}"}, "sk": {"S": "MSG"}}
    )["Item"]
    assert item["status"]["S"] == "PENDING"
    assert item["relay_attempts"]["N"] == "1"  # botocore's retry met its own effect: not a second failure
