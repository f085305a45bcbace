"""Per-invocation throughput of the worker, the consumer and the API on the 5 ms latency model.

The capacity model (``outbox.capacity``, docs/capacity.md) multiplies what one invocation carries
by how many run at once; this measures the first factor. Every AWS request answers after a fixed
latency (``bench.stub``: botocore's real serialisation, signing and parsing, no network), so a
figure is the code's own cost plus its waits, one invocation at a time:

- worker: stream batches of 100 outbox INSERTs, as the mapping delivers them, with no group key
  (a standard queue) and with 10 groups per batch (a FIFO queue: the group check reads the
  pending index once per group);
- consumer: SQS batches of 10 copies (the FIFO maximum), each leased, delivered by a function
  that returns at once (your delivery's time adds to this), and completed;
- API: POST /messages one after another (one TransactWriteItems each).

Each is compared with the model's planning figure (``outbox.capacity``): a measurement below it
exits 1, so the model never promises more than this code was measured to do. Calibration
(``bench.calibration``) before and after.

    python -m bench.capacity [--latency-ms 5] [--messages 2000] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from bench import stub
from bench._backend import LAMBDA_BATCH, NOTE
from bench.calibration import calibration
from outbox import capacity
from outbox.adapters.aws import dynamodb_client, new_session, sqs_client
from outbox.adapters.publisher import SqsPublisher
from outbox.adapters.store import DynamoDBMessageStore
from outbox.adapters.sweep import DynamoDBSweepSource
from outbox.adapters.visibility import SqsVisibility
from outbox.domain.envelope import Envelope
from outbox.domain.keys import iso, utc_now
from outbox.domain.layout import TableLayout
from outbox.domain.message import new_message_id
from outbox.logs import configure_logging
from outbox.notifications.api import MessagesApi
from outbox.service.accept import Acceptor
from outbox.service.consume import Consumer
from outbox.service.relay import RecentSends, Relay
from outbox.service.stream import StreamWorker
from outbox.testing import FakeLambdaContext, outbox_insert

QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/outbox.fifo"
CONSUMER_BATCH = 10  # a FIFO queue's most per receive, and the module's default batch size
GROUPS_PER_BATCH = 10


@dataclass(frozen=True)
class Throughput:
    """Messages per second of one invocation: the median over rounds, and the model's planning figure."""

    name: str
    msg_per_s: float
    low: float
    high: float
    model_msg_per_s: float

    @property
    def holds(self) -> bool:
        """Whether every round measured at least what the model plans with."""
        return self.low >= self.model_msg_per_s


@dataclass(frozen=True)
class Capacity:
    """The benchmark's result."""

    latency_ms: float
    messages: int
    rounds: int
    calibration_s: tuple[float, float]
    figures: tuple[Throughput, ...]

    def table(self) -> str:
        """The markdown table."""
        lines = [
            "| one invocation of | msg/s (median) | range | model plans with | holds |",
            "|---|---|---|---|---|",
        ]
        for f in self.figures:
            lines.append(
                f"| {f.name} | {f.msg_per_s:,.0f} | {f.low:,.0f}–{f.high:,.0f} | {f.model_msg_per_s:,.0f}"
                f" | {'yes' if f.holds else 'NO'} |"
            )
        return "\n".join(lines)


def _clients(latency_ms: float) -> tuple[Any, Any]:
    session = new_session("eu-west-1")
    session.set_credentials("AKIAIOSFODNN7EXAMPLE", "bench")  # signed, never sent: the stub answers
    dynamodb, sqs = dynamodb_client("eu-west-1", session=session), sqs_client("eu-west-1", session=session)
    for client in (dynamodb, sqs):
        stub.attach(client, latency_ms)
    return dynamodb, sqs


def _envelope(group: str | None) -> Envelope:
    return replace(NOTE.envelope(message_id=new_message_id(), created_at=iso(utc_now())), group_key=group)


def _stream_events(n: int, *, grouped: bool) -> list[dict[str, Any]]:
    events = []
    for start in range(0, n, LAMBDA_BATCH):
        records = []
        for i in range(start, min(n, start + LAMBDA_BATCH)):
            group = f"g{i % GROUPS_PER_BATCH}" if grouped else None
            envelope = _envelope(group)
            overrides = {"group_key": {"S": group}} if group else {}
            records.append(outbox_insert(envelope, str(i), overrides))
        events.append({"Records": records})
    return events


def _sqs_events(n: int) -> list[dict[str, Any]]:
    events = []
    for start in range(0, n, CONSUMER_BATCH):
        records = []
        for i in range(start, min(n, start + CONSUMER_BATCH)):
            envelope = _envelope(f"g{i % GROUPS_PER_BATCH}")
            records.append(
                {
                    "messageId": f"sqs-{i}",
                    "receiptHandle": f"receipt-{i}",
                    "body": envelope.body(),
                    "attributes": {"ApproximateReceiveCount": "1", "MessageGroupId": envelope.group_key},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                }
            )
        events.append({"Records": records})
    return events


def _check(ok: bool, problem: str) -> None:
    if not ok:
        raise RuntimeError(problem)


def _timed(run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def measure(latency_ms: float = 5.0, messages: int = 2000, rounds: int = 3) -> Capacity:
    """Each contender's rounds interleaved, ``messages`` a round."""
    dynamodb, sqs = _clients(latency_ms)
    store = DynamoDBMessageStore(TableLayout("outbox"), dynamodb)
    worker = StreamWorker(
        Relay(store, SqsPublisher(QUEUE_URL, client=sqs), recent=RecentSends(0)),
        pending=DynamoDBSweepSource(TableLayout("outbox"), dynamodb),
    )
    consumer = Consumer(store, lambda _envelope: None, visibility=SqsVisibility(sqs))
    api = MessagesApi(Acceptor(store, id_secret=secrets.token_urlsafe(32)))  # a warm API: its secret already read
    context = FakeLambdaContext()
    body = json.dumps({"channel": "sms", "recipient": "+14155550100", "body": "capacity"})
    post = {
        "version": "2.0",
        "rawPath": "/messages",
        "headers": {"content-type": "application/json"},
        "body": body,
        "requestContext": {"http": {"method": "POST", "path": "/messages"}},
    }

    def stream(grouped: bool) -> Callable[[], None]:
        events = _stream_events(messages, grouped=grouped)

        def run() -> None:
            for event in events:
                _check(not worker.handle(event, context)["batchItemFailures"], "the worker failed records")

        return run

    def consume() -> Callable[[], None]:
        events = _sqs_events(messages)

        def run() -> None:
            for event in events:
                _check(not consumer.handle(event, context)["batchItemFailures"], "the consumer sent copies back")

        return run

    def accept() -> Callable[[], None]:
        def run() -> None:
            for _ in range(requests):
                _check(api.handle(post)["statusCode"] == 202, "the API refused a message")

        return run

    requests = max(messages // 10, 50)  # the API: one request per message, a tenth of the messages is enough

    contenders: dict[str, tuple[Callable[[], Callable[[], None]], int, float]] = {
        "worker, 100 INSERTs a batch, no groups": (lambda: stream(False), messages, capacity.WORKER_MSG_PER_S),
        f"worker, 100 INSERTs a batch, {GROUPS_PER_BATCH} groups": (
            lambda: stream(True),
            messages,
            capacity.WORKER_MSG_PER_S,
        ),
        "consumer, 10 copies a batch": (consume, messages, capacity.CONSUMER_MSG_PER_S),
        "API, POST /messages": (accept, requests, capacity.API_MSG_PER_S),
    }
    before = calibration()
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # logs and metrics rendered, not shown
        configure_logging(sink)
        for _ in range(rounds):
            for name, (make, n, _) in contenders.items():
                run = make()  # events made outside the timing
                rates[name].append(n / _timed(run))
    after = calibration()
    worker.relay.close()
    figures = tuple(
        Throughput(name, statistics.median(rates[name]), min(rates[name]), max(rates[name]), planned)
        for name, (_, _, planned) in contenders.items()
    )
    return Capacity(latency_ms, messages, rounds, (before, after), figures)


def main(argv: list[str] | None = None) -> int:
    """Command line: measure, print the table (or JSON); exit 1 when a figure is below the model's."""
    parser = argparse.ArgumentParser(description="Per-invocation throughput on the latency model, against the model.")
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.latency_ms, args.messages, args.rounds)
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        before, after = result.calibration_s
        print(
            f"{args.latency_ms:g} ms per AWS request, {args.messages} messages a round, {args.rounds} rounds."
            f" Calibration (bench.calibration, CPU s): {before:.2f} before, {after:.2f} after.\n"
        )
        print(result.table())
    return 0 if all(f.holds for f in result.figures) else 1


if __name__ == "__main__":
    sys.exit(main())
