"""What botocore's client-side parameter validation costs the relay: its own CPU per message, validation on and off.

    python -m bench.param_validation [--messages 2000] [--rounds 7]

The stream worker relays Lambda-sized batches (100 records: 10 SendMessageBatch, 100 conditional
UpdateItem) through real botocore clients, everything up to the wire included (validation,
serialisation, signing, parsing the answer), answered at once by ``bench/stub.py``, logging at
the deployed INFO into a null sink. The two workers differ only in ``parameter_validation``.
Rounds alternate which goes first; each figure is the median of its rounds (CPU time of the
whole process, the flip threads included), and the difference the median of the rounds' paired
differences. A pass times the validator alone (CPU of the calling thread inside each
``validate``), which a shared machine's noise does not blur. A last pair of rounds puts 5 ms
on every request (the fake AWS of ``bench/run.py``) and times a Lambda batch's wall time, what a
user waits for. Beside them, the machine's calibration (the same loop as ``bench/run.py``'s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from typing import TYPE_CHECKING, Any, cast

from bench import stub
from bench.calibration import calibration
from outbox.adapters.aws import client_config, new_session
from outbox.adapters.publisher import SqsPublisher
from outbox.adapters.store import DynamoDBMessageStore
from outbox.domain.keys import iso, utc_now
from outbox.domain.layout import TableLayout
from outbox.domain.message import new_message_id
from outbox.logs import configure_logging
from outbox.notifications.notification import parse_notification
from outbox.service.relay import Relay
from outbox.service.stream import StreamWorker
from outbox.testing import FakeLambdaContext, outbox_insert

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

REGION = "us-east-1"
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/123456789012/outbox-messages"
NOTE = parse_notification({"channel": "sms", "recipient": "+14155550100", "body": "benchmark"})
LAMBDA_BATCH = 100


def worker(*, validate: bool, latency_ms: float = 0) -> StreamWorker:
    """A stream worker on clients with validation on or off, every request answered by the stub after ``latency_ms``."""
    session = new_session(REGION)
    session.set_credentials("bench", "bench")
    config = client_config(parameter_validation=validate)
    dynamodb = session.create_client("dynamodb", region_name=REGION, config=config)
    sqs = session.create_client("sqs", region_name=REGION, config=config)
    for client in (dynamodb, sqs):
        stub.attach(client, latency_ms)
    relay = Relay(
        DynamoDBMessageStore(TableLayout("outbox"), cast("DynamoDBClient", dynamodb)),
        SqsPublisher(QUEUE_URL, client=cast("SQSClient", sqs)),
    )
    return StreamWorker(relay)


def events(n: int) -> list[dict[str, Any]]:
    """N outbox INSERTs as Lambda delivers them, in batches of 100."""
    records = [
        outbox_insert(NOTE.envelope(message_id=new_message_id(), created_at=iso(utc_now())), str(i)) for i in range(n)
    ]
    return [{"Records": records[i : i + LAMBDA_BATCH]} for i in range(0, n, LAMBDA_BATCH)]


class _TimedValidator:
    """Wraps a client's parameter validator, adding up the CPU its calls take (each thread its own)."""

    def __init__(self, validator: Any) -> None:
        self.validator = validator
        self.cpu_s = 0.0
        self.calls = 0
        self._lock = threading.Lock()

    def validate(self, params: Any, shape: Any) -> Any:
        started = time.thread_time()
        try:
            return self.validator.validate(params, shape)
        finally:
            spent = time.thread_time() - started
            with self._lock:
                self.cpu_s += spent
                self.calls += 1


def validation_alone(n: int) -> dict[str, float]:
    """CPU µs per relayed message spent inside botocore's validator, and validations per message."""
    timed = worker(validate=True)
    clients = (timed.relay.store.client, timed.relay.publisher.client)  # type: ignore[attr-defined]
    validators = []
    for client in clients:
        validators.append(_TimedValidator(client._serializer._param_validator))
        client._serializer._param_validator = validators[-1]
    batches = events(n)
    timed.handle(batches[0], FakeLambdaContext())  # warm
    for validator in validators:
        validator.cpu_s, validator.calls = 0.0, 0
    for batch in batches:
        timed.handle(batch, FakeLambdaContext())
    timed.relay.close()
    return {
        "cpu_us_per_msg": sum(v.cpu_s for v in validators) / n * 1e6,
        "validations_per_msg": sum(v.calls for v in validators) / n,
    }


def batch_wall_ms(latency_ms: float, n: int, rounds: int) -> dict[bool, float]:
    """Median wall time of a 100-record batch with validation off and on, ``latency_ms`` per request."""
    workers = {flag: worker(validate=flag, latency_ms=latency_ms) for flag in (False, True)}
    batches = events(n)
    for each in workers.values():
        each.handle(batches[0], FakeLambdaContext())
    walls: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(rounds):
        for validate in (False, True) if round_ % 2 == 0 else (True, False):
            for batch in batches:
                started = time.perf_counter()
                workers[validate].handle(batch, FakeLambdaContext())
                walls[validate].append((time.perf_counter() - started) * 1000)
    for each in workers.values():
        each.relay.close()
    return {flag: statistics.median(values) for flag, values in walls.items()}


def measure(n: int, rounds: int) -> dict[str, Any]:
    """CPU µs per relayed message with validation off and on: median, min, max of ``rounds`` rounds each."""
    workers = {False: worker(validate=False), True: worker(validate=True)}
    batches = events(n)
    for each in workers.values():  # warm: botocore loads its models and builds its handlers once
        each.handle(batches[0], FakeLambdaContext())
    figures: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(rounds):
        for validate in (False, True) if round_ % 2 == 0 else (True, False):
            started = time.process_time()
            for batch in batches:
                workers[validate].handle(batch, FakeLambdaContext())
            figures[validate].append((time.process_time() - started) / n * 1e6)
    for each in workers.values():
        each.relay.close()
    off, on = (statistics.median(figures[flag]) for flag in (False, True))
    paired = statistics.median(b - a for a, b in zip(figures[False], figures[True], strict=True))
    return {
        "n": n,
        "rounds": rounds,
        "off": {"median": off, "min": min(figures[False]), "max": max(figures[False])},
        "on": {"median": on, "min": min(figures[True]), "max": max(figures[True])},
        "difference_us": paired,
        "difference_pct": paired / off * 100,
        "validator": validation_alone(n),
        "batch_wall_ms": batch_wall_ms(5, n // 4, max(2, rounds // 3)),
    }


def markdown(result: dict[str, Any], calibration_s: float) -> list[str]:
    """The figures as RESULTS.md lines."""
    off, on, alone = result["off"], result["on"], result["validator"]
    return [
        f"Calibration: {calibration_s:.2f} s of CPU for the fixed loop of `bench/run.py` in this run.",
        "",
        "| parameter validation | CPU µs per relayed message (median) | range of the rounds |",
        "|---|---:|---:|",
        f"| off | {off['median']:.0f} | {off['min']:.0f}–{off['max']:.0f} |",
        f"| on | {on['median']:.0f} | {on['min']:.0f}–{on['max']:.0f} |",
        f"| on - off (median of the paired rounds) | {result['difference_us']:+.0f}"
        f" ({result['difference_pct']:+.1f} %) | |",
        f"| inside the validator alone ({alone['validations_per_msg']:.1f} validations a message) |"
        f" {alone['cpu_us_per_msg']:.0f} ({alone['cpu_us_per_msg'] / off['median'] * 100:.1f} % of off) | |",
        "",
        f"{result['n']} messages a round, {result['rounds']} rounds each, alternating which goes first.",
        "",
        "With 5 ms on every request, a 100-record Lambda batch took"
        f" {result['batch_wall_ms'][False]:.0f} ms of wall time with validation off and"
        f" {result['batch_wall_ms'][True]:.0f} ms with it on (medians).",
    ]


def main() -> int:
    """Measure and print the RESULTS.md lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    os.environ["OUTBOX_METRICS"] = "off"
    speed = calibration()
    with open(os.devnull, "w") as sink:
        configure_logging(sink, level="INFO")
        result = measure(args.messages, args.rounds)
    print("\n".join(markdown(result, speed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
