"""Invariant 8: a group in write order on every path, after a stream loss, in one millisecond, across clocks."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta, tzinfo

import pytest

from outbox import Outbox, Status
from outbox.adapters.reader import DynamoDBOutboxReader
from outbox.adapters.sweep import DynamoDBSweepSource
from outbox.domain.envelope import new_envelope
from outbox.domain.keys import iso, utc_now
from outbox.domain.message import IdKey, new_message_id
from outbox.service.relay import Relay
from outbox.service.replay import FLIP_FROM, Checkpoint, Replayer, Selection
from outbox.service.sweep import Sweeper
from tests.integration.conftest import ID_SECRET, Stack


def _outbox(stack: Stack) -> Outbox:
    return Outbox(stack.resources.table_name, client=stack.dynamodb, buckets=4, id_secret=ID_SECRET)


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
    reader = DynamoDBOutboxReader(stack.layout, stack.dynamodb)
    relay = Relay(stack.store, stack.publisher, by="replay", expected=FLIP_FROM["PENDING"])
    pending = DynamoDBSweepSource(stack.layout, stack.dynamodb)
    window = Selection.window(status="PENDING")
    selection = Selection(window.since, iso(utc_now() + timedelta(minutes=1)), window.status)
    try:
        summary = Replayer(reader, relay, pending=pending).run(Checkpoint(selection))
    finally:
        relay.close()

    assert summary.failed == 0
    assert stack.drain_in_order() == [older, newer]
    assert {_outbox(stack).get(m).status for m in (older, newer)} == {Status.QUEUED}


# -- same millisecond, same transaction, skewed clocks ---------------------------------------------


class _Frozen(datetime):
    """``datetime`` whose ``now`` stands still: every message made meanwhile gets one millisecond."""

    at = datetime(2026, 1, 1, tzinfo=UTC)

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _Frozen:
        """The frozen instant."""
        return cls.fromtimestamp(cls.at.timestamp(), tz)


def _reversed_keys(n: int) -> tuple[str, str]:
    """Two idempotency keys whose ids sort the other way round: ordered by id, the pair comes out reversed."""
    key = IdKey(ID_SECRET)  # the outbox's (no rotation): the ids its messages get
    for attempt in itertools.count():
        first, second = f"pair-{n}-{attempt}-a", f"pair-{n}-{attempt}-b"
        if key.message_id(first, None) > key.message_id(second, None):
            return first, second
    raise AssertionError  # pragma: no cover - count() never ends


def _write_pairs(stack: Stack, monkeypatch: pytest.MonkeyPatch, *, together: bool, pairs: int = 3) -> list[str]:
    """``pairs`` pairs of group "g", each pair made in one (frozen) millisecond; in one transaction or two."""
    outbox = _outbox(stack)
    written: list[str] = []
    for n in range(pairs):
        with monkeypatch.context() as frozen:
            _Frozen.at = utc_now()
            frozen.setattr("outbox.domain.keys.datetime", _Frozen)
            messages = [outbox.message({"n": n}, type="T", group_key="g", idempotency_key=k) for k in _reversed_keys(n)]
            if together:
                outbox.transact_write([], *messages)
            else:
                for message in messages:
                    outbox.transact_write([], message)
        assert messages[0].envelope.created_at == messages[1].envelope.created_at  # one millisecond
        written += [m.message_id for m in messages]
    return written


@pytest.mark.parametrize("together", [True, False], ids=["one-transaction", "two-transactions"])
def test_same_millisecond_messages_are_swept_in_the_order_written(
    fifo_stack: Stack, monkeypatch: pytest.MonkeyPatch, together: bool
) -> None:
    """Invariant 8: the stream lost them all; the sweeper sends each same-millisecond pair in write order."""
    stack = fifo_stack
    written = _write_pairs(stack, monkeypatch, together=together)
    stack.stream_event()  # trimmed
    relay = Relay(stack.store, stack.publisher, by="sweeper")
    source = DynamoDBSweepSource(stack.layout, stack.dynamodb)
    try:
        report = Sweeper(source, relay, buckets=4, clock=lambda: utc_now() + timedelta(minutes=10)).sweep()
    finally:
        relay.close()

    assert report.relayed == len(written)
    assert stack.drain_in_order() == written


@pytest.mark.parametrize("together", [True, False], ids=["one-transaction", "two-transactions"])
def test_same_millisecond_messages_are_replayed_in_the_order_written(
    fifo_stack: Stack, monkeypatch: pytest.MonkeyPatch, together: bool
) -> None:
    """Invariant 8: replay reads the entries by time; each same-millisecond pair comes out in write order."""
    stack = fifo_stack
    written = _write_pairs(stack, monkeypatch, together=together)
    stack.stream_event()
    reader = DynamoDBOutboxReader(stack.layout, stack.dynamodb)
    relay = Relay(stack.store, stack.publisher, by="replay", expected=FLIP_FROM["PENDING"])
    window = Selection.window(status="PENDING")
    selection = Selection(window.since, iso(utc_now() + timedelta(minutes=1)), window.status)
    try:
        summary = Replayer(reader, relay, batch_size=4).run(Checkpoint(selection))
    finally:
        relay.close()

    assert summary.sent == len(written)
    assert stack.drain_in_order() == written


def test_same_millisecond_messages_the_stream_lost_go_first_in_the_order_written(
    fifo_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invariant 8: the worker's older-first step puts the lost same-transaction pairs first, each in write order."""
    stack = fifo_stack
    written = _write_pairs(stack, monkeypatch, together=True)
    stack.stream_event()  # trimmed
    newer = _write(stack, 9, "g")

    assert stack.worker.handle(stack.stream_event()) == {"batchItemFailures": []}

    assert stack.drain_in_order() == [*written, newer]


def test_replay_by_message_ids_finds_each_entry_by_its_write_sequence(fifo_stack: Stack) -> None:
    """Replay of named messages computes each entry's key from its record, write sequence included."""
    stack = fifo_stack
    written = [_write(stack, n, "g") for n in range(3)]
    stack.stream_event()
    reader = DynamoDBOutboxReader(stack.layout, stack.dynamodb)

    assert [e.message_id for e in reader.entries_for(reversed(written))] == written


@pytest.mark.parametrize("skewed", ["earlier-writer-2s-ahead", "later-writer-2s-behind"])
def test_the_worker_never_sends_ahead_of_an_entry_the_stream_gave_it(fifo_stack: Stack, skewed: str) -> None:
    """Two writers of one group, clocks 2 s apart: the later commit has the earlier created_at.

    The stream gives the first commit; the second, PENDING, looks older but is not lost (the stream
    brings it next): the worker sends the first commit first.
    """
    stack = fifo_stack
    now = utc_now()

    def by_other_writer(created: datetime) -> str:  # another process: its own clock, set by hand
        envelope = new_envelope({}, type="T", message_id=new_message_id(), created_at=iso(created), group_key="g")
        stack.store.accept(envelope, idempotency_key=None, by="other")
        return envelope.message_id

    if skewed == "earlier-writer-2s-ahead":
        first = by_other_writer(now + timedelta(seconds=2))
        given = stack.stream_event()
        second = _write(stack, 1, "g")
    else:
        first = _write(stack, 1, "g")
        given = stack.stream_event()
        second = by_other_writer(utc_now() - timedelta(seconds=2))

    assert stack.worker.handle(given) == {"batchItemFailures": []}
    assert stack.worker.handle(stack.stream_event()) == {"batchItemFailures": []}

    assert stack.drain_in_order() == [first, second]
