"""The sweeper under a large backlog: sweeps needed to drain it and peak memory, ours against the all-at-once sweep.

The stream was trimmed and the trigger is off, so the sweeper is the only relay. A backlog of N
PENDING messages with 60 KB payloads is drained by consecutive sweeps, each under the same
deadline (the sweeper function's timeout), by two sweepers over the same adapters:

- all at once (the baseline: the sweep before the paged change, kept here as it was so that the
  comparison stays the historical one): read every stuck record whole, payload and type included,
  rebuild each message's envelope from it, sort them, then relay, checking the deadline only while
  sending;
- ours (``outbox.service.sweep.Sweeper``): merge the buckets' index keys oldest first and read and
  relay a page of records at a time, checking the deadline before every request; a record is read
  for what re-sending needs alone (``DynamoDBSweepSource``: no payload, the copy's body is the id).

The table is a fake DynamoDB client that serves the index pages and the records lazily (a payload
is made when it is read, and only when the request's ProjectionExpression asks for it, as
DynamoDB answers), so 100k messages of 60 KB cost it no memory and what is measured is the
sweeper's own: Python's traced allocations (tracemalloc) above the start, at peak. A sweep that
grows past ``--memory-mb`` is stopped as Lambda would stop a function at its memory size.

Time is modelled, not waited: every request costs ``LATENCY_MS`` plus its bytes (the text of the
attributes it returns or sends) at ``BYTES_PER_MS``, on a clock the deadline reads; the flips
(UpdateItem) run beside the next send in the relay's pool and cost no modelled time. CPU time is
not on that clock: the wall time is printed.

    python -m bench.sweep_backlog [--messages 100000] [--payload-kb 60] [--deadline-s 300] [--memory-mb 512]
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import time
import tracemalloc
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from bench.calibration import calibration
from outbox.adapters.batch import batch_get
from outbox.adapters.models import RECORD_INDEX_KEYS
from outbox.adapters.publisher import SqsPublisher
from outbox.adapters.store import DynamoDBMessageStore
from outbox.adapters.sweep import DynamoDBSweepSource
from outbox.domain.envelope import Envelope
from outbox.domain.items import RECORD
from outbox.domain.keys import RECORD_PREFIX, RECORD_SK, bucket_of, iso, outbox_pk, outbox_sk, record_pk, utc_now
from outbox.domain.layout import TableLayout
from outbox.domain.status import Status
from outbox.domain.trace import trace_header
from outbox.logs import configure_logging
from outbox.ports import PendingKey, SweepSource
from outbox.service.relay import Relay, RelayItem, RelayPolicy
from outbox.service.sweep import Sweeper, SweepReport

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

BUCKETS = 16
LATENCY_MS = 10.0  # per request, DynamoDB or SQS
BYTES_PER_MS = 100_000  # 100 MB/s for what a request carries (records read, messages sent)
MAX_SWEEPS = 20  # a drain that needs more is reported as not draining
STALLED_SWEEPS = 3  # sweeps in a row that relay nothing: the approach makes no progress
MiB = 1024 * 1024
# What the sweep read of each record before it read only what a re-send needs: the whole envelope.
WHOLE_RECORD = (
    "message_id",
    "status",
    "type",
    "payload",
    "group_key",
    "created_at",
    "trace_id",
    "updated_at",
    "lease_until",
    "send_generation",
    "sent_at",
)


class OutOfMemory(Exception):
    """The sweep grew past the function's memory size: Lambda would have stopped it."""


@dataclass
class LazyTable:
    """A DynamoDB client over N PENDING messages, created 1 ms apart an hour ago, their records made when read.

    It answers the three calls a sweep makes: Query of the pending index (keys only, a bucket at a
    time, in time order, without the messages that moved on), BatchGetItem of records (the
    attributes its ProjectionExpression names, each payload asked for a new string of
    ``payload_bytes``) and UpdateItem (a flip moves the message on). Each request advances
    ``clock_ms`` by its modelled cost.
    """

    messages: int
    payload_bytes: int
    memory_cap: int | None = None  # traced bytes above ``memory_base`` a read may not pass
    memory_base: int = 0
    clock_ms: float = 0.0
    moved: bytearray = field(init=False)
    _buckets: list[array[int]] = field(init=False)
    _filler: str = field(init=False)
    _start: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.moved = bytearray(self.messages)
        self._buckets = [array("l") for _ in range(BUCKETS)]
        for n in range(self.messages):
            self._buckets[bucket_of(message_id(n), BUCKETS)].append(n)
        self._filler = "x" * self.payload_bytes
        self._start = utc_now() - timedelta(hours=1)

    def pending(self) -> int:
        """Messages not yet moved on."""
        return self.messages - sum(self.moved)

    def created_at(self, n: int) -> str:
        """Message ``n``'s creation time: the hour-old start plus ``n`` ms (so the ids' order is the time order)."""
        return iso(self._start + timedelta(milliseconds=n))

    def query(self, **request: Any) -> dict[str, Any]:
        """A page of the pending index of one bucket, after ``ExclusiveStartKey``."""
        self.clock_ms += LATENCY_MS
        bucket = int(request["ExpressionAttributeValues"][":b"]["S"].removeprefix("OUTBOX#"))
        before = request["ExpressionAttributeValues"].get(":before", {}).get("S")
        positions = self._buckets[bucket]
        start = request.get("ExclusiveStartKey")
        at = bisect.bisect_right(positions, _number(start["pk"]["S"])) if start else 0
        items: list[dict[str, Any]] = []
        while at < len(positions) and len(items) < request["Limit"]:
            n = positions[at]
            at += 1
            if self.moved[n]:
                continue  # the index is sparse: a record that moved on left it
            sk = outbox_sk(self.created_at(n), message_id(n))
            if before is not None and sk >= before:
                at = len(positions)
                break
            items.append(
                {
                    "pk": {"S": record_pk(message_id(n))},
                    "sk": {"S": RECORD_SK},
                    RECORD_INDEX_KEYS[0]: {"S": outbox_pk(bucket)},
                    RECORD_INDEX_KEYS[1]: {"S": sk},
                }
            )
        page: dict[str, Any] = {"Items": items}
        if at < len(positions) and items:
            page["LastEvaluatedKey"] = items[-1]
        return page

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        """The records asked for, with the attributes the projection names (a payload made now, if named)."""
        if self.memory_cap is not None and tracemalloc.get_traced_memory()[0] - self.memory_base > self.memory_cap:
            raise OutOfMemory
        found: dict[str, list[dict[str, Any]]] = {}
        for table, request in RequestItems.items():
            items = found.setdefault(table, [])
            wanted = _projected(request)
            for key in request["Keys"]:
                n = _number(key["pk"]["S"])
                items.append(self._record(n, wanted))
        returned = sum(len(v["S"]) for t in found.values() for i in t for v in i.values())
        self.clock_ms += LATENCY_MS + returned / BYTES_PER_MS
        return {"Responses": found, "UnprocessedKeys": {}}

    def _record(self, n: int, wanted: frozenset[str] | None) -> dict[str, Any]:
        status = Status.QUEUED if self.moved[n] else Status.PENDING
        record = {
            "pk": {"S": record_pk(message_id(n))},
            "message_id": {"S": message_id(n)},
            "status": {"S": status.value},
            "type": {"S": "Backlog"},
            "created_at": {"S": self.created_at(n)},
        }
        if wanted is None or "payload" in wanted:  # the big one: made only when asked for
            record["payload"] = {"S": f'{{"blob":"{self._filler}","n":{n}}}'}
        return record if wanted is None else {name: value for name, value in record.items() if name in wanted}

    def update_item(self, **request: Any) -> dict[str, Any]:
        """A flip: the message moves on (the condition always holds: nothing else writes)."""
        self.moved[_number(request["Key"]["pk"]["S"])] = 1
        return {}


@dataclass
class ClockedSqs:
    """An SQS client that accepts every entry and advances the table's clock by the request's cost."""

    table: LazyTable
    sent: int = 0

    def send_message_batch(self, **request: Any) -> dict[str, Any]:
        """Accept every entry."""
        entries = request["Entries"]
        self.sent += len(entries)
        self.table.clock_ms += LATENCY_MS + sum(len(e["MessageBody"]) for e in entries) / BYTES_PER_MS
        return {"Successful": [{"Id": e["Id"]} for e in entries], "Failed": []}


def message_id(n: int) -> str:
    """The id of message ``n`` (UUID-shaped; ``n`` is its last field)."""
    return f"00000000-0000-4000-8000-{n:012d}"


def _number(pk: str) -> int:
    return int(pk.removeprefix(RECORD_PREFIX)[-12:])


def _projected(request: dict[str, Any]) -> frozenset[str] | None:
    """The attribute names a BatchGetItem's ProjectionExpression asks for; None: the whole item."""
    expression = request.get("ProjectionExpression")
    if expression is None:
        return None
    names = request.get("ExpressionAttributeNames", {})
    return frozenset(names.get(part.strip(), part.strip()) for part in expression.split(","))


def whole_records(source: DynamoDBSweepSource, keys: Sequence[PendingKey]) -> list[tuple[str, Status, Envelope]]:
    """The records behind ``keys`` as the sweep read them before: whole, each envelope rebuilt, payload parsed.

    (place, status, envelope) of each record found, in the keys' order.
    """
    projection, names = RECORD.projection(WHOLE_RECORD)
    request = [source.layout.record_key(k.message_id) for k in keys]
    items = batch_get(source.client, source.table_name, request, projection=projection, names=names)
    found = {item["message_id"]["S"]: RECORD.decode(item) for item in items}
    records = []
    for key in keys:
        if (values := found.get(key.message_id)) is None:
            continue
        envelope = Envelope(
            values["message_id"],
            values["type"],
            json.loads(values["payload"]),
            values["created_at"],
            values.get("group_key"),
            trace_header(values.get("trace_id")),
        )
        records.append((key.sk, Status(values["status"]), envelope))
    return records


def _whole_pages(source: DynamoDBSweepSource, bucket: int) -> Iterator[list[tuple[str, Status, Envelope]]]:
    """A bucket's records, whole, a page per index Query: ``DynamoDBSweepSource.pending`` as it read them then."""
    for keys in source.keys(bucket):
        yield whole_records(source, keys)


class AllAtOnceSweeper(Sweeper):
    """The baseline: the sweep before the paged change, which read every stuck record whole before it sent the first.

    It reads the records itself, as that sweep did (payload and type included, each envelope
    rebuilt), not through ``DynamoDBSweepSource.records``, which now reads only what a re-send needs:
    the comparison stays the historical one.
    """

    def sweep(self, *, time_left_ms: Callable[[], int] | None = None) -> SweepReport:
        """Read and rebuild every PENDING message past the minimum age, sort them, relay them until the deadline."""
        if not isinstance(self.source, DynamoDBSweepSource):
            raise TypeError("the all-at-once sweep reads a DynamoDBSweepSource's table itself")
        report = SweepReport()
        now = self.clock()
        horizon = iso(now - self.min_age)
        stuck: list[tuple[str, RelayItem]] = []
        for bucket in range(self.buckets):
            for page in _whole_pages(self.source, bucket):  # as ``pending`` read them: a page of records per Query
                for sk, status, envelope in page:
                    report.scanned += 1
                    if status is Status.PENDING and sk <= horizon:
                        report.pending += 1
                        item = RelayItem.from_record(envelope.message_id, envelope.group_key, envelope.trace_id)
                        stuck.append((sk, item))
        stuck.sort(key=lambda place: place[0])
        if stuck:
            outcome = self.relay.relay([item for _, item in stuck], time_left_ms=time_left_ms)
            report.relayed, report.failed = len(outcome.sent), len(outcome.failed)
        return report


@dataclass(frozen=True)
class Drain:
    """One approach draining one backlog: sweeps, what each relayed, peak memory."""

    approach: str
    messages: int
    payload_kb: int
    deadline_s: float
    memory_mb: int
    drained: bool
    sweeps: int  # run until drained, stalled, stopped for memory, or MAX_SWEEPS
    relayed_per_sweep: tuple[int, ...]
    peak_mib: float  # traced allocations above the start, at peak
    out_of_memory: bool
    wall_s: float

    @property
    def outcome(self) -> str:
        """How the drain ended, in words."""
        if self.drained:
            return f"drained in {self.sweeps} sweep{'s' if self.sweeps > 1 else ''}"
        if self.out_of_memory:
            return f"stopped at {self.memory_mb} MB in sweep {self.sweeps}: never drains"
        return f"{sum(self.relayed_per_sweep)} of {self.messages} relayed in {self.sweeps} sweeps: never drains"


@dataclass(frozen=True)
class BacklogComparison:
    """Both approaches on the same backlogs, and how fast the machine was."""

    calibration_s: float
    drains: tuple[Drain, ...]


SWEEPERS: dict[str, type[Sweeper]] = {"all at once": AllAtOnceSweeper, "ours": Sweeper}


def drain(approach: str, messages: int, *, payload_kb: int, deadline_s: float, memory_mb: int) -> Drain:
    """Sweep a fresh backlog with ``approach`` until it drains, stalls or outgrows the memory size."""
    tracemalloc.start()
    try:
        return _drain(approach, messages, payload_kb=payload_kb, deadline_s=deadline_s, memory_mb=memory_mb)
    finally:
        tracemalloc.stop()


def _drain(approach: str, messages: int, *, payload_kb: int, deadline_s: float, memory_mb: int) -> Drain:
    started = time.perf_counter()
    table = LazyTable(messages, payload_kb * 1000)
    sqs = ClockedSqs(table)
    client = cast("DynamoDBClient", table)
    source: SweepSource = DynamoDBSweepSource(TableLayout("outbox", buckets=BUCKETS), client)
    store = DynamoDBMessageStore(TableLayout("outbox", buckets=BUCKETS), client)
    publisher = SqsPublisher("https://sqs.us-east-1.amazonaws.com/1/outbox", client=cast("SQSClient", sqs))
    relay = Relay(store, publisher, policy=RelayPolicy(), by="sweeper")
    sweeper = SWEEPERS[approach](source, relay, buckets=BUCKETS, min_age=timedelta(minutes=5))
    tracemalloc.reset_peak()
    table.memory_base, table.memory_cap = tracemalloc.get_traced_memory()[0], memory_mb * MiB
    relayed: list[int] = []
    out_of_memory = False
    try:
        while table.pending() and len(relayed) < MAX_SWEEPS and not _stalled(relayed):
            start = table.clock_ms

            def time_left_ms(start: float = start) -> int:
                return int(deadline_s * 1000 - (table.clock_ms - start))

            try:
                relayed.append(sweeper.sweep(time_left_ms=time_left_ms).relayed)
            except OutOfMemory:
                relayed.append(0)
                out_of_memory = True
                break
        peak = tracemalloc.get_traced_memory()[1] - table.memory_base
    finally:
        relay.close()
    return Drain(
        approach=approach,
        messages=messages,
        payload_kb=payload_kb,
        deadline_s=deadline_s,
        memory_mb=memory_mb,
        drained=not table.pending(),
        sweeps=len(relayed),
        relayed_per_sweep=tuple(relayed),
        peak_mib=peak / MiB,
        out_of_memory=out_of_memory,
        wall_s=time.perf_counter() - started,
    )


def _stalled(relayed: Sequence[int]) -> bool:
    return len(relayed) >= STALLED_SWEEPS and not any(relayed[-STALLED_SWEEPS:])


def measure(
    sizes: Sequence[int], *, payload_kb: int = 60, deadline_s: float = 300, memory_mb: int = 512
) -> BacklogComparison:
    """Each approach on each backlog size, smallest first."""
    speed = calibration()
    drains = [
        drain(approach, n, payload_kb=payload_kb, deadline_s=deadline_s, memory_mb=memory_mb)
        for n in sorted(sizes)
        for approach in SWEEPERS
    ]
    return BacklogComparison(speed, tuple(drains))


def markdown(comparison: BacklogComparison) -> list[str]:
    """The results as a table, with the ratios of ours to the baseline where both drained."""
    lines = [
        "| backlog | sweeper | outcome | relayed per sweep | peak memory MiB | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for d in comparison.drains:
        shown = ", ".join(str(r) for r in d.relayed_per_sweep[:6]) + (", …" if len(d.relayed_per_sweep) > 6 else "")
        lines.append(
            f"| {d.messages} × {d.payload_kb} KB | {d.approach} | {d.outcome} | {shown} | {d.peak_mib:.1f} |"
            f" {d.wall_s:.1f} |"
        )
    by_size: dict[int, dict[str, Drain]] = {}
    for d in comparison.drains:
        by_size.setdefault(d.messages, {})[d.approach] = d
    for n, pair in by_size.items():
        ours, baseline = pair.get("ours"), pair.get("all at once")
        if ours is not None and baseline is not None and baseline.peak_mib > 0:
            ratio = f"**{ours.peak_mib / baseline.peak_mib:.3f}×**"
            if baseline.out_of_memory:  # the baseline would have grown further: the ratio is an upper bound
                ratio = f"< {ratio} (all at once stopped at {baseline.memory_mb} MB)"
            lines.append(
                f"| {n} × {ours.payload_kb} KB | **ours / all at once** | sweeps to drain {_sweeps(ours)} /"
                f" {_sweeps(baseline)} | | {ratio} | |"
            )
    return lines


def _sweeps(drained: Drain) -> str:
    return str(drained.sweeps) if drained.drained else "never"


def main(argv: list[str] | None = None) -> int:
    """Drain each backlog with both sweepers and print the table and the calibration line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, nargs="+", default=[2_000, 100_000])
    parser.add_argument("--payload-kb", type=int, default=60)
    parser.add_argument("--deadline-s", type=float, default=300)
    parser.add_argument("--memory-mb", type=int, default=512)
    args = parser.parse_args(argv)
    os.environ["OUTBOX_METRICS"] = "off"
    configure_logging(level="ERROR")
    started = time.perf_counter()
    comparison = measure(
        args.messages, payload_kb=args.payload_kb, deadline_s=args.deadline_s, memory_mb=args.memory_mb
    )
    print(
        f"Deadline {args.deadline_s:g} s a sweep (modelled: {LATENCY_MS:g} ms a request, {BYTES_PER_MS // 1000} MB/s),"
        f" memory size {args.memory_mb} MB, {BUCKETS} buckets."
    )
    print("\n".join(markdown(comparison)))
    print(f"Calibration: a 20M-step Python loop took {comparison.calibration_s:.2f} s.")
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
