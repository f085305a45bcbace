"""The local stream runner: reads DynamoDB Streams and invokes a handler as Lambda's event source mapping does.

Rules it follows (each has a test):
- starts at TRIM_HORIZON, then takes a fresh iterator every poll from its checkpoint
  (``AFTER_SEQUENCE_NUMBER``), so an iterator orphaned by the emulator never stalls it;
- applies the filter pattern Terraform deploys before batching; filtered records only move the checkpoint;
- batches up to ``batch_size`` records, waiting at most ``batching_window_s`` for a fuller batch;
- a partial batch response checkpoints before the lowest failed ``SequenceNumber`` and retries
  from there; an empty or unknown identifier fails the whole batch, as on Lambda;
- a function error (or a timeout) retries the whole batch with exponential backoff, bisecting it
  first when ``bisect_on_error`` is set (a split does not count as a retry);
- after ``maximum_retry_attempts`` retries the batch's metadata goes to the on-failure queue and the
  shard moves on;
- a child shard is read only once its parent is closed and fully processed.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from outbox.local.events import to_lambda_record
from outbox.local.filters import matches, stream_filter_pattern

log = structlog.get_logger("outbox.local.stream_runner")

Invoke = Callable[[dict[str, Any], Any], Any]
MAX_GET_RECORDS = 1000


@dataclass(frozen=True)
class MappingSettings:
    """The event source mapping's settings, with Lambda's meaning."""

    batch_size: int = 100
    batching_window_s: float = 0.0
    maximum_retry_attempts: int = 3  # -1: retry until the records expire
    bisect_on_error: bool = True
    poll_interval_s: float = 0.25  # Lambda polls each shard about four times a second
    backoff_base_s: float = 0.1
    backoff_max_s: float = 5.0
    function_timeout_s: float = 60.0
    function_name: str = "outbox-worker"
    shard_refresh_s: float = 0.0  # 0: list the shards on every poll; more: at most that often
    on_failure_queue_url: str | None = None
    filter_pattern: Mapping[str, Any] | None = field(default_factory=stream_filter_pattern)


@dataclass
class LocalContext:
    """A Lambda context for a local invocation: request id and a real deadline."""

    function_name: str
    deadline: float
    clock: Callable[[], float] = time.monotonic
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the deadline."""
        return max(0, int((self.deadline - self.clock()) * 1000))


@dataclass
class _Batch:
    records: list[dict[str, Any]]
    failures: int = 0  # failed invocations that count as retries
    invocations: int = 0
    not_before: float = 0.0


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    closed: bool = False
    finished: bool = False
    position: str | None = None  # last sequence number read (filtered records included)
    checkpoint: str | None = None  # last sequence number fully handled
    buffer: list[dict[str, Any]] = field(default_factory=list)
    buffered_at: float = 0.0
    pending: deque[_Batch] = field(default_factory=deque)


def _seq(record: Mapping[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


class StreamRunner:
    """Polls every shard of one stream and invokes ``invoke(event, context)`` with Lambda's semantics."""

    def __init__(
        self,
        streams: Any,
        stream_arn: str,
        invoke: Invoke,
        settings: MappingSettings | None = None,
        *,
        sqs: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.streams = streams
        self.stream_arn = stream_arn
        self.invoke = invoke
        self.settings = settings or MappingSettings()
        self.sqs = sqs
        self.clock = clock
        self.shards: dict[str, _Shard] = {}
        self.stats: Counter[str] = Counter()
        self._listed_at: float | None = None

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; sleep a poll interval whenever there was nothing to do."""
        while not stop.is_set():
            try:
                busy = self.poll_once()
            except Exception as exc:  # noqa: BLE001 - a poller must outlive a passing emulator error
                log.warning("stream_poll_failed", error=type(exc).__name__)
                busy = 0
            if not busy:
                stop.wait(self.settings.poll_interval_s)

    def poll_once(self) -> int:
        """One round over the shards; returns how many records were handed to the function."""
        now = self.clock()
        if self._listed_at is None or now - self._listed_at >= self.settings.shard_refresh_s:
            self._refresh_shards()
            self._listed_at = now
        return sum(self._step(shard) for shard in list(self.shards.values()) if self._ready(shard))

    def _refresh_shards(self) -> None:
        start: dict[str, str] = {}
        while True:
            description = self.streams.describe_stream(StreamArn=self.stream_arn, **start)["StreamDescription"]
            for raw in description.get("Shards", []):
                shard = self.shards.get(raw["ShardId"])
                if shard is None:
                    shard = self.shards[raw["ShardId"]] = _Shard(raw["ShardId"], raw.get("ParentShardId"))
                shard.closed = "EndingSequenceNumber" in raw.get("SequenceNumberRange", {})
            last = description.get("LastEvaluatedShardId")
            if not last:
                return
            start = {"ExclusiveStartShardId": last}

    def _ready(self, shard: _Shard) -> bool:
        """Parents before children: a shard waits until its parent (if still known) is finished."""
        parent = self.shards.get(shard.parent_id) if shard.parent_id else None
        return not shard.finished and (parent is None or parent.finished)

    def _step(self, shard: _Shard) -> int:
        if shard.pending:
            batch = shard.pending[0]
            if self.clock() < batch.not_before:
                return 0
            return self._invoke(shard, batch)
        self._fill(shard)
        if not shard.buffer:
            shard.checkpoint = shard.position
            return 0
        full = len(shard.buffer) >= self.settings.batch_size
        if not full and self.clock() - shard.buffered_at < self.settings.batching_window_s:
            return 0
        records, shard.buffer = shard.buffer[: self.settings.batch_size], shard.buffer[self.settings.batch_size :]
        shard.buffered_at = self.clock()
        shard.pending.append(_Batch(records))
        return self._invoke(shard, shard.pending[0])

    def _fill(self, shard: _Shard) -> None:
        """Read from the last position with a fresh iterator, keeping records the filter lets through."""
        wanted = self.settings.batch_size - len(shard.buffer)
        if wanted <= 0:
            return
        position: dict[str, str] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": shard.position}
            if shard.position
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator: str | None = self.streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=shard.shard_id, **position
        )["ShardIterator"]
        while iterator and wanted > 0:
            limit = min(MAX_GET_RECORDS, max(wanted, 1))
            page = self.streams.get_records(ShardIterator=iterator, Limit=limit)
            records = page.get("Records", [])
            iterator = page.get("NextShardIterator")
            if iterator is None and shard.closed:
                shard.finished = not records and not shard.buffer and not shard.pending
            for raw in records:
                record = to_lambda_record(raw, self.stream_arn)
                shard.position = _seq(record)
                if self.settings.filter_pattern is None or matches(self.settings.filter_pattern, record):
                    if not shard.buffer:
                        shard.buffered_at = self.clock()
                    shard.buffer.append(record)
                    wanted -= 1
            if len(records) < limit:
                return

    def _invoke(self, shard: _Shard, batch: _Batch) -> int:
        settings = self.settings
        started = self.clock()
        context = LocalContext(settings.function_name, started + settings.function_timeout_s, self.clock)
        batch.invocations += 1
        self.stats["invocations"] += 1
        try:
            response = self.invoke({"Records": batch.records}, context)
            error: str | None = None
        except Exception as exc:  # noqa: BLE001 - a function error, whatever the function raised
            response, error = None, type(exc).__name__
        if error is None and self.clock() - started > settings.function_timeout_s:
            error = "Task timed out"
        if error is not None:
            self._function_error(shard, batch, error)
            return len(batch.records)
        failed_at = _lowest_failure(batch.records, response)
        if failed_at is None:
            shard.pending.popleft()
            shard.checkpoint = _seq(batch.records[-1])
            self.stats["records_succeeded"] += len(batch.records)
        elif failed_at == -1:
            self._function_error(shard, batch, "invalid batchItemFailures", bisect=False)
        else:
            self.stats["partial_failures"] += 1
            self.stats["records_succeeded"] += failed_at
            if failed_at:
                shard.checkpoint = _seq(batch.records[failed_at - 1])
            batch.records = batch.records[failed_at:]
            self._retry_or_discard(shard, batch, "partial batch failure")
        return len(batch.records)

    def _function_error(self, shard: _Shard, batch: _Batch, error: str, *, bisect: bool = True) -> None:
        self.stats["function_errors"] += 1
        log.warning("stream_function_error", shard_id=shard.shard_id, error=error, records=len(batch.records))
        if bisect and self.settings.bisect_on_error and len(batch.records) > 1:
            half = len(batch.records) // 2
            first = _Batch(batch.records[:half], batch.failures, batch.invocations)
            second = _Batch(batch.records[half:], batch.failures, batch.invocations)
            shard.pending.popleft()
            shard.pending.extendleft([second, first])
            self.stats["bisections"] += 1
            return
        self._retry_or_discard(shard, batch, error)

    def _retry_or_discard(self, shard: _Shard, batch: _Batch, reason: str) -> None:
        batch.failures += 1
        limit = self.settings.maximum_retry_attempts
        if limit < 0 or batch.failures <= limit:
            delay = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2 ** (batch.failures - 1))
            batch.not_before = self.clock() + delay
            self.stats["retries"] += 1
            return
        shard.pending.popleft()
        self._send_to_on_failure(shard, batch, reason)
        shard.checkpoint = _seq(batch.records[-1])
        self.stats["batches_discarded"] += 1
        self.stats["records_discarded"] += len(batch.records)

    def _send_to_on_failure(self, shard: _Shard, batch: _Batch, reason: str) -> None:
        """Lambda's on-failure record for a stream batch: where it was, not what it held."""
        first, last = batch.records[0]["dynamodb"], batch.records[-1]["dynamodb"]
        document = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.settings.function_name,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": batch.invocations,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": reason},
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "DDBStreamBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _arrival(first),
                "approximateArrivalOfLastRecord": _arrival(last),
                "batchSize": len(batch.records),
                "streamArn": self.stream_arn,
            },
        }
        log.error("stream_batch_discarded", shard_id=shard.shard_id, records=len(batch.records), reason=reason)
        if self.sqs is not None and self.settings.on_failure_queue_url:
            self.sqs.send_message(QueueUrl=self.settings.on_failure_queue_url, MessageBody=json.dumps(document))


def _arrival(change: Mapping[str, Any]) -> str | None:
    created = change.get("ApproximateCreationDateTime")
    return datetime.fromtimestamp(created, UTC).isoformat() if isinstance(created, int | float) else None


def _lowest_failure(records: list[dict[str, Any]], response: object) -> int | None:
    """Index of the lowest failed record; None if all succeeded; -1 if the response is invalid."""
    failures = response.get("batchItemFailures") if isinstance(response, Mapping) else None
    if not failures:
        return None
    index = {_seq(r): i for i, r in enumerate(records)}
    positions = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not identifier or identifier not in index:
            return -1
        positions.append(index[identifier])
    return min(positions)
