"""Writes applied but unanswered, on the fakes: a writer recognises its own effect, and counts it once.

A timeout or a 500 "may or may not have succeeded". When the write had landed, trying it again
meets its own effect: the lease this receive took, the end this lease holder wrote. The fake
store plays it with ``lose_answer_next`` (the write happens, then the call raises) and recognises
a leased write's own effect as the DynamoDB store does.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from outbox.domain.envelope import Envelope
from outbox.domain.errors import AwsError, DeliveryError
from outbox.domain.keys import iso, utc_now
from outbox.domain.message import new_message_id
from outbox.domain.record import Lease
from outbox.domain.status import Status
from outbox.metrics import MESSAGES_FAILED
from outbox.notifications.notification import parse_notification
from outbox.service.consume import Consumer, ConsumerPolicy
from outbox.service.dead_letter import DeadLetters, Settled
from outbox.testing import FakeVisibility, InMemoryMessageStore

NOTE = parse_notification({"channel": "sms", "recipient": "+14155550100", "body": "hi"})
LIMIT = 5  # the queue's maxReceiveCount


def _lost() -> AwsError:
    return AwsError("UpdateItem failed (ReadTimeoutError)", retryable=True)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> InMemoryMessageStore:
    """An empty in-memory store; metrics on (EMF lines on stdout)."""
    monkeypatch.setenv("OUTBOX_METRICS", "on")
    return InMemoryMessageStore()


def _accept(store: InMemoryMessageStore) -> Envelope:
    envelope = NOTE.envelope(message_id=new_message_id(), created_at=iso(utc_now()))
    store.accept(envelope, idempotency_key=None)
    store.transition(envelope.message_id, Status.QUEUED, by="worker")
    return envelope


def _copy(envelope: Envelope, receives: int, *, queue: str = "outbox-messages") -> dict[str, Any]:
    return {
        "messageId": "copy-1",
        "body": envelope.to_json(),
        "attributes": {
            "ApproximateReceiveCount": str(receives),
            "SentTimestamp": "1",
            # What SQS adds to a copy its redrive moved to the dead-letter queue.
            **(
                {"DeadLetterQueueSourceArn": "arn:aws:sqs:us-east-1:123456789012:outbox-messages"}
                if queue == "outbox-dlq"
                else {}
            ),
        },
        "receiptHandle": f"rh-{receives}",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
    }


def _consumer(store: InMemoryMessageStore, delivered: list[str], *, fail: bool = False) -> Consumer:
    def deliver(envelope: Envelope) -> None:
        delivered.append(envelope.message_id)
        if fail:
            raise DeliveryError("the provider refused it", retryable=False)

    policy = ConsumerPolicy(max_receive_count=LIMIT, status_write_pause_s=0)
    return Consumer(store, deliver, policy=policy, visibility=FakeVisibility())


def _metric(out: str, name: str) -> float:
    """The sum of ``name`` over the EMF lines written."""
    return sum(json.loads(line).get(name, 0) for line in out.splitlines() if line.startswith("{"))


@pytest.mark.parametrize("receives", [1, LIMIT], ids=["an-earlier-receive", "the-last-receive"])
def test_a_lease_taken_but_unanswered_is_this_receives_own(store: InMemoryMessageStore, receives: int) -> None:
    """Invariant 6: a lease this receive holds is this receive's; the copy is delivered, never dropped or stalled.

    On the last allowed receive the old code took its own lease for another's, acknowledged the copy
    and left the record PROCESSING for good (no copy, no alarm); on an earlier one it waited out its
    own lease.
    """
    # GIVEN the lease write lands, but its answer is lost
    envelope = _accept(store)
    store.lose_answer_next["transition:PROCESSING"] = _lost()
    delivered: list[str] = []
    consumer = _consumer(store, delivered)
    # WHEN the copy is handled
    response = consumer.handle({"Records": [_copy(envelope, receives)]})
    # THEN the retry recognises the lease as its own: delivered once, COMPLETED, acknowledged
    assert response == {"batchItemFailures": []}
    assert delivered == [envelope.message_id]
    record = store.records[envelope.message_id]
    assert record.status is Status.COMPLETED
    assert [line.status for line in record.history].count(Status.PROCESSING) == 1
    assert record.attempts == 1


def test_a_completion_applied_but_unanswered_counts_once(
    store: InMemoryMessageStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """Metrics count what happened: a COMPLETED write that landed unanswered is one MessagesCompleted."""
    envelope = _accept(store)
    store.lose_answer_next["transition:COMPLETED"] = _lost()
    consumer = _consumer(store, [])
    response = consumer.handle({"Records": [_copy(envelope, 1)]})
    assert response == {"batchItemFailures": []}
    assert store.records[envelope.message_id].status is Status.COMPLETED
    assert consumer.stats["completed"] == 1
    assert _metric(capsys.readouterr().out, "MessagesCompleted") == 1


def test_a_failure_applied_but_unanswered_counts_once(
    store: InMemoryMessageStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """A FAILED write that landed unanswered is one MessagesFailed (the alarm's metric), not a duplicate."""
    envelope = _accept(store)
    store.lose_answer_next["transition:FAILED"] = _lost()
    consumer = _consumer(store, [], fail=True)
    assert consumer.handle({"Records": [_copy(envelope, 1)]}) == {"batchItemFailures": []}
    assert store.records[envelope.message_id].status is Status.FAILED
    assert consumer.stats["failed"] == 1
    assert _metric(capsys.readouterr().out, MESSAGES_FAILED) == 1


def test_another_receives_live_lease_is_still_busy(store: InMemoryMessageStore) -> None:
    """Recognising one's own lease takes nothing from another's: a copy of a message held elsewhere goes back."""
    envelope = _accept(store)
    held = Lease("another-receive", iso(utc_now() + timedelta(minutes=1)))
    store.transition(envelope.message_id, Status.PROCESSING, by="consumer", lease=held)
    delivered: list[str] = []
    response = _consumer(store, delivered).handle({"Records": [_copy(envelope, 1)]})
    assert response == {"batchItemFailures": [{"itemIdentifier": "copy-1"}]}
    assert delivered == []
    assert store.records[envelope.message_id].lease == held


def test_a_start_that_failed_on_every_try_gives_back_a_lease_it_may_have_taken(store: InMemoryMessageStore) -> None:
    """The lease landed, then every try failed: the copy goes back and its lease is released, not waited out."""
    envelope = _accept(store)
    store.lose_answer_next["transition:PROCESSING"] = _lost()
    store.fail_next["transition"] = _lost()  # the next try fails before it is applied

    consumer = Consumer(store, policy=ConsumerPolicy(status_write_tries=2, status_write_pause_s=0))
    response = consumer.handle({"Records": [_copy(envelope, 1)]})

    assert response == {"batchItemFailures": [{"itemIdentifier": "copy-1"}]}
    lease = store.records[envelope.message_id].lease
    assert lease is not None
    assert lease.until <= iso(utc_now())  # released: the next receive takes it at once


def test_a_dead_letter_whose_writes_land_unanswered_ends_failed_once(
    store: InMemoryMessageStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """Invariant 7: the dead-letter function's lease and FAILED writes, both unanswered, end it in one receive."""
    envelope = _accept(store)
    store.lose_answer_next["transition:PROCESSING"] = _lost()
    store.lose_answer_next["transition:FAILED"] = _lost()
    dead_letters = DeadLetters(store, visibility=FakeVisibility())
    settled = dead_letters.handle({"Records": [_copy(envelope, 6, queue="outbox-dlq")]})
    assert settled == {"batchItemFailures": []}
    assert store.records[envelope.message_id].status is Status.FAILED
    assert dead_letters.stats[Settled.FAILED.value] == 1
    assert _metric(capsys.readouterr().out, MESSAGES_FAILED) == 1


def test_an_end_is_recognised_only_by_the_lease_that_wrote_it(store: InMemoryMessageStore) -> None:
    """A record another lease holder ended is not this writer's: the move is refused, as before."""
    envelope = _accept(store)
    mine, theirs = Lease("mine", iso(utc_now() + timedelta(minutes=1))), Lease("theirs", iso(utc_now()))
    store.transition(envelope.message_id, Status.PROCESSING, by="consumer", lease=theirs)
    store.transition(envelope.message_id, Status.COMPLETED, by="consumer", lease=theirs)
    assert store.records[envelope.message_id].ended_lease_owner == "theirs"
    with pytest.raises(Exception, match="cannot move to COMPLETED"):
        store.transition(envelope.message_id, Status.COMPLETED, by="consumer", lease=mine)
    result = store.transition(envelope.message_id, Status.COMPLETED, by="consumer", lease=theirs)
    assert result.repeated
