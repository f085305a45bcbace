"""Invariant 7's backstop on the fakes: a copy in the dead-letter queue never leaves its record non-terminal."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from outbox.domain.envelope import Envelope
from outbox.domain.errors import AwsError
from outbox.domain.keys import dedup_id, iso, utc_now
from outbox.domain.message import new_message_id
from outbox.domain.record import Lease
from outbox.domain.results import TransitionResult
from outbox.domain.status import Status
from outbox.notifications.notification import parse_notification
from outbox.service.consume import SqsCopy, sqs_copy
from outbox.service.dead_letter import BY, SOURCE_ATTRIBUTE, DeadLetters, Settled, same_queue
from outbox.testing import FakeVisibility, InMemoryMessageStore

NOTE = parse_notification({"channel": "sms", "recipient": "+14155550100", "body": "hi"})


@pytest.fixture
def store() -> InMemoryMessageStore:
    """An empty in-memory store."""
    return InMemoryMessageStore()


def _accept(store: InMemoryMessageStore) -> Envelope:
    envelope = NOTE.envelope(message_id=new_message_id(), created_at=iso(utc_now()))
    store.accept(envelope, idempotency_key=None)
    return envelope


STANDARD_DLQ = "arn:aws:sqs:eu-west-1:123456789012:outbox-dlq"
FIFO_DLQ = "arn:aws:sqs:eu-west-1:123456789012:outbox-dlq.fifo"
# The main queue each dead-letter queue's copies come from (SQS names it on every copy it moves).
SOURCE = {
    STANDARD_DLQ: "arn:aws:sqs:eu-west-1:123456789012:outbox",
    FIFO_DLQ: "arn:aws:sqs:eu-west-1:123456789012:outbox.fifo",
}
MAIN_QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/outbox"


def _dead_letter(
    envelope: Envelope | str,
    *,
    sent: datetime | None = None,
    receives: int = 6,
    queue: str = STANDARD_DLQ,
    moved_from: str | None = "main",
) -> dict[str, Any]:
    """A dead-letter queue's SQS record: a copy received ``receives`` times, its ``SentTimestamp`` ``sent``.

    On a standard queue that is when the copy was first sent; on a FIFO queue, when it moved to the DLQ.
    SQS's redrive moved it from ``moved_from`` (``"main"``: the main queue; None: sent there by hand).
    """
    # An envelope of schema 2 stands for a copy 0.1.0 sent (the whole envelope); else the body sent today.
    if isinstance(envelope, str):
        body = envelope
    else:
        body = envelope.to_json() if envelope.schema_version == 2 else envelope.body()
    sent_ms = int((sent or utc_now() - timedelta(minutes=5)).timestamp() * 1000)
    attributes = {"ApproximateReceiveCount": str(receives), "SentTimestamp": str(sent_ms)}
    if moved_from is not None:
        attributes[SOURCE_ATTRIBUTE] = SOURCE[queue] if moved_from == "main" else moved_from
    return {
        "messageId": "dlq-1",
        "body": body,
        "attributes": attributes,
        "receiptHandle": f"rh-{receives}",
        "eventSourceARN": queue,
    }


def _settle(store: InMemoryMessageStore, record: dict[str, Any]) -> tuple[list[str], FakeVisibility]:
    visibility = FakeVisibility()
    response = DeadLetters(store, visibility=visibility).handle({"Records": [record]})
    return [f["itemIdentifier"] for f in response["batchItemFailures"]], visibility


def _steps(store: InMemoryMessageStore, message_id: str) -> list[tuple[str, str]]:
    return [(line.status.value, line.by) for line in store.get(message_id).history]


@pytest.mark.parametrize("status", [Status.PENDING, Status.QUEUED])
def test_a_dead_letter_ends_its_unstarted_record_failed_with_the_reason(
    store: InMemoryMessageStore, status: Status
) -> None:
    """A copy that reached the DLQ while its record was PENDING or QUEUED: the record ends FAILED, by the lifecycle."""
    envelope = _accept(store)
    if status is Status.QUEUED:
        store.transition(envelope.message_id, Status.QUEUED, by="worker")

    failed, _ = _settle(store, _dead_letter(envelope, receives=6))

    record = store.get(envelope.message_id)
    assert failed == []  # acknowledged: the record, not the dead-letter queue, now says what happened
    assert record.status is Status.FAILED
    assert record.reason is not None
    assert "reached the dead-letter queue" in record.reason
    assert _steps(store, envelope.message_id)[-2:] == [("PROCESSING", BY), ("FAILED", BY)]
    assert record.lease is None


def test_a_dead_letter_takes_over_a_lease_that_ran_out(store: InMemoryMessageStore) -> None:
    """The consumer's last receive crashed while it held the message: once its lease ran out, it ends FAILED."""
    envelope = _accept(store)
    gone = Lease("crashed-receive", iso(utc_now() - timedelta(seconds=1)))
    store.transition(envelope.message_id, Status.PROCESSING, by="consumer", lease=gone)

    failed, _ = _settle(store, _dead_letter(envelope))

    assert failed == []
    assert store.get(envelope.message_id).status is Status.FAILED


def test_a_live_lease_sends_the_dead_letter_back_until_it_runs_out(store: InMemoryMessageStore) -> None:
    """A receive still holds the message: nothing changes, and the copy comes back when that lease has run out."""
    envelope = _accept(store)
    holder = Lease("live-receive", iso(utc_now() + timedelta(seconds=40)))
    store.transition(envelope.message_id, Status.PROCESSING, by="consumer", lease=holder)

    failed, visibility = _settle(store, _dead_letter(envelope))

    record = store.get(envelope.message_id)
    assert failed == ["dlq-1"]
    assert (record.status, record.lease) == (Status.PROCESSING, holder)
    ((_, delay),) = visibility.delays
    assert 40 <= delay <= 42


@pytest.mark.parametrize("end", [Status.COMPLETED, Status.FAILED])
def test_a_dead_letter_of_an_ended_message_changes_nothing(store: InMemoryMessageStore, end: Status) -> None:
    """A duplicate copy of a message that has ended: acknowledged, the record untouched."""
    envelope = _accept(store)
    lease = Lease("consumer-receive", iso(utc_now() + timedelta(seconds=30)))
    store.transition(envelope.message_id, Status.PROCESSING, by="consumer", lease=lease)
    store.transition(envelope.message_id, end, by="consumer", lease=lease, reason="x" if end is Status.FAILED else None)
    before = store.get(envelope.message_id)

    # Sent after the record ended: only the ended check, not the re-drive one, can leave it alone.
    failed, visibility = _settle(store, _dead_letter(envelope, sent=utc_now() + timedelta(seconds=1)))

    assert failed == []
    assert visibility.delays == []
    assert store.get(envelope.message_id) == before


def test_a_dead_letter_older_than_a_redrive_leaves_the_redriven_message_alone(store: InMemoryMessageStore) -> None:
    """The record ended FAILED after this copy was sent and was re-driven: the re-drive's own copy decides."""
    envelope = _accept(store)
    sent = utc_now() - timedelta(minutes=10)
    lease = Lease("consumer-receive", iso(utc_now() + timedelta(seconds=30)))
    store.transition(envelope.message_id, Status.PROCESSING, by="consumer", lease=lease)
    store.transition(envelope.message_id, Status.FAILED, by="consumer", lease=lease, reason="delivery refused")
    store.transition(envelope.message_id, Status.QUEUED, by="replay")  # the operator's re-drive

    outcome = DeadLetters(store).settle(_copy_of(_dead_letter(envelope, sent=sent)))

    assert outcome is Settled.STALE
    assert store.get(envelope.message_id).status is Status.QUEUED


def test_a_dead_letter_sent_after_the_redrive_ends_it_failed_again(store: InMemoryMessageStore) -> None:
    """The re-drive's own copy reached the dead-letter queue: that one settles the record."""
    envelope = _accept(store)
    lease = Lease("consumer-receive", iso(utc_now() + timedelta(seconds=30)))
    store.transition(envelope.message_id, Status.PROCESSING, by="consumer", lease=lease)
    store.transition(envelope.message_id, Status.FAILED, by="consumer", lease=lease, reason="delivery refused")
    store.transition(envelope.message_id, Status.QUEUED, by="replay")

    failed, _ = _settle(store, _dead_letter(envelope, sent=utc_now() + timedelta(seconds=1)))

    assert failed == []
    assert store.get(envelope.message_id).status is Status.FAILED


def _failed_then_redriven(store: InMemoryMessageStore) -> tuple[Envelope, datetime, datetime]:
    """A message that ended FAILED, then was re-driven (FAILED -> QUEUED); when each happened."""
    envelope = _accept(store)
    lease = Lease("consumer-receive", iso(utc_now() + timedelta(seconds=30)))
    store.transition(envelope.message_id, Status.PROCESSING, by="consumer", lease=lease)
    store.transition(envelope.message_id, Status.FAILED, by="consumer", lease=lease, reason="delivery refused")
    store.transition(envelope.message_id, Status.QUEUED, by="replay")
    # Ten minutes between the FAILED and the re-drive, as an operator would take.
    failed_at, redriven_at = utc_now() - timedelta(minutes=15), utc_now() - timedelta(minutes=5)
    record = store.records[envelope.message_id]
    *earlier, failed, redriven = record.history
    history = (*earlier, replace(failed, at=iso(failed_at)), replace(redriven, at=iso(redriven_at)))
    store.records[envelope.message_id] = replace(record, history=history)
    return envelope, failed_at, redriven_at


def test_on_a_fifo_queue_a_copy_dead_lettered_before_the_redrive_leaves_it_alone(store: InMemoryMessageStore) -> None:
    """FIFO resets SentTimestamp when the copy moves: moved after the FAILED but before the re-drive, it is older."""
    envelope, failed_at, redriven_at = _failed_then_redriven(store)
    moved = failed_at + (redriven_at - failed_at) / 2  # it lingered after the FAILED, then moved

    copy = _dead_letter(envelope, sent=moved - timedelta(milliseconds=1), queue=FIFO_DLQ)
    assert DeadLetters(store).settle(_copy_of(copy)) is Settled.STALE
    assert store.get(envelope.message_id).status is Status.QUEUED
    # The same timestamp on a standard queue is a first send after the FAILED: the re-drive's own copy.
    assert DeadLetters(store).settle(_copy_of(_dead_letter(envelope, sent=moved))) is Settled.FAILED


def test_on_a_fifo_queue_the_redrives_own_dead_letter_ends_it_failed(store: InMemoryMessageStore) -> None:
    """The re-drive's copy reached the FIFO dead-letter queue after the re-drive: it settles the record."""
    envelope, _, redriven_at = _failed_then_redriven(store)

    copy = _dead_letter(envelope, sent=redriven_at + timedelta(seconds=1), queue=FIFO_DLQ)
    assert DeadLetters(store).settle(_copy_of(copy)) is Settled.FAILED


def test_an_unreadable_dead_letter_changes_nothing(store: InMemoryMessageStore) -> None:
    """A body naming no message, or one without a record: dropped, no record touched."""
    envelope = _accept(store)
    store.transition(envelope.message_id, Status.QUEUED, by="worker")
    before = store.get(envelope.message_id)

    dead_letters = DeadLetters(store)
    assert dead_letters.settle(_copy_of(_dead_letter("not json"))) is Settled.FORGED
    assert dead_letters.settle(_copy_of(_dead_letter('{"message_id": "x", "schema_version": 3}'))) is Settled.FORGED
    assert dead_letters.settle(_copy_of(_dead_letter(_other_envelope()))) is Settled.ENDED  # no such record

    assert store.get(envelope.message_id) == before


def test_a_genuine_body_sent_to_the_dead_letter_queue_by_hand_changes_nothing(store: InMemoryMessageStore) -> None:
    """Invariant 11: a copy of the real body that SQS did not move here (no DeadLetterQueueSourceArn) is dropped."""
    envelope = _accept(store)
    store.transition(envelope.message_id, Status.QUEUED, by="worker")
    before = store.get(envelope.message_id)

    failed, visibility = _settle(store, _dead_letter(envelope, moved_from=None))

    assert (failed, visibility.delays) == ([], [])  # acknowledged: it never comes back
    assert store.get(envelope.message_id) == before  # still QUEUED: its real copy is delivered as usual


def test_only_a_copy_moved_from_the_main_queue_ends_its_record(store: InMemoryMessageStore) -> None:
    """A copy SQS moved from another queue changes nothing; the main queue's own copy ends the record FAILED."""
    envelope = _accept(store)
    store.transition(envelope.message_id, Status.QUEUED, by="worker")
    dead_letters = DeadLetters(store, main_queue_url=MAIN_QUEUE_URL)
    other = "arn:aws:sqs:eu-west-1:123456789012:someone-elses-queue"

    assert dead_letters.settle(_copy_of(_dead_letter(envelope, moved_from=other))) is Settled.FORGED
    assert store.get(envelope.message_id).status is Status.QUEUED
    assert dead_letters.settle(_copy_of(_dead_letter(envelope))) is Settled.FAILED
    assert store.get(envelope.message_id).status is Status.FAILED


def test_a_queue_arn_and_url_are_one_queue_by_account_and_name() -> None:
    """The URL's path (/<account>/<name>) against the ARN's account and name; anything else is another queue."""
    assert same_queue("arn:aws:sqs:eu-west-1:123456789012:outbox", MAIN_QUEUE_URL)
    assert same_queue("arn:aws:sqs:us-east-1:123456789012:outbox", "http://127.0.0.1:5000/123456789012/outbox")
    assert not same_queue("arn:aws:sqs:eu-west-1:123456789012:outbox-dlq", MAIN_QUEUE_URL)
    assert not same_queue("arn:aws:sqs:eu-west-1:210987654321:outbox", MAIN_QUEUE_URL)
    assert not same_queue("arn:aws:sns:eu-west-1:123456789012:outbox", MAIN_QUEUE_URL)
    assert not same_queue("outbox", MAIN_QUEUE_URL)


def test_a_dead_letter_is_judged_by_its_record_not_by_its_body(store: InMemoryMessageStore) -> None:
    """Whatever a body says beside the id (0.1.0's whole envelope, altered), the record decides: ended FAILED once."""
    envelope = _accept(store)
    store.transition(envelope.message_id, Status.QUEUED, by="worker")
    altered = replace(envelope, payload={**envelope.payload, "body": "pay me"}, schema_version=2)

    assert DeadLetters(store).settle(_copy_of(_dead_letter(altered))) is Settled.FAILED
    record = store.get(envelope.message_id)
    assert (record.status, record.payload) == (Status.FAILED, envelope.payload)
    assert DeadLetters(store).settle(_copy_of(_dead_letter(envelope))) is Settled.ENDED


def test_a_passing_fault_gives_the_lease_back_and_the_next_receive_ends_it(store: InMemoryMessageStore) -> None:
    """The FAILED write fails on every try: the lease is released at once, the copy comes back, then it ends FAILED."""
    envelope = _accept(store)
    store.transition(envelope.message_id, Status.QUEUED, by="worker")
    flaky = _FailingFailedWrite(store)

    first, visibility = _settle(flaky, _dead_letter(envelope, receives=6))  # type: ignore[arg-type]

    assert first == ["dlq-1"]
    assert visibility.delays
    held = store.get(envelope.message_id)
    assert held.status is Status.PROCESSING
    assert held.lease is not None
    assert datetime.fromisoformat(held.lease.until) <= utc_now()
    second, _ = _settle(store, _dead_letter(envelope, receives=7))
    assert second == []
    assert store.get(envelope.message_id).status is Status.FAILED


def test_a_failed_read_sends_the_copy_back_unchanged(store: InMemoryMessageStore) -> None:
    """DynamoDB throttles the read: the copy is received again later, nothing was written."""
    envelope = _accept(store)
    store.fail_next["get"] = AwsError("GetItem throttled", retryable=True)

    failed, visibility = _settle(store, _dead_letter(envelope))

    assert failed == ["dlq-1"]
    assert len(visibility.delays) == 1
    assert store.get(envelope.message_id).status is Status.PENDING


class _FailingFailedWrite:
    """The store, whose moves to FAILED fail with a passing fault (every try of one receive)."""

    def __init__(self, store: InMemoryMessageStore, times: int = 3) -> None:
        self.store = store
        self.times = times

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def transition(self, message_id: str, to: Status, **kwargs: Any) -> TransitionResult:
        if to is Status.FAILED and self.times > 0:
            self.times -= 1
            raise AwsError("UpdateItem failed", retryable=True)
        return self.store.transition(message_id, to, **kwargs)


def _copy_of(record: dict[str, Any]) -> SqsCopy:
    copy = sqs_copy(record)
    assert copy is not None
    return copy


def _other_envelope() -> Envelope:
    return NOTE.envelope(message_id=new_message_id(), created_at=iso(utc_now()))


def _fifo_copy(envelope: Envelope, generation: int, *, sent: datetime) -> SqsCopy:
    """A FIFO dead letter whose deduplication id names its send generation (Lambda passes it in the attributes)."""
    record = _dead_letter(envelope, sent=sent, queue=FIFO_DLQ)
    record["attributes"]["MessageDeduplicationId"] = dedup_id(envelope.message_id, generation)
    return _copy_of(record)


def test_on_a_fifo_queue_the_send_generation_tells_a_copy_older_than_a_resend(store: InMemoryMessageStore) -> None:
    """A copy of an earlier generation is stale whatever its timestamp says; the latest generation's copy ends it."""
    envelope = _accept(store)
    store.transition(envelope.message_id, Status.QUEUED, by="worker")
    # The sweeper re-sent it (its copy was gone): a new generation, no status change, no history line.
    assert store.new_send_generation(envelope.message_id, expected=frozenset({Status.QUEUED})) == 1
    late = utc_now() + timedelta(minutes=1)  # moved to the DLQ after everything: the times alone say "not stale"

    assert DeadLetters(store).settle(_fifo_copy(envelope, 0, sent=late)) is Settled.STALE
    assert store.get(envelope.message_id).status is Status.QUEUED
    assert DeadLetters(store).settle(_fifo_copy(envelope, 1, sent=late)) is Settled.FAILED


def test_a_copy_that_names_no_generation_is_judged_by_the_times(store: InMemoryMessageStore) -> None:
    """A dedup id that is not one of ours (or a record never re-sent) keeps the timestamp rule."""
    envelope, _, redriven_at = _failed_then_redriven(store)
    store.new_send_generation(envelope.message_id, expected=frozenset({Status.QUEUED}))
    record = _dead_letter(envelope, sent=redriven_at + timedelta(seconds=1), queue=FIFO_DLQ)
    record["attributes"]["MessageDeduplicationId"] = "someone-else:1"
    assert DeadLetters(store).settle(_copy_of(record)) is Settled.FAILED
