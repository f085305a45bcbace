"""Invariant 8 after the stream lost records: the worker relays a group's older PENDING message first."""

from __future__ import annotations

import json
from datetime import timedelta

from outbox import Outbox, Status
from outbox.adapters.reader import DynamoDBOutboxReader
from outbox.adapters.sweep import DynamoDBSweepSource
from outbox.domain.record import iso, utc_now
from outbox.service.relay import Relay
from outbox.service.replay import FLIP_FROM, Checkpoint, Replayer, Selection
from tests.integration.conftest import Stack


def _outbox(stack: Stack) -> Outbox:
    return Outbox(stack.resources.table_name, client=stack.dynamodb, buckets=4)


def _write(stack: Stack, n: int, group_key: str | None) -> str:
    outbox = _outbox(stack)
    message = outbox.message({"n": n}, type="T", group_key=group_key)
    outbox.transact_write([], message)
    return message.message_id


def test_an_older_message_the_stream_lost_is_sent_before_its_group(fifo_stack: Stack) -> None:
    """Trimmed stream: the worker sees only the newer messages, and still sends the group in the order written."""
    stack = fifo_stack
    lost = _write(stack, 0, "customer-7")
    stack.stream_event()  # trimmed: the worker never sees it
    newer = [_write(stack, n, "customer-7") for n in (1, 2)]

    response = stack.worker.handle(stack.stream_event())

    assert response == {"batchItemFailures": []}
    assert stack.drain_in_order() == [lost, *newer]
    assert {_outbox(stack).get(m).status for m in [lost, *newer]} == {Status.QUEUED}
    assert [h.by for h in _outbox(stack).get(lost).history] == ["service", "worker"]


def test_an_older_message_that_cannot_be_sent_holds_its_group_back(fifo_stack: Stack) -> None:
    """The older message fails to send: the newer one is not sent either, and the stream is told to retry it."""
    stack = fifo_stack
    lost = _write(stack, 0, "g")
    stack.stream_event()
    newer = _write(stack, 1, "g")
    event = stack.stream_event()
    stack.faults.refuse({lost}, code="InternalError")

    response = stack.worker.handle(event)

    (entry,) = [r for r in event["Records"] if r["dynamodb"]["Keys"]["pk"]["S"].startswith("OUTBOX#")]
    assert response == {"batchItemFailures": [{"itemIdentifier": entry["dynamodb"]["SequenceNumber"]}]}
    assert stack.receive_all() == []
    assert {_outbox(stack).get(m).status for m in (lost, newer)} == {Status.PENDING}
    stack.faults.clear()
    assert stack.worker.handle(event) == {"batchItemFailures": []}  # the stream's retry
    assert stack.drain_in_order() == [lost, newer]


def test_other_groups_and_ungrouped_messages_are_left_to_the_sweeper(stack: Stack) -> None:
    """Only the batch's own groups are looked after: a lost message of another group waits for the sweeper."""
    other = _write(stack, 0, "other")
    loose = _write(stack, 1, None)
    stack.stream_event()
    mine = _write(stack, 2, "mine")

    stack.worker.handle(stack.stream_event())

    assert [json.loads(m["Body"])["message_id"] for m in stack.receive_all()] == [mine]
    assert {_outbox(stack).get(m).status for m in (other, loose)} == {Status.PENDING}


def test_the_check_costs_one_query_per_bucket_with_groups_and_no_reads_without_a_gap(stack: Stack) -> None:
    """No gap: one index Query per bucket holding a grouped entry, no record read; ungrouped batches query nothing."""
    grouped = [_write(stack, n, f"g-{n % 3}") for n in range(9)]
    event = stack.stream_event()
    buckets = {r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]} - {f"MSG#{m}" for m in grouped}
    stack.faults.calls.clear()

    assert stack.worker.handle(event) == {"batchItemFailures": []}

    assert stack.faults.calls["Query"] == len(buckets)
    assert stack.faults.calls["BatchGetItem"] == 0
    assert {_outbox(stack).get(m).status for m in grouped} == {Status.QUEUED}

    for n in range(5):
        _write(stack, n, None)
    stack.faults.calls.clear()
    stack.worker.handle(stack.stream_event())
    assert (stack.faults.calls["Query"], stack.faults.calls["BatchGetItem"]) == (0, 0)


def test_replay_sends_an_older_message_whose_entry_is_gone_before_its_group(fifo_stack: Stack) -> None:
    """Replay reads entries; an older message of the group whose entry expired is still sent first."""
    stack = fifo_stack
    older = _write(stack, 0, "g")
    for entry in [i for i in stack.all_items() if i["pk"]["S"].startswith("OUTBOX#")]:  # its entry expired
        stack.dynamodb.delete_item(TableName=stack.resources.table_name, Key={"pk": entry["pk"], "sk": entry["sk"]})
    newer = _write(stack, 1, "g")
    stack.stream_event()  # the stream is of no help here
    reader = DynamoDBOutboxReader(stack.resources.table_name, client=stack.dynamodb, buckets=4)
    relay = Relay(stack.store, stack.publisher, by="replay", expected=FLIP_FROM["PENDING"])
    pending = DynamoDBSweepSource(stack.resources.table_name, client=stack.dynamodb)
    window = Selection.window(status="PENDING")
    selection = Selection(window.since, iso(utc_now() + timedelta(minutes=1)), window.status)
    try:
        summary = Replayer(reader, relay, pending=pending).run(Checkpoint(selection))
    finally:
        relay.close()

    assert summary.failed == 0
    assert stack.drain_in_order() == [older, newer]
    assert {_outbox(stack).get(m).status for m in (older, newer)} == {Status.QUEUED}
