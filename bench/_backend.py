"""What the relay and accept benchmarks share: an AWS backend that counts its requests, and the messages they send."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moto import mock_aws

from outbox.adapters.aws import dynamodb_client, sqs_client, streams_client
from outbox.adapters.store import DynamoDBMessageStore
from outbox.bootstrap import Resources, bootstrap
from outbox.domain.keys import iso, utc_now
from outbox.domain.layout import TableLayout
from outbox.domain.message import new_message_id
from outbox.faults import FaultInjector
from outbox.local import emulator
from outbox.local.demo import sample_payload
from outbox.notifications.notification import parse_notification
from outbox.testing import outbox_insert

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_sqs import SQSClient

NOTE = parse_notification({"channel": "sms", "recipient": "+14155550100", "body": "benchmark"})
LAMBDA_BATCH = 100  # stream records per invocation, as the event source mapping delivers them
ROUNDS = 5  # interleaved rounds per comparison


@dataclass(frozen=True)
class Backend:
    """One AWS backend: clients, the bootstrapped resources, a request counter, the store."""

    name: str
    dynamodb: DynamoDBClient
    sqs: SQSClient
    streams: DynamoDBStreamsClient
    resources: Resources
    counter: FaultInjector
    store: DynamoDBMessageStore


@contextmanager
def backend(latency_ms: float, *, server: bool = False) -> Iterator[Backend]:
    """Moto in process (with the emulator's fixes, proven equal to moto), plus a fixed latency per request.

    With ``server``: the local stack's emulator in its own process, over HTTP.
    """
    if server:
        with emulator.EmbeddedEmulator() as running, endpoint(running.endpoint_url):
            yield _backend("moto server (own process, HTTP)", latency_ms)
        return
    emulator.install_all()
    with mock_aws():
        yield _backend(f"moto + {latency_ms:g} ms per request" if latency_ms else "moto in process", latency_ms)


def _backend(name: str, latency_ms: float) -> Backend:
    dynamodb, sqs, streams = dynamodb_client(), sqs_client(), streams_client()
    resources = bootstrap(dynamodb, sqs)
    if latency_ms:
        for client in (dynamodb, sqs):
            client.meta.events.register_first("before-send", lambda **_: time.sleep(latency_ms / 1000))
    counter = FaultInjector(dynamodb, sqs)
    store = DynamoDBMessageStore(TableLayout(resources.table_name), dynamodb)
    return Backend(name, dynamodb, sqs, streams, resources, counter, store)


@contextmanager
def endpoint(url: str) -> Iterator[None]:
    """Clients made inside talk to ``url`` (botocore reads AWS_ENDPOINT_URL)."""
    os.environ["AWS_ENDPOINT_URL"] = url
    try:
        yield
    finally:
        del os.environ["AWS_ENDPOINT_URL"]


def seed(store: DynamoDBMessageStore, n: int) -> list[str]:
    """Accept ``n`` varied messages (outside any measurement); their ids."""
    ids = []
    for i in range(n):
        envelope = parse_notification(sample_payload(i)).envelope(
            message_id=new_message_id(), created_at=iso(utc_now())
        )
        store.accept(envelope, idempotency_key=None)
        ids.append(envelope.message_id)
    return ids


def synthetic_events(n: int) -> list[dict[str, Any]]:
    """Outbox INSERTs of ``n`` new messages as Lambda delivers them, 100 to a batch (no table behind them)."""
    events = []
    for start in range(0, n, LAMBDA_BATCH):
        records = [
            outbox_insert(NOTE.envelope(message_id=new_message_id(), created_at=iso(utc_now())), str(i))
            for i in range(start, min(n, start + LAMBDA_BATCH))
        ]
        events.append({"Records": records})
    return events
