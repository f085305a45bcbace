"""Each rule of the local stream runner, against a hand-built DynamoDB Streams API (no AWS)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from outbox.local.filters import check_pattern, matches, stream_filter_pattern
from outbox.local.stream_runner import MappingSettings, StreamRunner

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/outbox/stream/label"


def _record(seq: int, *, pk: str = "OUTBOX#0001", event: str = "INSERT") -> dict[str, Any]:
    return {
        "eventID": f"e{seq}",
        "eventName": event,
        "dynamodb": {"Keys": {"pk": {"S": pk}, "sk": {"S": str(seq)}}, "SequenceNumber": f"{seq:06d}"},
    }


@dataclass
class FakeStreams:
    """DescribeStream / GetShardIterator / GetRecords over in-memory shards."""

    shards: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    parents: dict[str, str] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)
    iterator_requests: list[dict[str, Any]] = field(default_factory=list)

    def describe_stream(self, **_: Any) -> dict[str, Any]:
        shards = []
        for shard_id, records in self.shards.items():
            seq_range: dict[str, str] = {"StartingSequenceNumber": "0"}
            if shard_id in self.closed:
                seq_range["EndingSequenceNumber"] = records[-1]["dynamodb"]["SequenceNumber"] if records else "0"
            shard: dict[str, Any] = {"ShardId": shard_id, "SequenceNumberRange": seq_range}
            if shard_id in self.parents:
                shard["ParentShardId"] = self.parents[shard_id]
            shards.append(shard)
        return {"StreamDescription": {"Shards": shards}}

    def get_shard_iterator(self, *, ShardId: str, ShardIteratorType: str, **kwargs: Any) -> dict[str, Any]:
        self.iterator_requests.append({"ShardId": ShardId, "ShardIteratorType": ShardIteratorType, **kwargs})
        records = self.shards[ShardId]
        start = 0
        if ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
            start = next(
                (i + 1 for i, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] == kwargs["SequenceNumber"]), 0
            )
        return {"ShardIterator": json.dumps([ShardId, start])}

    def get_records(self, *, ShardIterator: str, Limit: int) -> dict[str, Any]:
        shard_id, start = json.loads(ShardIterator)
        records = self.shards[shard_id][start : start + Limit]
        end = start + len(records)
        at_end = end >= len(self.shards[shard_id])
        next_iterator = None if at_end and shard_id in self.closed else json.dumps([shard_id, end])
        return {"Records": records, "NextShardIterator": next_iterator}


@dataclass
class FakeSqs:
    """Collects SendMessage calls (the on-failure destination)."""

    sent: list[dict[str, Any]] = field(default_factory=list)

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.sent.append(kwargs)
        return {"MessageId": "m"}


class Clock:
    """A manual clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Handler = Callable[[dict[str, Any], Any], Any]


def _runner(streams: FakeStreams, handler: Handler, clock: Clock | None = None, **settings: Any) -> StreamRunner:
    options: dict[str, Any] = {"batch_size": 10, "backoff_base_s": 1.0, "on_failure_queue_url": "q"} | settings
    return StreamRunner(streams, ARN, handler, MappingSettings(**options), sqs=FakeSqs(), clock=clock or Clock())


def _seqs(event: dict[str, Any]) -> list[str]:
    return [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]


def test_starts_at_trim_horizon_then_reads_after_its_checkpoint() -> None:
    """First poll reads from TRIM_HORIZON; later polls take a fresh iterator after the last sequence number."""
    streams = FakeStreams({"s1": [_record(1), _record(2)]})
    seen: list[list[str]] = []
    runner = _runner(streams, lambda event, _: seen.append(_seqs(event)))

    runner.poll_once()
    streams.shards["s1"].append(_record(3))
    runner.poll_once()

    assert seen == [["000001", "000002"], ["000003"]]
    assert streams.iterator_requests[0]["ShardIteratorType"] == "TRIM_HORIZON"
    assert streams.iterator_requests[1] == {
        "ShardId": "s1",
        "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
        "SequenceNumber": "000002",
        "StreamArn": ARN,
    }
    assert all(r["eventSourceARN"] == ARN for r in runner.shards["s1"].pending or [])


def test_batch_size_limits_each_invocation() -> None:
    """No invocation holds more than batch_size records."""
    streams = FakeStreams({"s1": [_record(i) for i in range(1, 26)]})
    sizes: list[int] = []
    runner = _runner(streams, lambda event, _: sizes.append(len(event["Records"])))

    for _ in range(4):
        runner.poll_once()

    assert sizes == [10, 10, 5]


def test_batching_window_waits_for_a_fuller_batch() -> None:
    """With a batching window a short batch waits until the window has passed."""
    clock = Clock()
    streams = FakeStreams({"s1": [_record(1)]})
    calls: list[list[str]] = []
    runner = _runner(streams, lambda event, _: calls.append(_seqs(event)), clock, batching_window_s=2.0)

    runner.poll_once()
    streams.shards["s1"].append(_record(2))
    clock.now += 1.0
    runner.poll_once()
    assert calls == []
    clock.now += 1.5
    runner.poll_once()

    assert calls == [["000001", "000002"]]


def test_filter_pattern_from_the_shared_file_drops_other_records() -> None:
    """Only outbox INSERTs reach the handler; the filter comes from worker/stream_filter.json.tftpl."""
    streams = FakeStreams(
        {"s1": [_record(1, pk="MSG#x"), _record(2), _record(3, event="MODIFY"), _record(4, event="REMOVE")]}
    )
    calls: list[list[str]] = []
    runner = _runner(streams, lambda event, _: calls.append(_seqs(event)))

    runner.poll_once()
    runner.poll_once()

    assert calls == [["000002"]]
    assert runner.shards["s1"].checkpoint == "000004"
    assert runner.settings.filter_pattern == stream_filter_pattern()


def test_partial_batch_response_resumes_at_the_lowest_failed_sequence_number() -> None:
    """A partial failure checkpoints before the lowest failed record and retries from it, after a backoff."""
    clock = Clock()
    streams = FakeStreams({"s1": [_record(i) for i in range(1, 6)]})
    calls: list[list[str]] = []

    def handler(event: dict[str, Any], _: Any) -> dict[str, Any]:
        calls.append(_seqs(event))
        if len(calls) == 1:
            return {"batchItemFailures": [{"itemIdentifier": "000004"}, {"itemIdentifier": "000003"}]}
        return {"batchItemFailures": []}

    runner = _runner(streams, handler, clock)
    runner.poll_once()
    assert runner.shards["s1"].checkpoint == "000002"
    runner.poll_once()  # backoff not over yet
    clock.now += 1.0
    runner.poll_once()

    assert calls == [["000001", "000002", "000003", "000004", "000005"], ["000003", "000004", "000005"]]
    assert runner.shards["s1"].checkpoint == "000005"


def test_invalid_item_identifier_fails_the_whole_batch() -> None:
    """An empty or unknown itemIdentifier counts as a failure of the whole batch, as on Lambda."""
    clock = Clock()
    streams = FakeStreams({"s1": [_record(1), _record(2)]})
    calls: list[list[str]] = []

    def handler(event: dict[str, Any], _: Any) -> dict[str, Any]:
        calls.append(_seqs(event))
        return {"batchItemFailures": [{"itemIdentifier": ""}]} if len(calls) == 1 else {}

    runner = _runner(streams, handler, clock)
    runner.poll_once()
    clock.now += 1.0
    runner.poll_once()

    assert calls == [["000001", "000002"], ["000001", "000002"]]


def test_function_error_retries_the_whole_batch_with_exponential_backoff() -> None:
    """An exception retries the same records, waiting base, then twice base, ..."""
    clock = Clock()
    streams = FakeStreams({"s1": [_record(1)]})
    calls: list[float] = []

    def handler(event: dict[str, Any], _: Any) -> None:
        calls.append(clock.now)
        if len(calls) < 3:
            raise RuntimeError("boom")

    runner = _runner(streams, handler, clock, bisect_on_error=False)
    for _ in range(6):
        runner.poll_once()
        clock.now += 1.0

    assert calls == [1000.0, 1001.0, 1003.0]
    assert runner.shards["s1"].checkpoint == "000001"


def test_bisect_on_error_splits_the_batch_before_retrying() -> None:
    """With bisect on, a failing batch is split in halves, down to the poison record."""
    clock = Clock()
    streams = FakeStreams({"s1": [_record(i) for i in range(1, 5)]})
    calls: list[list[str]] = []

    def handler(event: dict[str, Any], _: Any) -> None:
        calls.append(_seqs(event))
        if "000003" in _seqs(event):
            raise RuntimeError("poison")

    runner = _runner(streams, handler, clock, maximum_retry_attempts=0)
    for _ in range(6):
        runner.poll_once()

    assert calls[:4] == [
        ["000001", "000002", "000003", "000004"],
        ["000001", "000002"],
        ["000003", "000004"],
        ["000003"],
    ]
    assert ["000004"] in calls
    assert runner.stats["bisections"] == 2


def test_exhausted_retries_go_to_the_on_failure_queue_and_the_shard_moves_on() -> None:
    """After maximum_retry_attempts the batch's metadata is sent to the on-failure queue; later records flow."""
    clock = Clock()
    streams = FakeStreams({"s1": [_record(1), _record(2)]})
    calls: list[list[str]] = []

    def handler(event: dict[str, Any], _: Any) -> None:
        calls.append(_seqs(event))
        if "000001" in _seqs(event):
            raise RuntimeError("always")

    runner = _runner(streams, handler, clock, maximum_retry_attempts=2, bisect_on_error=False, batch_size=1)
    for _ in range(10):
        runner.poll_once()
        clock.now += 10

    assert calls == [["000001"], ["000001"], ["000001"], ["000002"]]
    (sent,) = runner.sqs.sent
    document = json.loads(sent["MessageBody"])
    assert sent["QueueUrl"] == "q"
    assert document["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert document["requestContext"]["approximateInvokeCount"] == 3
    assert document["DDBStreamBatchInfo"]["startSequenceNumber"] == "000001"
    assert document["DDBStreamBatchInfo"]["streamArn"] == ARN


def test_parent_shard_is_drained_before_its_child() -> None:
    """A child shard is read only after its closed parent has been read to the end."""
    streams = FakeStreams(
        {"parent": [_record(1), _record(2)], "child": [_record(10)]},
        parents={"child": "parent"},
        closed={"parent"},
    )
    calls: list[list[str]] = []
    runner = _runner(streams, lambda event, _: calls.append(_seqs(event)), batch_size=1)

    for _ in range(6):
        runner.poll_once()

    assert calls == [["000001"], ["000002"], ["000010"]]
    assert runner.shards["parent"].finished


def test_child_of_an_unknown_parent_is_read_at_once() -> None:
    """A parent trimmed from the stream (not listed) does not block its child."""
    streams = FakeStreams({"child": [_record(10)]}, parents={"child": "gone"})
    calls: list[list[str]] = []

    _runner(streams, lambda event, _: calls.append(_seqs(event))).poll_once()

    assert calls == [["000010"]]


def test_shards_are_listed_at_the_refresh_interval_or_when_one_closes() -> None:
    """DescribeStream at most every shard_refresh_s; a split's children come with their closed parent."""
    streams = FakeStreams({"a": [_record(1)]})
    listed: list[float] = []
    describe = streams.describe_stream

    def counting(**kwargs: Any) -> dict[str, Any]:
        listed.append(round(clock.now - start, 1))
        return describe(**kwargs)

    streams.describe_stream = counting  # type: ignore[method-assign]
    clock = Clock()
    start = clock.now
    calls: list[list[str]] = []
    runner = _runner(streams, lambda event, _: calls.append(_seqs(event)), clock, shard_refresh_s=5.0)
    runner.poll_once()
    streams.shards["b"] = [_record(7)]  # a new shard: not seen until the next listing
    clock.now += 1.0
    runner.poll_once()
    assert listed == [0.0]
    assert calls == [["000001"]]
    clock.now += 4.0
    runner.poll_once()
    assert listed == [0.0, 5.0]
    assert calls == [["000001"], ["000007"]]
    streams.closed.add("a")
    streams.shards["a-child"] = [_record(9)]
    streams.parents["a-child"] = "a"
    clock.now += 5.0
    runner.poll_once()  # lists: "a" closed, with its child
    clock.now += 0.1
    runner.poll_once()
    assert listed == [0.0, 5.0, 10.0]
    assert runner.shards["a"].finished
    assert calls[-1] == ["000009"]


def test_remaining_time_follows_the_function_timeout() -> None:
    """The context's remaining time counts down from the function timeout."""
    clock = Clock()
    streams = FakeStreams({"s1": [_record(1)]})
    remaining: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        clock.now += 1.5
        remaining.append(context.get_remaining_time_in_millis())

    _runner(streams, handler, clock, function_timeout_s=5.0).poll_once()

    assert remaining == [3500]


def test_filter_matcher_supports_only_what_it_implements() -> None:
    """prefix, exists and anything-but work; an unknown operator is refused, not guessed."""
    assert matches({"a": [{"prefix": "x"}]}, {"a": "xyz"})
    assert not matches({"a": [{"prefix": "x"}]}, {"a": 1})
    assert matches({"a": [{"exists": False}]}, {})
    assert matches({"a": [{"anything-but": ["b"]}]}, {"a": "c"})
    assert not matches({"a": ["v"]}, {})
    with pytest.raises(ValueError, match="unsupported filter operator"):
        check_pattern({"a": [{"numeric": [">", 1]}]})
