"""The relay's rules, proven with in-memory fakes (no AWS)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from outbox.adapters.publisher import SqsPublisher
from outbox.domain.envelope import message_body, new_envelope
from outbox.domain.errors import AwsError, ThrottledError
from outbox.domain.keys import generation_of, iso, utc_now
from outbox.domain.message import new_message_id
from outbox.domain.status import Status
from outbox.notifications.notification import parse_notification
from outbox.ports import OutgoingMessage
from outbox.service.relay import RecentSends, Relay, RelayItem, RelayPolicy
from outbox.testing import FakePublisher, InMemoryMessageStore


@pytest.fixture
def relay(store: InMemoryMessageStore, publisher: FakePublisher) -> Iterator[Relay]:
    """A fresh relay."""
    built = Relay(store, publisher, policy=RelayPolicy(max_attempts=3, max_batch_bytes=4_000))
    yield built
    built.close()


def _items(store: InMemoryMessageStore, n: int, *, group: str | None = None, body_size: int = 10) -> list[RelayItem]:
    items = []
    for i in range(n):
        data = {"channel": "sms", "recipient": "+14155550100", "body": "x" * body_size}
        notification = parse_notification(data | ({"group_key": group} if group else {}))
        envelope = notification.envelope(message_id=new_message_id(), created_at=iso(utc_now()))
        store.accept(envelope, idempotency_key=None)
        items.append(RelayItem(f"{len(store.records):05d}-{i}", envelope.message_id, envelope.to_json(), group))
    return items


def test_send_then_flip(relay: Relay, store: InMemoryMessageStore, publisher: FakePublisher) -> None:
    """Invariant 3 (send, then flip): at the moment SQS accepts a batch, none of its records is QUEUED yet."""
    items = _items(store, 12)
    seen: list[Status] = []

    def check(accepted: Sequence[OutgoingMessage]) -> None:
        seen.extend(store.records[m.message_id].status for m in accepted)

    publisher.after_send = check

    report = relay.relay(items)

    assert seen == [Status.PENDING] * 12
    assert report.sent == [i.key for i in items]
    assert all(store.records[i.message_id].status is Status.QUEUED for i in items)
    assert [len(b) for b in publisher.batches] == [10, 2]


def test_chunks_respect_the_byte_limit(relay: Relay, store: InMemoryMessageStore, publisher: FakePublisher) -> None:
    """A chunk never exceeds the configured byte limit, however few entries it holds."""
    items = _items(store, 6, body_size=1_200)  # ~1.4 kB per envelope, 4 kB limit

    relay.relay(items)

    assert [len(b) for b in publisher.batches] == [2, 2, 2]


def test_one_entry_per_group_per_batch_and_order_kept(
    relay: Relay, store: InMemoryMessageStore, publisher: FakePublisher
) -> None:
    """Entries of one group go out one per batch, in order, while other groups fill the batch."""
    grouped = _items(store, 3, group="g")
    loose = _items(store, 2)

    relay.relay([grouped[0], grouped[1], loose[0], grouped[2], loose[1]])

    assert publisher.batches == [
        [grouped[0].message_id, loose[0].message_id, loose[1].message_id],
        [grouped[1].message_id],
        [grouped[2].message_id],
    ]


def test_refused_entry_blocks_its_group_only(
    relay: Relay, store: InMemoryMessageStore, publisher: FakePublisher
) -> None:
    """Fail fast: after a refused entry nothing later of its group is sent; other groups go on."""
    grouped = _items(store, 3, group="g")
    other = _items(store, 1, group="h")
    publisher.refuse[grouped[0].message_id] = ("InternalError", False)

    report = relay.relay([*grouped, *other])

    assert publisher.sent_ids() == [other[0].message_id]
    assert report.failed == [grouped[0].key, grouped[1].key, grouped[2].key]
    assert store.records[grouped[0].message_id].relay_attempts == 1
    assert all(store.records[i.message_id].status is Status.PENDING for i in grouped)


def test_poison_is_quarantined_after_max_attempts(
    relay: Relay, store: InMemoryMessageStore, publisher: FakePublisher
) -> None:
    """Invariant 7 (no poison blocks a shard): the third passing refusal of one entry quarantines it."""
    (item,) = _items(store, 1)
    publisher.refuse[item.message_id] = ("InternalError", False)

    reports = [relay.relay([item]) for _ in range(3)]

    assert [r.failed for r in reports] == [[item.key], [item.key], []]
    assert reports[2].quarantined == [item.key]
    record = store.records[item.message_id]
    assert record.status is Status.FAILED
    assert record.reason == "SQS refused the message: InternalError (3 attempts)"


def test_oversized_message_is_quarantined_without_a_request(
    relay: Relay, store: InMemoryMessageStore, publisher: FakePublisher
) -> None:
    """A message over the byte limit can never be sent: FAILED at once, SQS never asked."""
    (item,) = _items(store, 1, body_size=1_500)
    big = RelayItem(item.key, item.message_id, item.body + " " * 5_000)

    report = relay.relay([big])

    assert report.quarantined == [item.key]
    assert publisher.batches == []
    assert store.records[item.message_id].status is Status.FAILED


def test_whole_request_failure_stops_and_reports_everything_left(
    relay: Relay, store: InMemoryMessageStore, publisher: FakePublisher
) -> None:
    """Invariant 2 (nothing lost): when SendMessageBatch itself fails, this and every later item is reported."""
    items = _items(store, 15)
    publisher.fail_next.append(AwsError("SendMessageBatch failed (InternalError)", retryable=True))

    report = relay.relay(items)

    assert report.failed == [i.key for i in items]
    assert len(publisher.batches) == 1
    assert all(r.status is Status.PENDING for r in store.records.values())


def test_flip_failure_is_reported_and_duplicate_flip_is_not(
    relay: Relay, store: InMemoryMessageStore, publisher: FakePublisher
) -> None:
    """A throttled flip is a failure to retry; a flip that finds the record QUEUED is a duplicate, not a failure."""
    first, second = _items(store, 2)
    store.transition(second.message_id, Status.QUEUED, by="elsewhere")
    store.fail_next["transition"] = ThrottledError("UpdateItem throttled")

    report = relay.relay([first, second])

    assert len(publisher.sent) == 2
    assert sorted(report.failed + report.duplicates) == sorted([first.key, second.key])
    assert len(report.failed) == 1


def test_deadline_reports_unsent_items(relay: Relay, store: InMemoryMessageStore, publisher: FakePublisher) -> None:
    """Near the Lambda deadline the relay stops and reports what it did not send."""
    items = _items(store, 25)
    left = iter([60_000, 60_000, 100])

    report = relay.relay(items, time_left_ms=lambda: next(left))

    assert len(report.sent) == 20
    assert report.failed == [i.key for i in items[20:]]
    assert all(store.records[i.message_id].status is Status.PENDING for i in items[20:])


def test_replay_relay_moves_failed_to_queued_only(store: InMemoryMessageStore, publisher: FakePublisher) -> None:
    """A relay built for re-drive expects FAILED: it flips FAILED -> QUEUED and leaves PENDING alone."""
    failed, pending = _items(store, 2)
    store.transition(failed.message_id, Status.FAILED, by="worker", reason="poison")
    redrive = Relay(store, publisher, by="replay", expected=frozenset({Status.FAILED}))

    report = redrive.relay([failed, pending])
    redrive.close()

    assert report.sent == [failed.key]
    assert report.duplicates == [pending.key]
    assert store.records[failed.message_id].history[-1].by == "replay"
    assert store.records[pending.message_id].status is Status.PENDING


def test_a_redelivered_batch_is_not_sent_again_by_the_same_container(
    store: InMemoryMessageStore, publisher: FakePublisher
) -> None:
    """Fewer duplicate copies: what this process sent needs only its flip; what it flipped needs nothing."""
    relay = Relay(store, publisher, recent=RecentSends(100))
    items = _items(store, 3)
    store.fail_next["transition"] = ThrottledError("UpdateItem throttled")  # the first flip fails
    first = relay.relay(items)
    assert len(first.failed) == 1
    assert len(publisher.sent) == 3

    again = relay.relay(items)  # Lambda redelivers the batch from the failed record on

    assert len(publisher.sent) == 3  # not one more copy on the queue
    assert sorted(again.sent) == sorted(first.failed)  # the one left gets its flip
    assert sorted(again.duplicates) == sorted(first.sent)  # the others need nothing, not even a flip
    assert all(store.records[i.message_id].status is Status.QUEUED for i in items)
    relay.close()


def test_recent_sends_are_bounded(store: InMemoryMessageStore, publisher: FakePublisher) -> None:
    """The memory keeps only the latest messages: an old one is sent again (a duplicate SQS tolerates)."""
    recent = RecentSends(2)
    recent.sent(["a", "b"])
    recent.done("c")
    assert (recent.was_sent("a"), recent.was_sent("b"), recent.is_done("c")) == (False, True, True)
    assert not RecentSends(0).was_sent("x")


def test_a_resend_in_flight_flips_nothing_and_keeps_its_generation(
    store: InMemoryMessageStore, publisher: FakePublisher
) -> None:
    """With no statuses to flip from (the sweeper's re-send of a message in flight) a send is the whole job."""
    notification = parse_notification({"channel": "sms", "recipient": "+14155550100", "body": "hi"})
    envelope = notification.envelope(message_id=new_message_id(), created_at=iso(utc_now()))
    store.accept(envelope, idempotency_key=None)
    store.transition(envelope.message_id, Status.QUEUED, by="worker")
    resender = Relay(store, publisher, by="sweeper", expected=frozenset())

    report = resender.relay([RelayItem.from_record(envelope.message_id, generation=3)])
    resender.close()

    assert report.sent == [envelope.message_id]
    assert [(m.message_id, m.generation) for m in publisher.sent] == [(envelope.message_id, 3)]
    assert [h.status for h in store.records[envelope.message_id].history] == [Status.PENDING, Status.QUEUED]


def test_a_message_resent_from_its_record_carries_its_entrys_body_byte_for_byte() -> None:
    """Every path makes the body with one function: the sweeper's and the worker's re-sends send what accept stored."""
    envelope = new_envelope({"n": 1}, type="T", message_id=new_message_id(), created_at=iso(utc_now()), group_key="g")

    item = RelayItem.from_record(envelope.message_id, envelope.group_key, envelope.trace_id, 2)

    assert item.body == envelope.body() == message_body(envelope.message_id)
    assert (item.key, item.message_id, item.group_key, item.generation) == (envelope.message_id,) * 2 + ("g", 2)


class _SendRecorder:
    def __init__(self) -> None:
        self.entries: list[dict[str, str]] = []

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.entries += Entries
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}


def test_a_fifo_copy_is_deduplicated_by_message_and_send_generation() -> None:
    """A retry of a send keeps its dedup id; a deliberate re-send (a new generation) has its own."""
    client = _SendRecorder()
    publisher = SqsPublisher("https://sqs/q.fifo", client=client)  # type: ignore[arg-type]
    publisher.send_batch([OutgoingMessage("m-1", "{}", "g"), OutgoingMessage("m-1", "{}", "g", 2)])
    assert [(e["MessageGroupId"], e["MessageDeduplicationId"]) for e in client.entries] == [
        ("g", "m-1"),
        ("g", "m-1:2"),
    ]
    assert [generation_of(e["MessageDeduplicationId"], "m-1") for e in client.entries] == [0, 2]
    assert [generation_of(other, "m-1") for other in ("m-2", "m-1:", "m-1:02", "m-1:x", "m-2:1")] == [None] * 5


def test_a_copy_carries_its_trace_as_aws_trace_header_and_a_malformed_one_is_sent_without() -> None:
    """Issue 26: the relay's trace becomes the entry's AWSTraceHeader; text that is no trace never stops a send."""
    client = _SendRecorder()
    publisher = SqsPublisher("https://sqs/q", client=client)  # type: ignore[arg-type]
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    messages = [OutgoingMessage("m-1", "{}", trace_header=trace), OutgoingMessage("m-2", "{}", trace_header="req-42")]
    outcome = publisher.send_batch([*messages, OutgoingMessage("m-3", "{}")])
    assert outcome.accepted == (0, 1, 2)
    attributes = [e.get("MessageSystemAttributes") for e in client.entries]
    assert attributes == [{"AWSTraceHeader": {"DataType": "String", "StringValue": trace}}, None, None]
