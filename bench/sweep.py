"""Read cost of a sweep against the number of settled messages in the table (moto in process).

For each size: the table holds N settled messages (COMPLETED records, as the stream and the
consumer leave them). The first sweep reads them once to move its marks; then ``new`` messages
arrive and settle, and the next sweep is the steady state the schedule pays every five minutes.
Read units are counted as DynamoDB bills them, from the items each call returned: a Query
(eventually consistent, on the keys-only index) costs its returned bytes in 4 KB units, halved;
a BatchGetItem (eventually consistent) costs each item's size in 4 KB units, halved.

    python -m bench.sweep [--sizes 10000 100000] [--new 100]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from bench.naive import item_size
from outbox.adapters.aws import dynamodb_client, sqs_client
from outbox.adapters.publisher import SqsPublisher
from outbox.adapters.store import DynamoDBMessageStore
from outbox.adapters.sweep import DynamoDBSweepSource
from outbox.bootstrap import bootstrap
from outbox.domain.envelope import new_envelope
from outbox.domain.message import new_message_id
from outbox.domain.record import OUTBOX_PREFIX, iso, utc_now
from outbox.domain.status import Status
from outbox.local.stack import LOCAL_CREDENTIALS
from outbox.logs import configure_logging
from outbox.relay import Relay
from outbox.sweeper import Sweeper

BUCKETS = 16
REGION = "us-east-1"
CATCH_UP_UP_TO = 10_000  # larger tables start from marks a previous sweep left
HALF_UNIT_BYTES = 4096  # one read unit reads 4 KB strongly or 8 KB eventually consistent


@dataclass(frozen=True)
class SweepCost:
    """What one sweep read, for one table size."""

    settled: int
    new: int
    catch_up_rru: float | None  # None: not measured at this size (it reads every record once)
    catch_up_scanned: int | None
    steady_rru: float
    steady_scanned: int
    empty_rru: float


class ReadUnits:
    """Counts billed read units of the Query and BatchGetItem calls one client makes."""

    def __init__(self, client: Any) -> None:
        self.units = 0.0
        client.meta.events.register("after-call.dynamodb.Query", self._query)
        client.meta.events.register("after-call.dynamodb.BatchGetItem", self._batch_get)

    def _query(self, parsed: dict[str, Any], **_: Any) -> None:
        size = sum(item_size(item) for item in parsed.get("Items", []))
        self.units += max(1, math.ceil(size / HALF_UNIT_BYTES)) * 0.5

    def _batch_get(self, parsed: dict[str, Any], **_: Any) -> None:
        for items in parsed.get("Responses", {}).values():
            self.units += sum(math.ceil(max(item_size(item), 1) / HALF_UNIT_BYTES) * 0.5 for item in items)

    @contextmanager
    def measure(self) -> Iterator[list[float]]:
        """The units read inside the block, as a one-element list filled on exit."""
        before, result = self.units, [0.0]
        yield result
        result[0] = self.units - before


def seed_settled(store: DynamoDBMessageStore, n: int, *, start: int = 0) -> dict[int, str]:
    """``n`` settled messages, their records COMPLETED as the pipeline leaves them; returns each bucket's last place.

    The records go straight into moto's table (the emulator's own storage, not a request each):
    the benchmark measures what a sweep reads, and 100k requests would only measure moto.
    """
    table = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].get_table(store.table_name)
    created = utc_now() - timedelta(hours=1)
    last: dict[int, str] = {}
    for i in range(start, start + n):
        at = iso(created + timedelta(microseconds=i * 1000))
        envelope = new_envelope({"n": i}, type="Seeded", message_id=new_message_id(), created_at=at)
        record = store.prepare(envelope, idempotency_key=None, by="bench").transact_items[0]["Put"]["Item"]
        table.put_item(record | {"status": {"S": Status.COMPLETED.value}})
        bucket = int(record["outbox_pk"]["S"].removeprefix(OUTBOX_PREFIX))
        last[bucket] = max(last.get(bucket, ""), record["outbox_sk"]["S"])
    return last


def measure(settled: int, new: int, *, catch_up: bool = True) -> SweepCost:
    """The read units of the catch-up sweep, a steady sweep after ``new`` messages, and an empty one.

    Without ``catch_up`` the marks start where a previous sweep would have left them, after every
    settled record (the catch-up reads each record once, whatever the size: measure it on a small table).
    """
    with mock_aws():
        dynamodb, sqs = dynamodb_client(), sqs_client()
        resources = bootstrap(dynamodb, sqs, table_name=f"sweep-{settled}", buckets=BUCKETS)
        store = DynamoDBMessageStore(resources.table_name, client=dynamodb, buckets=BUCKETS)
        relay = Relay(store, SqsPublisher(resources.queue_url, client=sqs), by="sweeper")
        source = DynamoDBSweepSource(resources.table_name, client=dynamodb)
        sweeper = Sweeper(source, relay, buckets=BUCKETS, min_age=timedelta(minutes=5))
        units = ReadUnits(dynamodb)
        marks = seed_settled(store, settled)
        first = None
        if catch_up:
            with units.measure() as caught_up:
                first = sweeper.sweep()
        else:
            source.save_marks(marks)
        seed_settled(store, new, start=settled)
        with units.measure() as steady:
            second = sweeper.sweep()
        with units.measure() as empty:
            sweeper.sweep()
        relay.close()
    return SweepCost(
        settled,
        new,
        caught_up[0] if first else None,
        first.scanned if first else None,
        steady[0],
        second.scanned,
        empty[0],
    )


def markdown(costs: list[SweepCost]) -> list[str]:
    """The results as a table for RESULTS.md."""
    lines = [
        "| settled messages | catch-up sweep RRU (records read) | next sweep after new ones: RRU (records read) |"
        " sweep with nothing new: RRU |",
        "|---|---|---|---|",
    ]
    for c in costs:
        catch_up = f"{c.catch_up_rru:.1f} ({c.catch_up_scanned})" if c.catch_up_rru is not None else "not measured"
        lines.append(
            f"| {c.settled} | {catch_up} | {c.steady_rru:.1f} ({c.steady_scanned} of {c.new} new) | {c.empty_rru:.1f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Measure each size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--new", type=int, default=100)
    args = parser.parse_args(argv)
    os.environ.update(LOCAL_CREDENTIALS)  # moto only: never real AWS
    os.environ["OUTBOX_METRICS"] = "off"
    configure_logging(level="ERROR")
    started = time.perf_counter()
    costs = [measure(size, args.new, catch_up=size <= CATCH_UP_UP_TO) for size in args.sizes]
    print("\n".join(markdown(costs)))
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
