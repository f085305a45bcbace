"""What finding messages stranded in flight costs: index writes per message, and reads during a backlog.

Two ways to let the sweeper find a message QUEUED or PROCESSING whose copy is gone, compared with
the index before (a record in it only while PENDING):

- ``ours``: the record leaves its outbox bucket with PENDING for an in-flight partition
  (``SENT#<nn>``) and leaves the index when it ends, as the code does;
- ``kept``: the record keeps its outbox place until it ends, and every reader of the buckets
  filters by status (no key changes while in flight).

Index writes are counted from the record index keys the real store leaves after each step of a
message's life on moto (``ours``), and from the same steps under the other two rules, with
DynamoDB's rule for a keys-only index: an item entering or leaving the index is one write, a key
that changes two, anything else none. Read units of a sweep and of the worker's group check (one
stream batch of grouped messages) are counted as ``bench.sweep`` counts them, with ``backlog``
messages in flight that the consumer has not taken (it is down): seeded as each layout leaves them.

    python -m bench.inflight [--backlog 2000]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from bench.calibration import calibration
from bench.sweep import REGION, ReadUnits
from outbox.adapters.aws import dynamodb_client, sqs_client
from outbox.adapters.models import RECORD_INDEX_KEYS
from outbox.adapters.publisher import SqsPublisher
from outbox.adapters.store import DynamoDBMessageStore
from outbox.adapters.sweep import DynamoDBSweepSource
from outbox.bootstrap import bootstrap
from outbox.domain.envelope import new_envelope
from outbox.domain.keys import bucket_of, in_flight_pk, iso, outbox_sk, utc_now
from outbox.domain.layout import TableLayout
from outbox.domain.message import new_message_id
from outbox.domain.status import ENDED, Status
from outbox.local.stack import LOCAL_CREDENTIALS
from outbox.logs import configure_logging
from outbox.service.order import Place, older_first
from outbox.service.relay import Relay, RelayItem
from outbox.service.sweep import Sweeper

BUCKETS = 16
WRU_USD_PER_MILLION = 0.625
Keys = tuple[str, str] | None
LIFE = [Status.QUEUED, Status.PROCESSING, Status.COMPLETED]  # after the accept
REDRIVEN = [Status.QUEUED, Status.PROCESSING, Status.FAILED, Status.QUEUED, Status.PROCESSING, Status.COMPLETED]


def index_writes(before: Keys, after: Keys) -> int:
    """Writes a keys-only index pays for one table write that takes the keys from ``before`` to ``after``."""
    if before == after:
        return 0
    return 2 if before is not None and after is not None else 1


def _pending_only(status: Status, place: tuple[str, str], _: Keys) -> Keys:
    return place if status is Status.PENDING else None


def _kept(status: Status, place: tuple[str, str], previous: Keys) -> Keys:
    # A re-drive out of FAILED would have to put the place back (the flip knows it): one write, as ours.
    return None if status in ENDED else (previous or place)


RULES: dict[str, Callable[[Status, tuple[str, str], Keys], Keys]] = {"before": _pending_only, "kept": _kept}


def _keys(item: dict[str, Any]) -> Keys:
    pk, sk = (item.get(name, {}).get("S") for name in RECORD_INDEX_KEYS)
    return (pk, sk) if pk and sk else None


def life_writes(store: DynamoDBMessageStore, steps: list[Status]) -> dict[str, int]:
    """Index writes of one message's life (accept, then ``steps``), per layout; ``ours`` from the real records."""
    envelope = new_envelope({"n": 1}, type="Bench", message_id=new_message_id(), created_at=iso(utc_now()))
    store.accept(envelope, idempotency_key=None)
    key = store.layout.record_key(envelope.message_id)
    item = store.client.get_item(TableName=store.table_name, Key=key)["Item"]
    place = _keys(item)
    if place is None:
        raise RuntimeError("an accepted record is not in the record index")
    counts = dict.fromkeys(["before", "kept", "ours"], 1)  # the accept puts the record in the index
    state: dict[str, Keys] = dict.fromkeys(counts, place)
    for to in steps:
        store.transition(envelope.message_id, to, by="bench", reason="bench" if to is Status.FAILED else None)
        item = store.client.get_item(TableName=store.table_name, Key=key)["Item"]
        for name, rule in RULES.items():
            after = rule(to, place, state[name])
            counts[name] += index_writes(state[name], after)
            state[name] = after
        counts["ours"] += index_writes(state["ours"], _keys(item))
        state["ours"] = _keys(item)
    return counts


@dataclass(frozen=True)
class BacklogReads:
    """Read units of one layout with a backlog of messages in flight (the consumer down)."""

    layout: str
    backlog: int
    in_flight_for: timedelta
    sweep_rru: float
    group_check_rru: float


def _seed_in_flight(store: DynamoDBMessageStore, n: int, *, layout: str, since: timedelta) -> list[str]:
    """``n`` QUEUED records flipped ``since`` ago, straight into moto's table, with the layout's index keys."""
    table = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].get_table(store.table_name)
    flipped = iso(utc_now() - since)
    ids = []
    for i in range(n):
        created = iso(utc_now() - since - timedelta(seconds=1, microseconds=i * 1000))
        envelope = new_envelope({"n": i}, type="Seeded", message_id=new_message_id(), created_at=created)
        record = store.prepare(envelope, idempotency_key=None, by="bench").transact_items[0]["Put"]["Item"]
        record |= {"status": {"S": Status.QUEUED.value}, "updated_at": {"S": flipped}}
        if layout == "ours":
            record |= {"outbox_pk": {"S": in_flight_pk(envelope.message_id)}}
            record |= {"outbox_sk": {"S": outbox_sk(flipped, envelope.message_id)}}
        table.put_item(record)
        ids.append(envelope.message_id)
    return ids


def backlog_reads(layout: str, backlog: int, since: timedelta) -> BacklogReads:
    """The read units of one sweep (both steps) and one grouped stream batch's group check."""
    with mock_aws():
        dynamodb, sqs = dynamodb_client(), sqs_client()
        resources = bootstrap(dynamodb, sqs, table_name=f"inflight-{layout}", buckets=BUCKETS)
        table = TableLayout(resources.table_name, buckets=BUCKETS)
        store = DynamoDBMessageStore(table, dynamodb)
        publisher = SqsPublisher(resources.queue_url, client=sqs)
        relay = Relay(store, publisher, by="sweeper")
        resender = Relay(store, publisher, by="sweeper", expected=frozenset())
        source = DynamoDBSweepSource(table, dynamodb)
        sweeper = Sweeper(source, relay, buckets=BUCKETS, resender=resender)
        _seed_in_flight(store, backlog, layout=layout, since=since)
        units = ReadUnits(dynamodb)
        with units.measure() as sweep:
            report = sweeper.sweep()
        if report.resent:  # within the queue's retention: nothing is re-sent
            raise RuntimeError(f"{report.resent} messages re-sent")
        # One stream batch: a grouped message in every bucket, newer than the backlog.
        items, places = [], {}
        for bucket in range(BUCKETS):
            group = next(g for g in (f"g{n}" for n in range(10_000)) if bucket_of(g, BUCKETS) == bucket)
            message_id = new_message_id()
            places[message_id] = Place(bucket, outbox_sk(iso(utc_now()), message_id))
            items.append(RelayItem(message_id, message_id, "{}", group))
        with units.measure() as group_check:
            older_first(items, places, source, known={i.message_id for i in items}.__contains__)
        relay.close()
        resender.close()
    return BacklogReads(layout, backlog, since, sweep[0], group_check[0])


def main(argv: list[str] | None = None) -> int:
    """Measure and print the tables for RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=2000)
    args = parser.parse_args(argv)
    os.environ.update(LOCAL_CREDENTIALS)  # moto only: never real AWS
    os.environ["OUTBOX_METRICS"] = "off"
    configure_logging(level="ERROR")
    print(f"calibration: {calibration():.2f} s")
    started = time.perf_counter()
    with mock_aws():
        resources = bootstrap(dynamodb_client(), sqs_client(), table_name="life", buckets=BUCKETS)
        store = DynamoDBMessageStore(TableLayout(resources.table_name, buckets=BUCKETS), dynamodb_client())
        lives = {"delivered": life_writes(store, LIFE), "failed, re-driven, delivered": life_writes(store, REDRIVEN)}
    print("| message life | index writes: before (PENDING only) | kept until it ends | ours (SENT# partitions) |")
    print("|---|---|---|---|")
    for name, counts in lives.items():
        print(f"| {name} | {counts['before']} | {counts['kept']} | {counts['ours']} |")
    extra = (lives["delivered"]["ours"] - lives["delivered"]["before"]) * WRU_USD_PER_MILLION
    print(f"\nours over before: +{extra:.2f} USD per million delivered messages (on-demand WRU)\n")
    print("| layout | messages in flight (consumer down) | in flight for | sweep RRU | group check RRU (16 buckets) |")
    print("|---|---|---|---|---|")
    for since in (timedelta(minutes=1), timedelta(hours=1)):
        for layout in ("kept", "ours"):
            r = backlog_reads(layout, args.backlog, since)
            print(f"| {r.layout} | {r.backlog} | {since} | {r.sweep_rru:.1f} | {r.group_check_rru:.1f} |")
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
