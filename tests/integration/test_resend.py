"""Deliberate re-sends on moto: never swallowed by FIFO deduplication, and nothing in flight stranded.

The FIFO queue keeps deduplication ids as SQS does (5 minutes from the send, even once the copy is
gone): the emulator's ``install_fifo_dedup_window``, installed into moto in process here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from moto import mock_aws

from outbox.adapters.sweep import DynamoDBSweepSource
from outbox.cli import main
from outbox.compose import Clients
from outbox.domain.errors import DeliveryError
from outbox.domain.keys import iso, utc_now
from outbox.domain.message import new_message_id
from outbox.domain.status import Status
from outbox.faults import SimulatedCrash
from outbox.local import emulator
from outbox.notifications.notification import parse_notification
from outbox.ports import PendingKey, SweptRecord
from outbox.service.consume import Consumer, ConsumerPolicy
from outbox.service.relay import Relay
from outbox.service.sweep import StrandedBounds, Sweeper
from outbox.testing import FakeLambdaContext
from tests.integration.conftest import Stack, build_stack, sqs_event

BOUNDS = StrandedBounds(retention=timedelta(hours=1), visibility=timedelta(minutes=3))


@pytest.fixture
def fifo(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A FIFO stack whose queue keeps deduplication ids for 5 minutes, as SQS does; the CLI on its clients."""
    emulator.install_fifo_dedup_window()
    try:
        with mock_aws():
            built = build_stack(fifo=True)
            clients = Clients.given(dynamodb=built.dynamodb, sqs=built.sqs)
            monkeypatch.setattr("outbox.replay_cli.replay_clients", lambda _region=None: clients)
            yield built
            built.relay.close()
    finally:
        emulator.uninstall_fifo_dedup_window()


def _accept(stack: Stack, age: timedelta = timedelta(hours=2)) -> str:
    """A notification written ``age`` ago (older than replay's --min-age), relayed by the stream now."""
    notification = parse_notification({"channel": "sms", "recipient": "+14155550100", "body": "hi"})
    envelope = notification.envelope(message_id=new_message_id(), created_at=iso(utc_now() - age))
    stack.store.accept(envelope, idempotency_key=None)
    assert stack.worker.handle(stack.stream_event(), FakeLambdaContext()) == {"batchItemFailures": []}
    return envelope.message_id


def _consume(stack: Stack, consumer: Consumer | None = None) -> int:
    """One receive of the queue through the consumer, as its mapping does (acknowledged copies deleted)."""
    messages = stack.sqs.receive_message(
        QueueUrl=stack.resources.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
    ).get("Messages", [])
    response = (consumer or stack.consumer).handle(sqs_event(messages))
    retried = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    for message in messages:
        if message["MessageId"] not in retried:
            stack.sqs.delete_message(QueueUrl=stack.resources.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return len(messages)


def _fails(_: Any) -> None:
    raise DeliveryError("the downstream refused it", retryable=False)


def _redrive(stack: Stack) -> int:
    resources = stack.resources
    where = ["--table-name", resources.table_name, "--queue-url", resources.queue_url, "--buckets", "4"]
    return main(["replay", "--json", *where, "--status", "FAILED"])


def test_a_redrive_within_five_minutes_of_the_last_send_is_delivered(fifo: Stack) -> None:
    """Defect 2: FAILED, re-driven twice within SQS's 5-minute window of the last send; each re-drive's copy arrives.

    With the message id as deduplication id SQS answered "successful", enqueued nothing, and the
    record sat QUEUED with no copy anywhere.
    """
    message_id = _accept(fifo)
    failing = Consumer(fifo.store, _fails)
    assert _consume(fifo, failing) == 1
    assert fifo.store.get(message_id).status is Status.FAILED

    assert _redrive(fifo) == 0  # a minute after the first send, say: well within its window
    assert fifo.store.get(message_id).status is Status.QUEUED
    assert _consume(fifo, failing) == 1  # the re-drive's copy is there
    assert fifo.store.get(message_id).status is Status.FAILED

    assert _redrive(fifo) == 0  # and a second re-drive soon after the first
    assert _consume(fifo) == 1
    record = fifo.store.get(message_id)
    assert record.status is Status.COMPLETED
    assert record.send_generation == 2
    assert [h.status for h in record.history] == [
        Status.PENDING,
        Status.QUEUED,
        Status.PROCESSING,
        Status.FAILED,
        Status.QUEUED,
        Status.PROCESSING,
        Status.FAILED,
        Status.QUEUED,
        Status.PROCESSING,
        Status.COMPLETED,
    ]


def test_a_retried_send_is_still_deduplicated(fifo: Stack) -> None:
    """A send applied whose reply was lost, sent again (the stream's redelivery): one copy, as before."""
    notification = parse_notification({"channel": "sms", "recipient": "+14155550100", "body": "hi"})
    envelope = notification.envelope(message_id=new_message_id(), created_at=iso(utc_now()))
    fifo.store.accept(envelope, idempotency_key=None)
    event = fifo.stream_event()
    fifo.faults.crash_after("SendMessageBatch")  # SQS took it; the function died before it heard
    with pytest.raises(SimulatedCrash):
        fifo.worker.handle(event, FakeLambdaContext())
    assert fifo.worker.handle(event, FakeLambdaContext()) == {"batchItemFailures": []}
    copies = fifo.receive_all()
    assert [json.loads(c["Body"])["message_id"] for c in copies] == [envelope.message_id]


def _sweeper(stack: Stack, *, later: timedelta | None = None, at: datetime | None = None) -> Sweeper:
    """A sweeper with the in-flight step, its clock ``later`` than now (or stopped ``at``)."""
    source = DynamoDBSweepSource(stack.layout, stack.dynamodb, page_size=3)
    relay = Relay(stack.store, stack.publisher, by="sweeper")
    resender = Relay(stack.store, stack.publisher, by="sweeper", expected=frozenset())
    clock = (lambda: at) if at is not None else (lambda: utc_now() + (later or timedelta(0)))
    return Sweeper(source, relay, buckets=4, clock=clock, resender=resender, bounds=BOUNDS)


def _purge(stack: Stack) -> None:
    """Every copy is gone: purged, deleted by hand, or past the queue's retention."""
    stack.sqs.purge_queue(QueueUrl=stack.resources.queue_url)


def test_a_queued_message_whose_copy_was_purged_is_resent_after_the_bound(fifo: Stack) -> None:
    """Defect 5: QUEUED with no copy: left alone within the queue's retention, re-sent after it, then COMPLETED."""
    message_id = _accept(fifo)
    _purge(fifo)

    early = _sweeper(fifo, later=BOUNDS.retention - timedelta(minutes=1)).sweep()
    assert (early.in_flight_scanned, early.resent) == (1, 0)  # its copy may still be in the queue
    assert not fifo.receive_all()

    report = _sweeper(fifo, later=BOUNDS.retention + timedelta(minutes=1)).sweep()
    assert (report.resent, report.failed) == (1, 0)
    # Re-sent seconds after the first send, within SQS's 5-minute window: its own deduplication id.
    assert _consume(fifo) == 1
    record = fifo.store.get(message_id)
    assert record.status is Status.COMPLETED
    assert record.send_generation == 1
    assert [h.by for h in record.history] == ["api", "worker", "consumer", "consumer"]


def test_a_processing_message_whose_last_receive_died_is_resent_after_lease_and_visibility(fifo: Stack) -> None:
    """Defect 5: PROCESSING, its lease run out, its copy gone: re-sent once the visibility timeout passed."""
    message_id = _accept(fifo)

    def dies(_: Any) -> None:
        raise SystemExit("the invocation died in the delivery")

    # Its lease lasts as long as its invocation could (none left): it has run out at once.
    dying = Consumer(fifo.store, dies, policy=ConsumerPolicy(lease_margin_s=0))
    messages = fifo.sqs.receive_message(QueueUrl=fifo.resources.queue_url, AttributeNames=["All"])["Messages"]
    with pytest.raises(SystemExit):
        dying.handle(sqs_event(messages), FakeLambdaContext(remaining_ms=0))
    _purge(fifo)
    lease = fifo.store.get(message_id).lease
    assert lease is not None
    lease_end = datetime.fromisoformat(lease.until)

    assert _sweeper(fifo, at=lease_end - timedelta(seconds=1)).sweep().resent == 0  # its holder may end it
    early = _sweeper(fifo, at=lease_end + BOUNDS.visibility - timedelta(seconds=30)).sweep()
    assert early.resent == 0  # its copy may still come back
    report = _sweeper(fifo, at=lease_end + BOUNDS.visibility + timedelta(seconds=30)).sweep()
    assert report.resent == 1
    again = _sweeper(fifo, at=lease_end + BOUNDS.visibility + timedelta(minutes=10)).sweep()
    assert again.resent == 0  # re-sent: that copy has the queue's retention to arrive

    assert _consume(fifo) == 1
    assert fifo.store.get(message_id).status is Status.COMPLETED


def test_a_message_that_moves_on_while_the_sweep_reads_it_is_not_resent(fifo: Stack) -> None:
    """The re-send's condition checks the record is as read: one a consumer took meanwhile is left to it."""
    message_id = _accept(fifo)
    late = utc_now() + BOUNDS.retention + timedelta(minutes=1)
    sweeper = _sweeper(fifo, at=late)
    read = sweeper.source.records
    taken: list[int] = []

    def records_then_consumed(keys: Sequence[PendingKey], *, consistent: bool = True) -> list[SweptRecord]:
        """The page as read; then the consumer takes its copy (it was there after all), before the re-send."""
        page = read(keys, consistent=consistent)
        if not consistent:  # the in-flight step's read
            taken.append(_consume(fifo))
        return page

    sweeper.source.records = records_then_consumed  # type: ignore[method-assign]
    report = sweeper.sweep()
    assert taken == [1]
    assert (report.in_flight_scanned, report.resent, report.already_moved) == (1, 0, 1)
    assert fifo.store.get(message_id).send_generation == 0
