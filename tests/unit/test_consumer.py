"""The consumer's delivery guarantees on the fakes: one delivery at a time, FIFO order, no dead-letter limbo."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from outbox.domain.envelope import Envelope
from outbox.domain.errors import AwsError, DeliveryError
from outbox.domain.keys import iso, utc_now
from outbox.domain.message import new_message_id
from outbox.domain.record import Lease
from outbox.domain.status import Status
from outbox.notifications.notification import parse_notification
from outbox.service.consume import Consumer, ConsumerPolicy
from outbox.testing import FakeLambdaContext, FakeVisibility, InMemoryMessageStore

NOTE = parse_notification({"channel": "sms", "recipient": "+14155550100", "body": "hi"})


@pytest.fixture
def store() -> InMemoryMessageStore:
    """An empty in-memory store."""
    return InMemoryMessageStore()


def _accept(store: InMemoryMessageStore, group: str | None = None) -> Envelope:
    note = replace(NOTE, group_key=group)
    envelope = note.envelope(message_id=new_message_id(), created_at=iso(utc_now()))
    store.accept(envelope, idempotency_key=None)
    return envelope


def _record(envelope: Envelope, sqs_id: str, receives: int = 1, group: str | None = None) -> dict[str, Any]:
    attributes = {"ApproximateReceiveCount": str(receives)} | ({"MessageGroupId": group} if group else {})
    receipt = f"rh-{sqs_id}-{receives}"  # every receive has its own receipt handle
    return {"messageId": sqs_id, "body": envelope.to_json(), "attributes": attributes, "receiptHandle": receipt}


def _event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def _failed(response: dict[str, list[dict[str, str]]]) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def test_a_copy_arriving_while_another_holds_the_lease_is_not_delivered(store: InMemoryMessageStore) -> None:
    """Invariant 6: while one copy's delivery runs, a second copy goes back to the queue, briefly, undelivered."""
    envelope = _accept(store)
    visibility = FakeVisibility()
    delivered: list[str] = []
    consumer = Consumer(store, lambda e: delivered.append(e.message_id), visibility=visibility)

    def first_delivery(_: Envelope) -> None:
        # GIVEN the first copy is being delivered WHEN a second copy arrives meanwhile
        second = consumer.handle(_event(_record(envelope, "copy-2")))
        # THEN the second is sent back, undelivered, until the first one's lease has run out
        assert _failed(second) == ["copy-2"]
        lease = store.records[envelope.message_id].lease
        assert lease is not None
        left = (datetime.fromisoformat(lease.until) - utc_now()).total_seconds()
        ((copy, delay),) = visibility.delays
        assert copy == "copy-2"
        assert left < delay <= left + 2  # not sooner: a receive while the lease holds only nears the DLQ
        delivered.append("first")

    holder = Consumer(store, first_delivery, visibility=visibility)
    assert _failed(holder.handle(_event(_record(envelope, "copy-1")))) == []
    assert delivered == ["first"]
    assert store.records[envelope.message_id].status is Status.COMPLETED
    # AND a copy after completion is dropped, never delivered again
    assert _failed(consumer.handle(_event(_record(envelope, "copy-3")))) == []
    assert delivered == ["first"]


def test_an_expired_lease_is_taken_over_and_the_attempt_counted(store: InMemoryMessageStore) -> None:
    """A holder that died leaves PROCESSING behind; once its lease ran out a redelivered copy takes over."""
    envelope = _accept(store)
    stale = iso(utc_now() - timedelta(seconds=1))
    store.transition(envelope.message_id, Status.PROCESSING, by="consumer", lease=Lease("dead", stale))
    consumer = Consumer(store)
    assert _failed(consumer.handle(_event(_record(envelope, "copy-2", receives=2)))) == []
    record = store.records[envelope.message_id]
    assert (record.status, record.attempts, record.lease) == (Status.COMPLETED, 2, None)


def test_only_the_lease_holder_completes(store: InMemoryMessageStore) -> None:
    """A copy whose lease was taken over while it delivered does not overwrite the new holder's outcome."""
    envelope = _accept(store)

    def slow(_: Envelope) -> None:  # meanwhile the lease runs out and another copy takes the message over
        store.records[envelope.message_id] = replace(
            store.records[envelope.message_id], lease=Lease("other", iso(utc_now() + timedelta(minutes=5)))
        )

    consumer = Consumer(store, slow)
    response = consumer.handle(_event(_record(envelope, "copy-1")))
    assert _failed(response) == []  # acknowledged as a duplicate: the holder decides
    assert store.records[envelope.message_id].status is Status.PROCESSING
    assert consumer.stats["duplicates"] == 1


def test_a_lease_lasts_as_long_as_the_invocation_can(store: InMemoryMessageStore) -> None:
    """The lease ends after the invocation's remaining time and a margin: a live invocation is never overtaken."""
    envelope = _accept(store)
    seen: list[Lease | None] = []
    consumer = Consumer(store, lambda e: seen.append(store.records[e.message_id].lease))
    before = utc_now()
    consumer.handle(_event(_record(envelope, "copy-1")), FakeLambdaContext(remaining_ms=30_000))
    (lease,) = seen
    assert lease is not None
    assert iso(before + timedelta(seconds=35)) <= lease.until <= iso(utc_now() + timedelta(seconds=35))


def test_a_fifo_failure_stops_its_group_and_not_the_others(store: InMemoryMessageStore) -> None:
    """Invariant 8: after a retryable failure, later copies of that group are sent back undelivered."""
    a1, a2, b1, a3 = (_accept(store, g) for g in ("A", "A", "B", "A"))
    delivered: list[str] = []

    def deliver(envelope: Envelope) -> None:
        if envelope.message_id == a1.message_id:
            raise DeliveryError("try later")
        delivered.append(envelope.message_id)

    event = _event(*(_record(e, f"s-{i}", group=e.group_key) for i, e in enumerate((a1, a2, b1, a3))))
    response = Consumer(store, deliver).handle(event)
    assert _failed(response) == ["s-0", "s-1", "s-3"]
    assert delivered == [b1.message_id]
    assert store.records[a2.message_id].status is Status.PENDING  # never even started


def test_on_the_last_allowed_receive_a_retryable_failure_ends_failed(store: InMemoryMessageStore) -> None:
    """Invariant 7: no copy reaches the dead-letter queue while its record is QUEUED or PROCESSING."""
    envelope = _accept(store)
    visibility = FakeVisibility()

    def down(_: Envelope) -> None:
        raise DeliveryError("provider down")

    consumer = Consumer(store, down, policy=ConsumerPolicy(max_receive_count=4), visibility=visibility)
    assert _failed(consumer.handle(_event(_record(envelope, "c", receives=3)))) == ["c"]
    assert store.records[envelope.message_id].status is Status.PROCESSING
    assert _failed(consumer.handle(_event(_record(envelope, "c", receives=4)))) == []
    record = store.records[envelope.message_id]
    assert record.status is Status.FAILED
    assert record.reason == "delivery failed on the last allowed receive (4): provider down"


def test_a_throttled_status_write_is_tried_again_before_the_copy_goes_back(store: InMemoryMessageStore) -> None:
    """A receive that is no delivery attempt costs a receive: a passing fault is retried in the invocation first."""
    envelope = _accept(store)
    pauses: list[float] = []
    consumer = Consumer(store, policy=ConsumerPolicy(max_receive_count=2), sleep=pauses.append)
    store.fail_next["transition"] = AwsError("UpdateItem throttled", retryable=True)
    assert _failed(consumer.handle(_event(_record(envelope, "c", receives=2)))) == []
    assert store.records[envelope.message_id].status is Status.COMPLETED
    assert pauses == [ConsumerPolicy().status_write_pause_s]


def test_retries_back_off_growing_and_capped() -> None:
    """Each retry comes back after a short delay that doubles per receive, up to the cap."""
    policy = ConsumerPolicy(backoff_base_s=2, backoff_max_s=30)
    assert [policy.backoff_s(n) for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]


def test_a_retried_copy_is_delayed_by_its_receive_count(store: InMemoryMessageStore) -> None:
    """The consumer asks SQS to bring a failed copy back after the backoff for its receive count."""
    envelope = _accept(store)
    visibility = FakeVisibility()

    def flaky(_: Envelope) -> None:
        raise TimeoutError

    consumer = Consumer(store, flaky, policy=ConsumerPolicy(backoff_base_s=3), visibility=visibility)
    consumer.handle(_event(_record(envelope, "c", receives=3)))
    assert visibility.delays == [("c", 12)]


def test_two_receives_of_one_copy_never_hold_the_lease_together(store: InMemoryMessageStore) -> None:
    """Invariant 6: a copy received again while its first receive still delivers (visibility ran out) waits."""
    envelope = _accept(store)
    delivered: list[str] = []

    def slow(e: Envelope) -> None:
        # meanwhile SQS hands the same copy to another receiver (a new receipt handle)
        second = Consumer(store, lambda _: delivered.append("second")).handle(_event(_record(e, "copy", receives=2)))
        assert _failed(second) == ["copy"]
        delivered.append("first")

    assert _failed(Consumer(store, slow).handle(_event(_record(envelope, "copy", receives=1)))) == []
    assert delivered == ["first"]


def test_a_copy_sent_back_gives_its_lease_back(store: InMemoryMessageStore) -> None:
    """After a retryable failure the next receive takes the message at once, not after the lease runs out."""
    envelope = _accept(store)
    calls: list[int] = []

    def flaky(_: Envelope) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise DeliveryError("try later")

    consumer = Consumer(store, flaky)
    assert _failed(consumer.handle(_event(_record(envelope, "c", receives=1)))) == ["c"]
    assert _failed(consumer.handle(_event(_record(envelope, "c", receives=2)))) == []
    assert len(calls) == 2
    assert store.records[envelope.message_id].status is Status.COMPLETED


def test_a_failed_delivery_is_logged_with_its_message_and_frames_never_the_payload(
    store: InMemoryMessageStore,
) -> None:
    """The log and the FAILED reason say what the delivery raised and where; text of the payload is cut out."""
    envelope = _accept(store)

    def refuses(sent: Envelope) -> None:
        raise RuntimeError(f"the gateway refused {sent.payload['recipient']}")

    consumer = Consumer(store, refuses, policy=ConsumerPolicy(max_attempts=5, max_receive_count=1))
    with capture_logs() as logs:
        consumer.handle({"Records": [_record(envelope, "s-1")]})

    (failed,) = [line for line in logs if line["event"] == "delivery_failed"]
    assert failed["error"] == "RuntimeError"
    assert failed["detail"] == "RuntimeError: the gateway refused [payload]"
    assert "in refuses" in failed["traceback"]
    assert "+14155550100" not in repr(logs)
    record = store.records[envelope.message_id]
    assert record.status is Status.FAILED
    assert (
        record.reason == "delivery failed on the last allowed receive (1): RuntimeError: the gateway refused [payload]"
    )


def test_finished_copies_are_acknowledged_early_while_the_batch_has_more(store: InMemoryMessageStore) -> None:
    """Issue 22: a copy done with is deleted before the next is processed, so a later death cannot bring it back.

    Copies going back are never acknowledged; the last copies are left to the mapping's own delete.
    """
    # GIVEN a FIFO batch: a, then b and c of a group whose b fails, then d; each finished copy acknowledged
    a, b, c, d = _accept(store), _accept(store, "g"), _accept(store, "g"), _accept(store)
    visibility = FakeVisibility()

    def deliver(envelope: Envelope) -> None:
        if envelope.message_id == b.message_id:
            raise DeliveryError("provider timed out")

    consumer = Consumer(store, deliver, policy=ConsumerPolicy(acknowledge_after=1), visibility=visibility)
    batch = _event(_record(a, "a"), _record(b, "b", group="g"), _record(c, "c", group="g"), _record(d, "d"))

    # WHEN the batch is consumed
    response = consumer.handle(batch)

    # THEN a was acknowledged as soon as it was done; b and c went back; d is the mapping's to delete
    assert _failed(response) == ["b", "c"]
    assert visibility.acknowledged == [["a"]]
    assert consumer.stats["acknowledged_early"] == 1
    assert consumer.stats["retried_delivery_failed"] == 1
    assert consumer.stats["retried_group_stopped"] == 1


def test_early_acknowledgements_go_a_request_per_acknowledge_after_copies(store: InMemoryMessageStore) -> None:
    """``acknowledge_after`` trades requests for redelivered copies: 2 waits for two finished copies a request."""
    envelopes = [_accept(store) for _ in range(5)]
    visibility = FakeVisibility()
    consumer = Consumer(store, lambda _e: None, policy=ConsumerPolicy(acknowledge_after=2), visibility=visibility)

    consumer.handle(_event(*(_record(e, f"m{i}") for i, e in enumerate(envelopes))))

    assert visibility.acknowledged == [["m0", "m1"], ["m2", "m3"]]  # m4, the last, is the mapping's


def test_copies_not_started_before_the_deadline_go_back_at_once(store: InMemoryMessageStore) -> None:
    """Issue 22: a copy is started only if one as slow as the slowest so far ends before Lambda's deadline.

    The rest go back visible at once (and a FIFO group stops behind them), not with a dead batch.
    """
    # GIVEN 10 s left, deliveries of 3 s, the default reserve of 2 s
    a, b, c = _accept(store, "g"), _accept(store, "g"), _accept(store, "h")
    left = [10_000]
    visibility = FakeVisibility()

    def deliver(_: Envelope) -> None:
        left[0] -= 3_000

    consumer = Consumer(store, deliver, visibility=visibility, policy=ConsumerPolicy(acknowledge_after=0))
    context = FakeLambdaContext(remaining_ms=lambda: left[0])

    # WHEN a batch of three is consumed
    response = consumer.handle(
        _event(_record(a, "a", group="g"), _record(b, "b", group="g"), _record(c, "c", group="h")), context
    )

    # THEN a and b were delivered (7 s left before b, 4 s before c: too little for 3 s and the reserve)
    assert _failed(response) == ["c"]
    assert visibility.delays == [("c", 0)]
    assert consumer.stats["retried_deadline"] == 1
    assert store.records[b.message_id].status is Status.COMPLETED
