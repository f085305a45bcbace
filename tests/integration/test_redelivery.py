"""Copies per message: a consumer invocation that dies gives back as few copies as it can (issue 22).

Lambda gives a whole batch back when its invocation dies (a timeout, out of memory): every copy
is received again after the visibility timeout, those already delivered included. The deaths are
injected at the botocore boundary (``FaultInjector.crash_after``) and the batches run through
the local SQS runner, which plays Lambda's SQS mapping.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from outbox.adapters.visibility import SqsVisibility
from outbox.domain.envelope import Envelope
from outbox.domain.status import Status
from outbox.faults import FaultInjector, SimulatedCrash, writes_status
from outbox.local.sqs_runner import SqsRunner
from outbox.ports import BatchResponse
from outbox.service.consume import Consumer, ConsumerPolicy
from outbox.testing import FakeLambdaContext
from tests.integration.conftest import Stack


def _accept_and_relay(stack: Stack, n: int, *, group: str | None = None) -> list[str]:
    ids = []
    for i in range(n):
        payload: dict[str, Any] = {"channel": "push", "recipient": "a" * 64, "body": f"ping {i}"}
        if group:
            payload["group_key"] = group
        ids.append(json.loads(stack.post(json.dumps(payload))["body"])["message_id"])
    assert stack.worker.handle(stack.stream_event(), FakeLambdaContext()) == {"batchItemFailures": []}
    return ids


def _crash_after_completes(stack: Stack, count: int) -> None:
    """The consumer's process dies right after its ``count``-th COMPLETED write took effect."""
    seen = Counter[str]()

    def nth(params: dict[str, Any]) -> bool:
        if not writes_status(Status.COMPLETED.value)(params):
            return False
        seen["completes"] += 1
        return seen["completes"] == count

    FaultInjector(stack.dynamodb).crash_after("UpdateItem", when=nth)


def _runner(stack: Stack, consumer: Consumer, received: list[list[str]]) -> SqsRunner:
    """The SQS mapping locally; a death is a function error; the message ids of each batch noted."""

    def invoke(event: Mapping[str, Any], context: Any) -> BatchResponse:
        received.append([json.loads(r["body"])["message_id"] for r in event["Records"]])
        try:
            return consumer.handle(event, context)
        except SimulatedCrash as crash:
            raise RuntimeError("the invocation died") from crash

    return SqsRunner(stack.sqs, stack.resources.queue_url, invoke, wait_time_s=0, retry_delay_s=0)


def test_a_dying_invocation_gives_back_only_the_copies_it_had_not_finished(fifo_stack: Stack) -> None:
    """Copies delivered before a death were deleted early: the redelivered batch holds only the rest."""
    # GIVEN three messages of one group on the FIFO queue, and a consumer that dies after its second completion
    ids = _accept_and_relay(fifo_stack, 3, group="customer-1")
    delivered: list[str] = []
    consumer = Consumer(
        fifo_stack.store,
        lambda envelope: delivered.append(envelope.message_id),
        policy=ConsumerPolicy(acknowledge_after=1),
        visibility=SqsVisibility(fifo_stack.sqs),
    )
    _crash_after_completes(fifo_stack, 2)
    received: list[list[str]] = []
    runner = _runner(fifo_stack, consumer, received)

    # WHEN the mapping runs the batch, the invocation dies, and the mapping runs what came back
    assert runner.poll_once() == 3
    while runner.poll_once():
        pass

    # THEN the first copy, finished before the death, was never received again
    assert received[0] == ids
    assert received[1:] == [ids[1:]]  # the second (completed as it died) and the third
    assert delivered == ids  # each delivered once, in order
    assert all(fifo_stack.store.get(m).status is Status.COMPLETED for m in ids)
    assert consumer.stats["acknowledged_early"] == 2  # the first before the death, the second after it


def test_finished_copies_are_acknowledged_early_two_a_request_while_the_batch_has_more(stack: Stack) -> None:
    """The last copies of a batch are left to the mapping's own delete: no request is spent on them."""
    # GIVEN three messages and a consumer that acknowledges finished copies early, two a request (the default)
    _accept_and_relay(stack, 3)
    consumer = Consumer(stack.store, lambda _envelope: None, visibility=SqsVisibility(stack.sqs))
    calls = FaultInjector(stack.sqs)
    received: list[list[str]] = []
    runner = _runner(stack, consumer, received)

    # WHEN the mapping runs their batch
    assert runner.poll_once() == 3

    # THEN the first two were deleted early in one request, the third by the mapping in another
    assert consumer.stats["acknowledged_early"] == 2
    assert calls.calls["DeleteMessageBatch"] == 2
    assert runner.poll_once() == 0


def test_early_acknowledgement_can_be_turned_off(stack: Stack) -> None:
    """``acknowledge_after=0``: only the mapping deletes, after the invocation (one request a batch)."""
    _accept_and_relay(stack, 3)
    policy = ConsumerPolicy(acknowledge_after=0)
    consumer = Consumer(stack.store, lambda _envelope: None, policy=policy, visibility=SqsVisibility(stack.sqs))
    calls = FaultInjector(stack.sqs)

    assert _runner(stack, consumer, []).poll_once() == 3

    assert consumer.stats["acknowledged_early"] == 0
    assert calls.calls["DeleteMessageBatch"] == 1


def test_an_invocation_running_out_of_time_gives_back_what_it_has_not_started(stack: Stack) -> None:
    """Lambda stops an invocation at its deadline and gives its whole batch back: the consumer stops first.

    Each delivery takes 4 s of a 10 s invocation (a fake clock): after two the third might not end
    in time, so it goes back at once, alone, instead of all three with the invocation.
    """
    # GIVEN three messages, and deliveries that take 4 s each on the runner's clock
    ids = _accept_and_relay(stack, 3)
    now = [0.0]
    delivered: list[str] = []

    def slow(envelope: Envelope) -> None:
        now[0] += 4.0
        delivered.append(envelope.message_id)

    # (no early acknowledgement: what comes back shows this alone)
    policy = ConsumerPolicy(acknowledge_after=0)
    consumer = Consumer(stack.store, slow, policy=policy, visibility=SqsVisibility(stack.sqs))
    received: list[list[str]] = []
    runner = _runner(stack, consumer, received)
    runner.clock, runner.function_timeout_s = (lambda: now[0]), 10.0

    # WHEN the mapping runs the batch, then what came back
    assert runner.poll_once() == 3
    while runner.poll_once():
        pass

    # THEN only the third came back (at once: visible again now), and each was delivered once
    assert runner.stats["function_errors"] == 0
    assert received == [ids, ids[2:]]
    assert sorted(delivered) == sorted(ids)
    assert consumer.stats["retried_deadline"] == 1
