"""The SQS body before and after issue 25: the whole envelope (0.1.0) against the message id alone, relayed.

The same stream batches of outbox INSERTs go through the real stream worker and relay to a fake
AWS (``bench/stub.py``: every request answers after a fixed latency), once with entries holding
the whole envelope (what 0.1.0 sent) and once with the id alone (``Envelope.body``), in one run,
rounds interleaved. Per message: SendMessageBatch requests, SQS requests billed (each 64 KiB
chunk of a request's payload bills as one request), bytes sent; and relay throughput. Ratios
are after over before. A batch is at most 10 entries and 256 KiB, so large envelopes also split
batches: the slim body keeps every batch at 10 entries whatever the payload.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bench import stub
from bench.calibration import calibration
from outbox.adapters.aws import dynamodb_client, sqs_client
from outbox.adapters.publisher import SqsPublisher
from outbox.adapters.store import DynamoDBMessageStore
from outbox.domain.envelope import new_envelope
from outbox.domain.keys import iso, utc_now
from outbox.domain.layout import TableLayout
from outbox.domain.message import new_message_id
from outbox.logs import configure_logging
from outbox.service.relay import Relay
from outbox.service.stream import StreamWorker
from outbox.testing import FakeLambdaContext, outbox_insert

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/outbox-messages"
BILLED_CHUNK = 65_536  # SQS bills each 64 KiB of a request's payload as one request
LAMBDA_BATCH = 100
TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
BODIES = ("before: whole envelope", "after: id alone")


@dataclass(frozen=True)
class BodyFigures:
    """One body's figures per message, over every round."""

    batches: float
    billed: float
    bytes_sent: float
    msg_per_s: float


class SqsMeter:
    """Counts what each SendMessageBatch sends: requests, billed 64 KiB chunks, body bytes."""

    def __init__(self) -> None:
        self.batches = 0
        self.billed = 0
        self.bytes_sent = 0

    def __call__(self, params: Mapping[str, Any], **_: Any) -> None:
        """One batch about to be sent (botocore's ``before-parameter-build``): the trace header counts in no size."""
        size = sum(len(entry["MessageBody"].encode()) for entry in params["Entries"])
        self.batches += 1
        self.billed += max(1, math.ceil(size / BILLED_CHUNK))
        self.bytes_sent += size


def stream_events(payload_bytes: int, n: int, *, whole: bool) -> list[dict[str, Any]]:
    """Outbox INSERTs of ``n`` messages with ``payload_bytes`` of payload, their entries holding either body."""
    events: list[dict[str, Any]] = []
    for start in range(0, n, LAMBDA_BATCH):
        records = []
        for i in range(start, min(n, start + LAMBDA_BATCH)):
            envelope = new_envelope(
                {"text": "x" * payload_bytes},
                type="OrderPlaced",
                message_id=new_message_id(),
                created_at=iso(utc_now()),
                trace_id=TRACE,
            )
            body = envelope.to_json() if whole else envelope.body()
            records.append(outbox_insert(envelope, str(i), {"envelope": {"S": body}}))
        events.append({"Records": records})
    return events


def compare(payload_bytes: int, n: int, rounds: int, latency_ms: float) -> dict[str, BodyFigures]:
    """Both bodies through one relay on the fake AWS, rounds interleaved: figures per message."""
    dynamodb, sqs = dynamodb_client(), sqs_client()
    for client in (dynamodb, sqs):
        stub.attach(client, latency_ms)
    meter = SqsMeter()
    sqs.meta.events.register("before-parameter-build.sqs.SendMessageBatch", meter)
    relay = Relay(DynamoDBMessageStore(TableLayout("outbox"), dynamodb), SqsPublisher(QUEUE_URL, client=sqs))
    worker = functools.partial(StreamWorker(relay).handle, context=FakeLambdaContext())
    events = {name: stream_events(payload_bytes, n, whole=name == BODIES[0]) for name in BODIES}
    totals = {name: {"batches": 0, "billed": 0, "bytes": 0, "seconds": 0.0} for name in BODIES}
    for name in BODIES:  # warm up (clients, models, the flip pool) outside measurement
        worker(stream_events(payload_bytes, 10, whole=name == BODIES[0])[0])
    for r in range(rounds):
        for name in BODIES if r % 2 == 0 else BODIES[::-1]:  # neither body always goes first
            meter.batches = meter.billed = meter.bytes_sent = 0
            seconds = _timed(functools.partial(_each, worker, events[name]))
            total = totals[name]
            total["batches"] += meter.batches
            total["billed"] += meter.billed
            total["bytes"] += meter.bytes_sent
            total["seconds"] += seconds
    relay.close()
    sent = n * rounds
    return {
        name: BodyFigures(t["batches"] / sent, t["billed"] / sent, t["bytes"] / sent, sent / t["seconds"])
        for name, t in totals.items()
    }


def _each(handle: Callable[[dict[str, Any]], object], events: list[dict[str, Any]]) -> None:
    for event in events:
        handle(event)


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table for RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200, help="per body, payload size and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--payload-bytes", type=int, nargs="+", default=[200, 4_096, 30_000, 100_000])
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")  # the fake AWS answers: never sent anywhere
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ["OUTBOX_METRICS"] = "off"
    configure_logging(level="ERROR")
    print(f"calibration: {calibration():.2f} s")
    print(f"{args.messages} messages x {args.rounds} rounds per body, fake AWS at {args.latency_ms:g} ms a request\n")
    print("| payload | body | batches/msg | SQS billed/msg | bytes sent/msg | relay msg/s |")
    print("|---|---|---|---|---|---|")
    for size in args.payload_bytes:
        figures = compare(size, args.messages, args.rounds, args.latency_ms)
        for name, f in figures.items():
            print(f"| {size} B | {name} | {f.batches:.3f} | {f.billed:.3f} | {f.bytes_sent:,.0f} | {f.msg_per_s:.0f} |")
        before, after = (figures[name] for name in BODIES)
        print(
            f"| {size} B | after/before | x{after.batches / before.batches:.2f} | x{after.billed / before.billed:.2f}"
            f" | x{after.bytes_sent / before.bytes_sent:.3f} | x{after.msg_per_s / before.msg_per_s:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
