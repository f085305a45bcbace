"""Invariant 7 on moto: whatever the consumer's receives did, a copy in the dead-letter queue leaves its record FAILED.

SQS (moto) moves a copy to the dead-letter queue after the redrive policy's maxReceiveCount
receives; the dead-letter function settles what it finds there.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from outbox.adapters.visibility import SqsVisibility
from outbox.bootstrap import DLQ_MAX_RECEIVE_COUNT
from outbox.domain.envelope import Envelope
from outbox.domain.status import Status
from outbox.faults import SimulatedCrash
from outbox.local.events import to_sqs_record
from outbox.service.consume import Consumer, ConsumerPolicy
from outbox.service.dead_letter import BY, DeadLetters
from outbox.testing import FakeLambdaContext
from tests.integration.conftest import Stack, sqs_event

# The consumer as deployed: it knows the queue's maxReceiveCount; no pause between status-write tries.
POLICY = ConsumerPolicy(max_receive_count=DLQ_MAX_RECEIVE_COUNT, status_write_pause_s=0)


def _accept_and_relay(stack: Stack) -> str:
    body = json.dumps({"channel": "push", "recipient": "a" * 64, "body": "ping"})
    message_id: str = json.loads(stack.post(body)["body"])["message_id"]
    assert stack.worker.handle(stack.stream_event(), FakeLambdaContext()) == {"batchItemFailures": []}
    return message_id


def _receive(stack: Stack) -> list[dict[str, Any]]:
    """One receive of the main queue, the copy visible again at once (as if its visibility ran out)."""
    messages: list[dict[str, Any]] = stack.sqs.receive_message(
        QueueUrl=stack.resources.queue_url, VisibilityTimeout=0, AttributeNames=["All"]
    ).get("Messages", [])
    return messages


def _settle_dead_letters(stack: Stack) -> dict[str, list[dict[str, str]]]:
    """The dead-letter function over what the dead-letter queue holds, as its event source mapping delivers it.

    The function knows the main queue (as deployed: OUTBOX_QUEUE_URL), whose moved copies alone end records.
    """
    dlq_arn = stack.sqs.get_queue_attributes(QueueUrl=stack.resources.dlq_url, AttributeNames=["QueueArn"])
    copies = stack.receive_all(stack.resources.dlq_url)
    assert len(copies) == 1
    event = {"Records": [to_sqs_record(m, dlq_arn["Attributes"]["QueueArn"]) for m in copies]}
    dead_letters = DeadLetters(
        stack.store, visibility=SqsVisibility(stack.sqs), main_queue_url=stack.resources.queue_url
    )
    return dead_letters.handle(event, FakeLambdaContext())


def test_writes_throttled_on_every_receive_end_failed_not_queued_forever(stack: Stack) -> None:
    """The consumer could never take the lease (DynamoDB throttled it on every receive): the copy reaches the DLQ."""
    message_id = _accept_and_relay(stack)
    stack.faults.fail("UpdateItem", "ProvisionedThroughputExceededException", times=-1)
    consumer = Consumer(stack.store, policy=POLICY)
    receives = 0
    while messages := _receive(stack):
        receives += 1
        assert consumer.handle(sqs_event(messages), FakeLambdaContext())["batchItemFailures"]
    assert receives == DLQ_MAX_RECEIVE_COUNT  # then SQS moved the copy to the dead-letter queue
    assert stack.store.get(message_id).status is Status.QUEUED  # the limbo the dead-letter function ends
    stack.faults.clear()

    assert _settle_dead_letters(stack) == {"batchItemFailures": []}

    record = stack.store.get(message_id)
    assert record.status is Status.FAILED
    assert record.reason is not None
    assert "dead-letter queue" in record.reason
    assert [(h.status, h.by) for h in record.history][-2:] == [(Status.PROCESSING, BY), (Status.FAILED, BY)]


def test_an_invocation_that_dies_on_the_last_receive_leaves_no_record_processing(stack: Stack) -> None:
    """The last allowed receive took the lease and its invocation died in the delivery (a hang, out of memory)."""
    message_id = _accept_and_relay(stack)
    for _ in range(DLQ_MAX_RECEIVE_COUNT - 1):
        assert _receive(stack)  # receives that ended without an outcome: busy copies, lost invocations

    def hang(_: Envelope) -> None:
        raise SimulatedCrash("the invocation timed out in the delivery")

    dying = Consumer(stack.store, hang, policy=replace(POLICY, lease_margin_s=0))
    last = _receive(stack)
    with pytest.raises(SimulatedCrash):
        dying.handle(sqs_event(last), FakeLambdaContext(remaining_ms=0))  # its lease runs out with it
    assert _receive(stack) == []  # the next receive moved the copy to the dead-letter queue
    assert stack.store.get(message_id).status is Status.PROCESSING

    assert _settle_dead_letters(stack) == {"batchItemFailures": []}

    assert stack.store.get(message_id).status is Status.FAILED


def test_a_genuine_body_sent_to_the_dead_letter_queue_by_hand_fails_nothing(stack: Stack) -> None:
    """Invariant 11: only a copy SQS moved from the main queue ends a record; one sent to the DLQ by hand is dropped.

    The attack of issue #25: a genuine body read from the main queue and sent to the dead-letter
    queue turned a QUEUED message FAILED, and its real copy was never delivered.
    """
    message_id = _accept_and_relay(stack)
    (genuine,) = _receive(stack)
    stack.sqs.send_message(QueueUrl=stack.resources.dlq_url, MessageBody=genuine["Body"])

    assert _settle_dead_letters(stack) == {"batchItemFailures": []}  # acknowledged, never back
    assert stack.store.get(message_id).status is Status.QUEUED
    assert stack.receive_all(stack.resources.dlq_url) == []

    # The real copy, after the receives the queue allows, is moved by SQS: that one ends the record.
    for _ in range(DLQ_MAX_RECEIVE_COUNT - 1):
        assert _receive(stack)
    assert _receive(stack) == []
    assert _settle_dead_letters(stack) == {"batchItemFailures": []}
    assert stack.store.get(message_id).status is Status.FAILED
