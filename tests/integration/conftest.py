"""Fixtures on moto in process: a bootstrapped table and queues, real adapters, stream reading."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from moto import mock_aws

from outbox.adapters.aws import dynamodb_client, sqs_client, streams_client
from outbox.adapters.publisher import SqsPublisher
from outbox.adapters.store import DynamoDBMessageStore
from outbox.adapters.sweep import META_PK, DynamoDBSweepSource
from outbox.bootstrap import Resources, bootstrap
from outbox.domain.layout import TableLayout
from outbox.faults import FaultInjector
from outbox.local import emulator
from outbox.local.events import to_lambda_record, to_sqs_record
from outbox.notifications.api import MessagesApi
from outbox.service.accept import Acceptor
from outbox.service.consume import Consumer
from outbox.service.relay import Relay, RelayPolicy
from outbox.service.stream import StreamWorker
from outbox.testing import stream_records
from tests.events import http_event

# The API's id secret in these stacks (a test that reads ids or owners computes them with it).
ID_SECRET = "integration-tests-id-secret-0123456789"


@dataclass
class Stack:
    """Everything of one in-process stack."""

    resources: Resources
    dynamodb: Any
    sqs: Any
    streams: Any
    store: DynamoDBMessageStore
    publisher: SqsPublisher
    relay: Relay
    worker: StreamWorker
    consumer: Consumer
    api: MessagesApi
    faults: FaultInjector
    layout: TableLayout
    last_sequence: str | None = None

    def post(self, body: str, *, key: str | None = None, content_type: str = "application/json") -> dict[str, Any]:
        """POST /messages through the API handler."""
        headers = {"content-type": content_type}
        if key is not None:
            headers["idempotency-key"] = key
        return self.api.handle(http_event("POST", "/messages", body=body, headers=headers))

    def stream_event(self) -> dict[str, Any]:
        """The stream records written since the last call, shaped as Lambda delivers them."""
        arn = self.resources.stream_arn
        records = stream_records(self.streams, arn, after=self.last_sequence)
        if records:
            self.last_sequence = records[-1]["dynamodb"]["SequenceNumber"]
        return {"Records": [to_lambda_record(r, arn) for r in records]}

    def receive_all(self, queue_url: str | None = None) -> list[dict[str, Any]]:
        """Every visible message of the queue (deleting none)."""
        url = queue_url or self.resources.queue_url
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30, AttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return messages
            messages.extend(batch)

    def drain_in_order(self) -> list[str]:
        """The ids received, deleting each batch, until the queue is empty (FIFO shows a group's next copy then)."""
        ids: list[str] = []
        while batch := self.receive_all():
            ids += [json.loads(m["Body"])["message_id"] for m in batch]
            for m in batch:
                self.sqs.delete_message(QueueUrl=self.resources.queue_url, ReceiptHandle=m["ReceiptHandle"])
        return ids

    def raw_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        """One item as stored."""
        key = {self.resources.hash_key: {"S": pk}, self.resources.range_key: {"S": sk}}
        item = self.dynamodb.get_item(TableName=self.resources.table_name, Key=key, ConsistentRead=True)
        return item.get("Item")

    def all_items(self) -> list[dict[str, Any]]:
        """Every item of the table but the outbox's own settings (bucket count, sweep marks)."""
        items = self.dynamodb.scan(TableName=self.resources.table_name, ConsistentRead=True)["Items"]
        return [i for i in items if i[self.resources.hash_key]["S"] != META_PK]


def sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Received SQS messages as a Lambda SQS event."""
    return {"Records": [to_sqs_record(m, "arn:aws:sqs:us-east-1:123456789012:outbox-messages") for m in messages]}


def build_stack(
    *,
    fifo: bool = False,
    policy: RelayPolicy | None = None,
    table_name: str = "outbox",
    hash_key: str = "pk",
    range_key: str = "sk",
) -> Stack:
    """Bootstrap the resources on the active moto mock and wire the real adapters."""
    dynamodb, sqs, streams = dynamodb_client(), sqs_client(), streams_client()
    resources = bootstrap(
        dynamodb, sqs, table_name=table_name, fifo=fifo, hash_key=hash_key, range_key=range_key, buckets=4
    )
    faults = FaultInjector(dynamodb, sqs)
    layout = TableLayout(resources.table_name, hash_key, range_key, buckets=4)
    store = DynamoDBMessageStore(layout, dynamodb)
    publisher = SqsPublisher(resources.queue_url, client=sqs)
    relay = Relay(store, publisher, policy=policy or RelayPolicy(max_attempts=3))
    built = Stack(
        resources=resources,
        dynamodb=dynamodb,
        sqs=sqs,
        streams=streams,
        store=store,
        publisher=publisher,
        relay=relay,
        worker=StreamWorker(relay, layout=layout, pending=DynamoDBSweepSource(layout, dynamodb)),
        consumer=Consumer(store),
        api=MessagesApi(Acceptor(store, id_secret=ID_SECRET)),
        faults=faults,
        layout=layout,
    )
    built.stream_event()  # past what bootstrap wrote: the tests read the stream from their own writes
    return built


@contextmanager
def dead_letter_sources() -> Iterator[None]:
    """Install SQS's record of where a dead letter came from (``DeadLetterQueueSourceArn``); as shipped after."""
    emulator.install_dead_letter_source_arn()
    try:
        yield
    finally:
        emulator.uninstall_dead_letter_source_arn()


@pytest.fixture
def stack() -> Iterator[Stack]:
    """A standard-queue stack on moto in process."""
    with mock_aws(), dead_letter_sources():
        built = build_stack()
        yield built
        built.relay.close()


@pytest.fixture
def upper_stack() -> Iterator[Stack]:
    """A standard-queue stack on a table keyed PK/SK, as single-table designs often are."""
    with mock_aws(), dead_letter_sources():
        built = build_stack(hash_key="PK", range_key="SK")
        yield built
        built.relay.close()


@pytest.fixture
def fifo_stack() -> Iterator[Stack]:
    """A FIFO-queue stack on moto in process."""
    with mock_aws(), dead_letter_sources():
        built = build_stack(fifo=True)
        yield built
        built.relay.close()
