"""Replay beside the worker, on the moto server (serialised, so the emulator's own races do not count)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from outbox.adapters.aws import dynamodb_client, sqs_client, streams_client
from outbox.adapters.publisher import SqsPublisher
from outbox.adapters.reader import DynamoDBOutboxReader
from outbox.adapters.store import DynamoDBMessageStore
from outbox.bootstrap import Resources, bootstrap
from outbox.domain.keys import iso, utc_now
from outbox.domain.layout import TableLayout
from outbox.domain.message import new_message_id
from outbox.domain.status import Status
from outbox.local.emulator import EmbeddedEmulator
from outbox.local.events import to_lambda_record
from outbox.notifications.notification import parse_notification
from outbox.service.relay import Relay
from outbox.service.replay import FLIP_FROM, Checkpoint, Replayer, Selection
from outbox.service.stream import StreamWorker
from outbox.testing import FakeLambdaContext, stream_records

pytestmark = pytest.mark.e2e


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Resources]:
    """A fresh embedded moto server with the outbox's resources."""
    with EmbeddedEmulator() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
        yield bootstrap(dynamodb_client(), sqs_client())


def test_replay_and_worker_at_once_queue_each_message_once(emulator: Resources) -> None:
    """Invariant 4 (forward only): worker and replay race on the same entries; each record gets one QUEUED line."""
    store = DynamoDBMessageStore(TableLayout(emulator.table_name, buckets=4), dynamodb_client())
    notification = parse_notification({"channel": "sms", "recipient": "+14155550100", "body": "race"})
    ids = []
    for _ in range(40):
        envelope = notification.envelope(message_id=new_message_id(), created_at=iso(utc_now() - timedelta(hours=1)))
        store.accept(envelope, idempotency_key=None)
        ids.append(envelope.message_id)
    streams = streams_client()
    records = stream_records(streams, emulator.stream_arn)
    event = {"Records": [to_lambda_record(r, emulator.stream_arn) for r in records]}

    publisher = SqsPublisher(emulator.queue_url, client=sqs_client())
    worker_relay = Relay(store, publisher)
    replay_relay = Relay(store, publisher, by="replay", expected=FLIP_FROM["PENDING"])
    reader = DynamoDBOutboxReader(TableLayout(emulator.table_name, buckets=4), dynamodb_client())
    selection = Selection.window(status="PENDING")
    start = threading.Barrier(2)

    def run_worker() -> None:
        start.wait()
        StreamWorker(worker_relay).handle(event, FakeLambdaContext())

    def run_replay() -> None:
        start.wait()
        Replayer(reader, replay_relay, batch_size=5).run(Checkpoint(selection))

    threads = [threading.Thread(target=run_worker), threading.Thread(target=run_replay)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    worker_relay.close()
    replay_relay.close()

    for message_id in ids:
        record = store.get(message_id)
        assert record.status is Status.QUEUED
        assert [h.status for h in record.history] == [Status.PENDING, Status.QUEUED]
