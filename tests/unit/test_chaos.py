"""The chaos run's own measuring instruments, without AWS: order, overlaps and the switchable trigger."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from bench.chaos import (
    KINDS,
    VIOLATIONS,
    Deaths,
    DeliveryLog,
    Harness,
    Sent,
    Trigger,
    copies_by_cause,
    exercised,
    lease_takeovers,
    out_of_order,
    stranded,
)
from outbox.domain.envelope import Envelope
from outbox.faults import SimulatedCrash
from outbox.local.stream_runner import MappingSettings, StreamRunner
from tests.unit.test_stream_runner import ARN, Clock, FakeSqs, FakeStreams


def _sent(*messages: tuple[str, str | None, float, float]) -> Sent:
    """(message_id, group, first request sent, 202 received) per message."""
    sent = Sent()
    for message_id, group, first, answered in messages:
        sent.accepted[message_id] = {"group_key": group} if group else {}
        sent.first_sent[message_id] = first
        sent.answered[message_id] = answered
    return sent


def _log(*calls: str) -> DeliveryLog:
    log = DeliveryLog(widen_s=0)
    for message_id in calls:
        log.first.setdefault(message_id, len(log.calls))
        log.calls.append(message_id)
    return log


def test_a_delivery_before_an_earlier_accepted_message_of_its_group_is_out_of_order() -> None:
    """A answered before B was sent: B's calls before A's first call count, one per call; later ones do not."""
    sent = _sent(("A", "g", 0.0, 1.0), ("B", "g", 2.0, 3.0), ("C", "h", 2.0, 3.0))

    found = out_of_order(sent, _log("B", "C", "B", "A", "B"))

    assert found == [(0, "B", "A"), (2, "B", "A")]


def test_overlapping_requests_other_groups_and_undelivered_messages_order_nothing() -> None:
    """B was sent before A's 202 came back; D is in another group; E was never delivered (it ended FAILED)."""
    sent = _sent(("A", "g", 0.0, 2.0), ("B", "g", 1.0, 3.0), ("D", "h", 0.0, 0.5), ("E", "g", 0.0, 0.5))

    assert out_of_order(sent, _log("B", "A", "D")) == []


def test_the_second_of_a_same_millisecond_pair_delivered_first_is_out_of_order() -> None:
    """One transaction, one millisecond: the pair overlaps in time, yet its first message precedes its second."""
    sent = _sent(("A", "g", 0.0, 1.0), ("B", "g", 0.0, 1.0))
    sent.writer |= {"A": "pairs", "B": "pairs"}
    sent.made_after["B"] = "A"

    assert out_of_order(sent, _log("B", "A")) == [(0, "B", "A")]
    assert out_of_order(sent, _log("A", "B")) == []


def test_writers_whose_clocks_differ_are_ordered_only_beyond_the_difference_and_the_margin() -> None:
    """A writer 2 s ahead: a message of the API sent 3 s after its answer is not ordered; 8 s after, it is."""
    sent = _sent(("A", "g", 0.0, 1.0), ("B", "g", 4.0, 5.0), ("C", "g", 9.0, 10.0))
    sent.writer["A"] = "ahead"

    assert out_of_order(sent, _log("B", "C", "A")) == [(1, "C", "A")]


def test_two_calls_for_one_message_at_once_are_counted() -> None:
    """The second call enters while the first still runs; a third, after both, does not count."""
    log = DeliveryLog(widen_s=0)
    inside, release = threading.Event(), threading.Event()

    def slow(_: Envelope) -> None:
        inside.set()
        release.wait(5)

    deliver = log.wrap(slow)
    envelope = cast(Envelope, SimpleNamespace(message_id="m1"))  # the log reads nothing else
    first = threading.Thread(target=deliver, args=(envelope,))
    first.start()
    inside.wait(5)
    log.wrap(lambda _: None)(envelope)
    release.set()
    first.join(5)
    log.wrap(lambda _: None)(envelope)

    assert log.concurrent == 1
    assert len(log.calls) == 3


def _entry(seq: int) -> dict[str, Any]:
    return {
        "eventID": f"e{seq}",
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"pk": {"S": "OUTBOX#0001"}, "sk": {"S": str(seq)}},
            "NewImage": {"message_id": {"S": f"m{seq}"}, "created_at": {"S": f"2026-01-01T00:00:{seq:02d}.000Z"}},
            "SequenceNumber": f"{seq:06d}",
        },
    }


def _seqs(event: dict[str, Any]) -> list[str]:
    return [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]


def test_a_disabled_trigger_reads_nothing_and_comes_back_past_what_retention_trimmed() -> None:
    """Disabled: no poll reads; at most 3 unhandled entries older than the retention are lost; it resumes past them."""
    streams = FakeStreams({"s1": [_entry(i) for i in range(1, 7)]})
    seen: list[list[str]] = []
    settings = MappingSettings(batch_size=2, on_failure_queue_url="q")
    runner = StreamRunner(streams, ARN, lambda event, _: seen.append(_seqs(event)), settings, sqs=FakeSqs())
    trigger = Trigger(runner)

    runner.poll_once()
    trigger.disable()
    requests = len(streams.iterator_requests)
    assert runner.poll_once() == 0
    assert len(streams.iterator_requests) == requests  # a disabled trigger does not read the stream
    streams.shards["s1"] += [_entry(7), _entry(8)]
    trigger.enable(trim_before=datetime(2026, 1, 1, 0, 0, 6, tzinfo=UTC), limit=3)
    runner.poll_once()

    assert trigger.trimmed == ["m3", "m4", "m5"]
    assert seen == [["000001", "000002"], ["000006", "000007"]]
    assert runner.shards["s1"].checkpoint == "000007"


def test_trimming_reaches_into_a_batch_being_retried() -> None:
    """A batch that keeps failing loses its trimmed records; the rest is retried."""
    clock = Clock()
    streams = FakeStreams({"s1": [_entry(1), _entry(2)]})
    seen: list[list[str]] = []

    def failing_once(event: dict[str, Any], _: Any) -> None:
        seen.append(_seqs(event))
        if len(seen) == 1:
            raise RuntimeError("down")

    settings = MappingSettings(batch_size=2, bisect_on_error=False, on_failure_queue_url="q")
    runner = StreamRunner(streams, ARN, failing_once, settings, sqs=FakeSqs(), clock=clock)
    trigger = Trigger(runner)

    runner.poll_once()
    trigger.disable()
    trigger.enable(trim_before=datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC), limit=5)  # only m1 is that old
    clock.now += 60
    runner.poll_once()

    assert trigger.trimmed == ["m1"]
    assert seen == [["000001", "000002"], ["000002"]]


def _record(status: str, *history: str, lease_until: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"status": {"S": status}, "history": {"L": [{"M": {"status": {"S": h}}} for h in history]}}
    if lease_until is not None:
        record["lease_until"] = {"S": lease_until}
    return record


def test_a_record_in_flight_with_no_copy_and_no_live_lease_is_stranded() -> None:
    """Stranded: QUEUED or PROCESSING, no copy in a queue, no live lease; ended, PENDING, held or queued ones not."""
    sent = _sent(*((m, None, 0.0, 1.0) for m in ("gone", "held", "queued", "done", "pending", "expired")))
    records = {
        "gone": _record("QUEUED", "PENDING", "QUEUED"),
        "held": _record("PROCESSING", "PENDING", "PROCESSING", lease_until="2999-01-01T00:00:00.000Z"),
        "queued": _record("QUEUED", "PENDING", "QUEUED"),
        "done": _record("COMPLETED", "PENDING", "QUEUED", "PROCESSING", "COMPLETED"),
        "pending": _record("PENDING", "PENDING"),  # the sweeper's to find
        "expired": _record("PROCESSING", "PENDING", "PROCESSING", lease_until="2000-01-01T00:00:00.000Z"),
    }

    assert stranded(sent, records, copies={"queued"}) == ["gone", "expired"]
    # A copy no receive could see may be either one's: the count is then a lower bound.
    assert stranded(sent, records, copies={"queued"}, unseen=1) == ["expired"]


def test_lease_takeovers_count_processing_to_processing_steps() -> None:
    """Each PROCESSING -> PROCESSING step is a lease taken over; a first lease or an end is not."""
    sent = _sent(("a", None, 0.0, 1.0), ("b", None, 0.0, 1.0))
    records = {
        "a": _record("COMPLETED", "PENDING", "QUEUED", "PROCESSING", "PROCESSING", "PROCESSING", "COMPLETED"),
        "b": _record("FAILED", "PENDING", "PROCESSING", "FAILED"),
    }

    assert lease_takeovers(sent, records) == 2


def test_exercised_sums_one_kind_of_fault_over_every_operation() -> None:
    """applied_unanswered and deaths: the injector's counts of one kind, whatever the operation."""
    faults = {"UpdateItem:answer_lost": 3, "SendMessageBatch:answer_lost": 2, "UpdateItem:crash_after": 1}

    assert (exercised(faults, "answer_lost"), exercised(faults, "crash_after"), exercised(faults, "timeout")) == (
        5,
        1,
        0,
    )


def test_every_write_the_code_makes_can_lose_its_answer() -> None:
    """The fault model: answer_lost on each DynamoDB and SQS write, and a death after every status write."""
    writes = {
        "TransactWriteItems",
        "UpdateItem",
        "SendMessageBatch",
        "ChangeMessageVisibility",
        "DeleteMessageBatch",
        "ChangeMessageVisibilityBatch",
    }
    assert {operation for operation, kinds in KINDS.items() if "answer_lost" in kinds} == writes
    assert {operation for operation, kinds in KINDS.items() if "crash_after" in kinds} == {
        "UpdateItem",
        "SendMessageBatch",
    }
    assert {"stranded"} <= set(VIOLATIONS)


def test_copies_by_cause_sums_to_copies_per_message() -> None:
    """Each copy beyond a message's first receive is put down to a cause; the rest shows as unexplained."""
    sent = _sent(("A", None, 0.0, 1.0), ("B", None, 0.0, 1.0))
    harness = Harness()
    harness.deliveries.update({"A": 4, "B": 2})  # 6 copies: 2 first receives and 4 more
    harness.sqs_copies.update({"A": {"s1", "s2"}, "B": {"s3"}})  # A was sent twice
    harness.died_copies.update({"delivered": 1})

    causes = copies_by_cause(sent, harness, {"retried": 1, "retried_busy": 1, "completed": 2})

    assert causes == {
        "first_receive": 1.0,
        "died_delivered": 0.5,
        "died_not_delivered": 0.0,
        "retried_busy": 0.5,
        "resent": 0.5,
        "unexplained": 0.5,
    }
    assert sum(causes.values()) == 3.0  # copies per message


def _invocations(deaths: Deaths, writes: int, copies: int = 4, times: int = 400) -> Counter[str]:
    """Run ``times`` invocations of ``copies`` copies, each making ``writes`` writes; what became of them."""
    crash = deaths.due(share=1.0)  # outside an invocation every write would die: inside, the fate decides
    seen: Counter[str] = Counter()

    def invoke(event: dict[str, Any], _: Any) -> str:
        for write in range(1, writes + 1):
            if crash({}):
                seen[f"after_write_{write}"] += 1
                raise SimulatedCrash("crashed")
        return "done"

    dying = deaths.dying(invoke, writes_per_copy=2)
    for _ in range(times):
        try:
            seen[dying({"Records": [{}] * copies}, None)] += 1
        except SimulatedCrash:
            seen["died"] += 1
    return seen


def test_an_invocation_dies_at_most_once_whatever_its_batch_at_a_point_among_its_writes() -> None:
    """Per invocation: ``rate`` of them die, each after one write picked among a batch's, whatever the batch."""
    seen = _invocations(Deaths(0.25, seed=3), writes=8)  # 4 copies, 2 writes each: points 1..8

    assert seen["done"] + seen["died"] == 400
    assert 60 <= seen["died"] <= 140  # 25 % of 400, give or take what seeded dice do
    points = {key for key in seen if key.startswith("after_write_")}
    assert len(points) >= 6  # spread over the batch's writes, not always the first
    assert sum(seen[key] for key in points) == seen["died"]


def test_an_invocation_with_fewer_writes_than_its_death_point_dies_after_its_last() -> None:
    """A doomed invocation that ends early still dies (a timeout with its work done): its batch comes back."""
    deaths = Deaths(1.0, seed=3)

    seen = _invocations(deaths, writes=0, times=10)

    assert seen == Counter({"died": 10})
    assert deaths.at_end == 10


def test_a_spared_invocation_never_dies_and_per_call_deaths_pass_through() -> None:
    """Rate 0: nothing dies, however many writes; ``per_call``: the invocation has no fate, each write its share."""
    assert _invocations(Deaths(0.0, seed=3), writes=50) == Counter({"done": 400})
    per_call = _invocations(Deaths(0.0, seed=3, per_call=True), writes=1, times=5)
    assert per_call == Counter({"after_write_1": 5, "died": 5})
