"""Own CPU per relayed message: the worker, the relay, the store's flip and the publisher, without botocore.

The production store and publisher on clients that answer at once, logging at the deployed level
(INFO) into a null sink: what our code costs a Lambda per message, apart from AWS and botocore.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from bench import stub
from bench._backend import ROUNDS, synthetic_events
from outbox.adapters.publisher import SqsPublisher
from outbox.adapters.store import DynamoDBMessageStore
from outbox.domain.layout import TableLayout
from outbox.logs import configure_logging
from outbox.service.relay import Relay
from outbox.service.stream import StreamWorker
from outbox.testing import FakeLambdaContext

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class OwnOverhead:
    """CPU microseconds per relayed message: the median of the rounds, and their range."""

    messages: int  # per round
    rounds: int
    cpu_us_per_msg: float
    low: float
    high: float


def measure(n: int, rounds: int = ROUNDS) -> OwnOverhead:
    """Relay ``n`` messages ``rounds`` times, counting process time only."""
    with open(os.devnull, "w", encoding="utf-8") as sink:
        configure_logging(sink, level="INFO")
        try:
            return _measure(n, rounds)
        finally:
            configure_logging(level="ERROR")


def _measure(n: int, rounds: int) -> OwnOverhead:
    dynamodb, sqs = stub.NullDynamoDB(), stub.NullSqs()
    # The null clients answer the two calls a relay makes, as botocore's clients would.
    store = DynamoDBMessageStore(TableLayout("outbox"), cast("DynamoDBClient", dynamodb))
    relay = Relay(store, SqsPublisher("https://sqs.us-east-1.amazonaws.com/1/outbox", client=cast("SQSClient", sqs)))
    worker = StreamWorker(relay)
    events = synthetic_events(n)
    figures = []
    for _ in range(rounds):
        started = time.process_time()
        for event in events:
            worker.handle(event, FakeLambdaContext())
        figures.append((time.process_time() - started) / n * 1e6)
    relay.close()
    if not sqs.sent == dynamodb.updates == n * rounds:
        raise RuntimeError(f"{sqs.sent} sent and {dynamodb.updates} flipped, not {n * rounds} each")
    return OwnOverhead(n, rounds, statistics.median(figures), min(figures), max(figures))
