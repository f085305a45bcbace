"""Relay throughput: the same stream batches through a naive relay, ours and (moto in process) the flips alone.

Naive: per record one SendMessage and one UpdateItem, sequentially. Ours: the stream worker of the
Lambda package. Ceiling: only the flips. Rounds are interleaved (round 1 of each relay, then round
2 ...): this VM's speed drifts by tens of percent within a minute, so every relay runs in the same
phases, and a ratio is the median of the per-round ratios.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bench import stub
from bench._backend import LAMBDA_BATCH, ROUNDS, Backend, backend, seed, synthetic_events
from bench.naive import FlipsOnly, NaiveRelay, item_size
from outbox.adapters.aws import dynamodb_client, sqs_client
from outbox.adapters.publisher import SqsPublisher
from outbox.adapters.store import DynamoDBMessageStore
from outbox.domain.keys import OUTBOX_PREFIX, RECORD_SK, record_pk
from outbox.domain.layout import TableLayout
from outbox.domain.status import Status
from outbox.faults import FaultInjector
from outbox.local.events import to_lambda_record
from outbox.service.relay import Relay
from outbox.service.stream import StreamWorker
from outbox.testing import FakeLambdaContext, stream_records

FAKE_QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/outbox-messages"
Handle = Callable[[Mapping[str, Any]], object]


class Contender(StrEnum):
    """Who relays the batches."""

    NAIVE = "naive"
    OURS = "ours"
    CEILING = "ceiling"  # not a relay: the flips alone


@dataclass(frozen=True)
class Ratio:
    """Messages per second over naive's: the median of the rounds' ratios, and their range."""

    median: float
    low: float
    high: float


@dataclass(frozen=True)
class RelayFigures:
    """One contender's throughput and the AWS requests it made, per message."""

    msg_per_s: float
    requests_per_msg: float
    sqs_per_msg: float
    updates_per_msg: float
    vs_naive: Ratio | None = None  # None for naive itself


@dataclass(frozen=True)
class RelayComparison:
    """Naive, ours and (on moto in process) the ceiling on one backend."""

    backend: str
    messages: int  # per contender and round
    rounds: int
    naive: RelayFigures
    ours: RelayFigures
    ceiling: RelayFigures | None = None
    flip_wru: float | None = None  # write units of one flip (None on the fake AWS: it keeps no items)

    def contenders(self) -> list[tuple[Contender, RelayFigures]]:
        """Every contender that ran, naive first."""
        found = [(Contender.NAIVE, self.naive), (Contender.OURS, self.ours)]
        return found + ([(Contender.CEILING, self.ceiling)] if self.ceiling is not None else [])


def on_moto(latency_ms: float, n: int, rounds: int = ROUNDS, *, server: bool = False) -> RelayComparison:
    """Stream batches of ``n`` fresh messages per contender and round, read from the table's stream.

    In process, the ceiling runs too: there every request is CPU of this process, so no relay beats it.
    """
    with backend(latency_ms, server=server) as b:
        relay = Relay(b.store, SqsPublisher(b.resources.queue_url, client=b.sqs))
        worker = StreamWorker(relay)
        handlers: dict[Contender, Handle] = {
            Contender.NAIVE: NaiveRelay(b.store, b.sqs, b.resources.queue_url).handle,
            Contender.OURS: functools.partial(worker.handle, context=FakeLambdaContext()),
        }
        if not server:
            handlers[Contender.CEILING] = FlipsOnly(b.store).handle
        runs: dict[Contender, list[Callable[[], None]]] = {name: [] for name in handlers}
        seeded: dict[Contender, list[str]] = {name: [] for name in handlers}
        position: str | None = None
        for _ in range(rounds):
            for name, handle in handlers.items():
                seeded[name] += seed(b.store, n)  # fresh PENDING records: a flip only succeeds once
                batches, position = _stream_batches(b, position)
                runs[name].append(functools.partial(_each, handle, batches))
        figures = _compare(b.counter, runs, n, between=lambda: _drain(b))  # each round starts at the same depth
        relay.close()
        for ids in seeded.values():  # every contender really flipped what it was given
            if not all(b.store.get(m).status is Status.QUEUED for m in ids[:: max(1, n // 10)]):
                raise RuntimeError(f"a contender left messages unflipped on {b.name}")
        return RelayComparison(
            b.name,
            n,
            rounds,
            naive=figures[Contender.NAIVE],
            ours=figures[Contender.OURS],
            ceiling=figures.get(Contender.CEILING),
            flip_wru=_flip_wru(b, seeded[Contender.OURS]),
        )


def on_fake_aws(latency_ms: float, n: int, rounds: int = ROUNDS) -> RelayComparison:
    """The same against a fake AWS that only adds latency: what the batching and concurrency buy."""
    dynamodb, sqs = dynamodb_client(), sqs_client()
    for client in (dynamodb, sqs):
        stub.attach(client, latency_ms)
    counter = FaultInjector(dynamodb, sqs)
    store = DynamoDBMessageStore(TableLayout("outbox"), dynamodb)
    events = synthetic_events(n)
    naive = NaiveRelay(store, sqs, FAKE_QUEUE_URL)
    relay = Relay(store, SqsPublisher(FAKE_QUEUE_URL, client=sqs))
    ours = functools.partial(StreamWorker(relay).handle, context=FakeLambdaContext())
    runs: dict[Contender, list[Callable[[], None]]] = {
        Contender.NAIVE: [functools.partial(_each, naive.handle, events)] * rounds,
        Contender.OURS: [functools.partial(_each, ours, events)] * rounds,
    }
    figures = _compare(counter, runs, n)
    relay.close()
    name = f"fake AWS, {latency_ms:g} ms per request"
    return RelayComparison(name, n, rounds, naive=figures[Contender.NAIVE], ours=figures[Contender.OURS])


def _each(handle: Handle, events: list[dict[str, Any]]) -> None:
    for event in events:
        handle(event)


def _stream_batches(b: Backend, after: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """The outbox INSERTs written since ``after``, in Lambda-sized batches, shaped as Lambda delivers them."""
    arn = b.resources.stream_arn
    records = stream_records(b.streams, arn, after=after)
    last = records[-1]["dynamodb"]["SequenceNumber"] if records else after
    hash_key = b.resources.hash_key
    shaped = [
        to_lambda_record(r, arn) for r in records if r["dynamodb"]["Keys"][hash_key]["S"].startswith(OUTBOX_PREFIX)
    ]
    return [{"Records": shaped[i : i + LAMBDA_BATCH]} for i in range(0, len(shaped), LAMBDA_BATCH)], last


def _drain(b: Backend) -> None:
    """Empty the queue (outside measurement), so that the next run starts at the same depth."""
    while True:
        messages = b.sqs.receive_message(QueueUrl=b.resources.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return
        b.sqs.delete_message_batch(
            QueueUrl=b.resources.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


def _compare(
    counter: FaultInjector,
    runs: dict[Contender, list[Callable[[], None]]],
    n: int,
    between: Callable[[], None] = lambda: None,
) -> dict[Contender, RelayFigures]:
    """Run each contender's rounds interleaved, ``n`` messages a round: wall time and requests by operation."""
    seconds: dict[Contender, list[float]] = {name: [] for name in runs}
    calls: dict[Contender, Counter[str]] = {name: Counter() for name in runs}
    for r in range(len(runs[Contender.NAIVE])):
        for name, rounds in runs.items():
            counter.calls.clear()
            started = time.perf_counter()
            rounds[r]()
            seconds[name].append(time.perf_counter() - started)
            calls[name].update(counter.calls)
            between()  # outside measurement
    figures = {}
    for name in runs:
        total = n * len(seconds[name])
        ratio = None
        if name is not Contender.NAIVE:
            ratios = sorted(a / b for a, b in zip(seconds[Contender.NAIVE], seconds[name], strict=True))
            ratio = Ratio(statistics.median(ratios), ratios[0], ratios[-1])
        figures[name] = RelayFigures(
            msg_per_s=total / sum(seconds[name]),
            requests_per_msg=sum(calls[name].values()) / total,
            sqs_per_msg=sum(v for k, v in calls[name].items() if "Message" in k) / total,
            updates_per_msg=calls[name]["UpdateItem"] / total,
            vs_naive=ratio,
        )
    return figures


def _flip_wru(b: Backend, ids: list[str]) -> float:
    """Write units of one flip: ceil(the larger of the old and new item's size / 1 KB), over 50 records."""
    units = []
    for message_id in ids[:50]:
        key = {b.resources.hash_key: {"S": record_pk(message_id)}, b.resources.range_key: {"S": RECORD_SK}}
        item = b.dynamodb.get_item(TableName=b.resources.table_name, Key=key)
        units.append(math.ceil(item_size(item["Item"]) / 1024))
    return statistics.mean(units)
