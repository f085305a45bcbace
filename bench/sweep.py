"""Read cost of a sweep against the number of settled messages in the table (moto in process).

For each size: the table holds N settled messages (COMPLETED records, as the stream and the
consumer leave them: out of the pending index). A sweep with nothing PENDING is what the schedule
pays every five minutes; a sweep over a backlog of ``backlog`` PENDING messages (the stream lost
them) is what recovering costs. Neither may grow with N. Read units are counted as DynamoDB
bills them, from the items each call returned: a Query (eventually consistent, on the keys-only
index) costs its returned bytes in 4 KB units, halved, at least half a unit; a BatchGetItem
(strongly consistent) costs each item's size in 4 KB units.

    python -m bench.sweep [--sizes 10000 100000] [--backlog 100]
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
from outbox.adapters.models import RECORD_INDEX_KEYS
from outbox.adapters.publisher import SqsPublisher
from outbox.adapters.store import DynamoDBMessageStore
from outbox.adapters.sweep import DynamoDBSweepSource
from outbox.bootstrap import bootstrap
from outbox.domain.envelope import new_envelope
from outbox.domain.keys import iso, utc_now
from outbox.domain.layout import TableLayout
from outbox.domain.message import new_message_id
from outbox.domain.status import Status
from outbox.local.stack import LOCAL_CREDENTIALS
from outbox.logs import configure_logging
from outbox.service.relay import Relay
from outbox.service.sweep import Sweeper

BUCKETS = 16
REGION = "us-east-1"
HALF_UNIT_BYTES = 4096  # one read unit reads 4 KB strongly or 8 KB eventually consistent


@dataclass(frozen=True)
class SweepCost:
    """What one sweep read, for one table size."""

    settled: int
    backlog: int
    backlog_scanned: int
    backlog_relayed: int
    backlog_rru: float
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
            self.units += sum(math.ceil(max(item_size(item), 1) / (2 * HALF_UNIT_BYTES)) for item in items)

    @contextmanager
    def measure(self) -> Iterator[list[float]]:
        """The units read inside the block, as a one-element list filled on exit."""
        before, result = self.units, [0.0]
        yield result
        result[0] = self.units - before


def seed(store: DynamoDBMessageStore, n: int, *, status: Status, start: int = 0) -> None:
    """``n`` messages with records in ``status`` as the pipeline leaves them (a settled one is out of the index).

    The records go straight into moto's table (the emulator's own storage, not a request each):
    the benchmark measures what a sweep reads, and 100k requests would only measure moto.
    """
    table = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].get_table(store.table_name)
    created = utc_now() - timedelta(hours=1)
    for i in range(start, start + n):
        at = iso(created + timedelta(microseconds=i * 1000))
        envelope = new_envelope({"n": i}, type="Seeded", message_id=new_message_id(), created_at=at)
        record = store.prepare(envelope, idempotency_key=None, by="bench").transact_items[0]["Put"]["Item"]
        if status is not Status.PENDING:
            record = {k: v for k, v in record.items() if k not in RECORD_INDEX_KEYS} | {"status": {"S": status.value}}
        table.put_item(record)


def measure(settled: int, backlog: int) -> SweepCost:
    """The read units of a sweep with nothing PENDING and of one over ``backlog`` PENDING messages."""
    with mock_aws():
        dynamodb, sqs = dynamodb_client(), sqs_client()
        resources = bootstrap(dynamodb, sqs, table_name=f"sweep-{settled}", buckets=BUCKETS)
        layout = TableLayout(resources.table_name, buckets=BUCKETS)
        store = DynamoDBMessageStore(layout, dynamodb)
        relay = Relay(store, SqsPublisher(resources.queue_url, client=sqs), by="sweeper")
        source = DynamoDBSweepSource(layout, dynamodb)
        sweeper = Sweeper(source, relay, buckets=BUCKETS, min_age=timedelta(minutes=5))
        units = ReadUnits(dynamodb)
        seed(store, settled, status=Status.COMPLETED)
        with units.measure() as empty:
            sweeper.sweep()
        seed(store, backlog, status=Status.PENDING, start=settled)
        with units.measure() as recovering:
            report = sweeper.sweep()
        relay.close()
    return SweepCost(settled, backlog, report.scanned, report.relayed, recovering[0], empty[0])


def markdown(costs: list[SweepCost]) -> list[str]:
    """The results as a table for RESULTS.md."""
    lines = [
        "| settled messages | sweep with nothing PENDING: RRU"
        " | sweep over a PENDING backlog: RRU (records read, relayed) |",
        "|---|---|---|",
    ]
    for c in costs:
        lines.append(
            f"| {c.settled} | {c.empty_rru:.1f} | {c.backlog_rru:.1f} ({c.backlog_scanned}, {c.backlog_relayed} "
            f"of {c.backlog}) |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Measure each size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--backlog", type=int, default=100)
    args = parser.parse_args(argv)
    os.environ.update(LOCAL_CREDENTIALS)  # moto only: never real AWS
    os.environ["OUTBOX_METRICS"] = "off"
    configure_logging(level="ERROR")
    started = time.perf_counter()
    costs = [measure(size, args.backlog) for size in args.sizes]
    print("\n".join(markdown(costs)))
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
