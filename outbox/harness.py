"""Test harnesses for code that uses the outbox: the delivery side in memory, and your table on moto in process.

The fixtures of ``outbox.pytest_plugin`` hand these out; they need no pytest themselves.

- ``MemoryOutbox``: no AWS and no emulator. Messages go into the shipped in-memory store, through
  the real relay to an in-memory queue, and to the real consumer around your delivery function,
  status lifecycle included.
- ``local_outbox(LocalTable(...))``: moto in process (the ``[local]`` extra). Your table and its
  queues are bootstrapped, an ``Outbox`` is ready on it, the ``OUTBOX_*`` environment points at
  them while it runs (so ``Outbox.from_settings`` and ``make_handler`` find them), and
  ``relay()`` and ``consume(handler)`` play Lambda's stream and SQS mappings around the real
  handlers. The events are ``outbox.lambda_events``'s.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from outbox.consumer import BatchResponse, Deliver, make_handler
from outbox.domain.envelope import Envelope
from outbox.domain.record import MessageRecord
from outbox.domain.status import Status
from outbox.domain.trace import trace_header
from outbox.lambda_events import lambda_stream_record, received_sqs_record, sqs_event, sqs_record, stream_event
from outbox.local.filters import matches, stream_filter_pattern
from outbox.service.accept import new_message
from outbox.service.consume import Consumer
from outbox.service.relay import Relay, RelayItem
from outbox.testing import FakeLambdaContext, FakePublisher, FakeVisibility, InMemoryMessageStore, stream_records

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_sqs import SQSClient

    from outbox._outbox import Outbox
    from outbox.bootstrap import Resources
    from outbox.service.stream import StreamWorker

__all__ = ["LOCAL_EXTRA_MISSING", "LocalExtraMissingError", "LocalOutbox", "LocalTable", "MemoryOutbox", "local_outbox"]

SqsHandler = Callable[[Mapping[str, Any], Any], BatchResponse]
# The id secret of the test stacks: messages with an idempotency key or a scope need one.
TEST_ID_SECRET = "outbox-pytest-plugin-id-secret-0123456789"  # noqa: S105 - a test value, by design
LOCAL_EXTRA_MISSING = "the local outbox needs moto: pip install 'dynamodb-outbox[local]'"
_REGION = "us-east-1"
_FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": _REGION,
    "AWS_REGION": _REGION,
}


@dataclass
class MemoryOutbox:
    """The delivery side in memory: messages accepted PENDING, relayed to an in-memory queue, consumed.

    ``store`` is the shipped ``InMemoryMessageStore`` (read a record's status and history there or
    with ``record``); ``publisher`` keeps every copy the relay sent. A copy stays on the queue
    until a ``consume`` does not list it for a retry, as Lambda deletes a batch's successes.
    """

    store: InMemoryMessageStore = field(default_factory=InMemoryMessageStore)
    publisher: FakePublisher = field(default_factory=FakePublisher)
    fifo: bool = False
    _queue: dict[str, tuple[Envelope, str, int]] = field(default_factory=dict)  # SQS id -> (envelope, body, receives)
    _relays: list[Relay] = field(default_factory=list)

    def message(
        self, payload: Mapping[str, Any], *, type: str, group_key: str | None = None, trace_id: str | None = None
    ) -> Envelope:
        """A new message, checked as ``Outbox.message`` checks it, stored PENDING; its envelope."""
        new = new_message(payload, type=type, group_key=group_key, trace_id=trace_id, key_field="idempotency_key")
        self.store.accept(new.envelope, idempotency_key=None, by="service", sequence=new.sequence)
        return new.envelope

    def relay(self) -> list[str]:
        """Relay every PENDING message, oldest first, through the real relay (send, then flip); the ids sent."""
        pending = sorted(
            (r for r in self.store.records.values() if r.status is Status.PENDING), key=lambda r: r.created_at
        )
        relay = Relay(self.store, self.publisher, by="worker")
        self._relays.append(relay)
        sent_before = len(self.publisher.sent)
        report = relay.relay(
            [RelayItem.from_record(r.message_id, r.group_key, trace_header(r.trace_id)) for r in pending]
        )
        for outgoing in self.publisher.sent[sent_before:]:
            self._queue[str(uuid.uuid4())] = (self.store.envelopes[outgoing.message_id], outgoing.body, 0)
        return report.sent

    def sqs_event(self) -> dict[str, Any]:
        """Every copy on the queue, received once more, as Lambda's SQS mapping delivers them."""
        records = []
        for sqs_id, (envelope, body, receives) in self._queue.items():
            self._queue[sqs_id] = (envelope, body, receives + 1)
            group = (envelope.group_key or envelope.message_id) if self.fifo else None
            records.append(sqs_record(body, message_id=sqs_id, receive_count=receives + 1, group_id=group))
        return sqs_event(records)

    def consume(self, deliver: Deliver) -> BatchResponse:
        """One invocation of the real consumer around ``deliver`` on every copy queued; its partial batch response."""
        event = self.sqs_event()
        response = Consumer(self.store, deliver, visibility=FakeVisibility()).handle(event, FakeLambdaContext())
        retried = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
        for record in event["Records"]:
            if record["messageId"] not in retried:
                self._queue.pop(record["messageId"], None)
        return response

    def run(self, deliver: Deliver) -> BatchResponse:
        """``relay()``, then ``consume(deliver)``: each message written so far reaches ``deliver``."""
        self.relay()
        return self.consume(deliver)

    def record(self, message_id: str) -> MessageRecord:
        """A message's record: status, attempts, history, the reason it failed."""
        return self.store.get(message_id)

    def close(self) -> None:
        """Stop the relays' flip threads."""
        for relay in self._relays:
            relay.close()


@dataclass(frozen=True)
class LocalTable:
    """The table ``outbox_local`` creates: your name and key names, and the kind of queue."""

    name: str = "outbox"
    hash_key: str = "pk"
    range_key: str = "sk"
    fifo: bool = False


@dataclass
class LocalOutbox:
    """Your table and its queues on moto in process, an ``Outbox`` on it, and Lambda's mappings played by hand.

    ``relay()`` runs the real stream worker on what the table's stream gained since the last call
    (filtered as the deployed mapping filters it); ``consume(handler)`` gives every copy on the
    queue to a Lambda SQS handler (``make_handler(deliver)``'s, or the one your module deploys)
    and deletes those it did not list for a retry, as Lambda does.
    """

    table: LocalTable
    resources: Resources
    outbox: Outbox
    dynamodb: DynamoDBClient
    sqs: SQSClient
    streams: DynamoDBStreamsClient
    environment: dict[str, str]
    worker: StreamWorker
    queue_arn: str
    _last_sequence: str | None = None

    def stream_event(self) -> dict[str, Any]:
        """What the stream gained since the last call and the deployed mapping passes, as Lambda delivers it."""
        arn = self.resources.stream_arn
        records = stream_records(self.streams, arn, after=self._last_sequence)
        if records:
            self._last_sequence = records[-1]["dynamodb"]["SequenceNumber"]
        shaped = [lambda_stream_record(record, arn) for record in records]
        pattern = stream_filter_pattern(self.table.hash_key)
        return stream_event(record for record in shaped if matches(pattern, record))

    def relay(self) -> BatchResponse:
        """The stream worker on the stream's new outbox entries: each message sent to the queue and flipped QUEUED."""
        event = self.stream_event()
        if not event["Records"]:
            return {"batchItemFailures": []}
        return self.worker.handle(event, FakeLambdaContext())

    def sqs_event(self) -> dict[str, Any]:
        """Every copy visible on the queue, received now, as Lambda's SQS mapping delivers them."""
        messages: list[Any] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.resources.queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=30,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not batch:
                return sqs_event(received_sqs_record(message, self.queue_arn) for message in messages)
            messages.extend(batch)

    def consume(self, handler: SqsHandler) -> BatchResponse:
        """Every copy on the queue to ``handler`` in one event; the copies it did not list for a retry deleted."""
        event = self.sqs_event()
        if not event["Records"]:
            return {"batchItemFailures": []}
        response = handler(event, FakeLambdaContext())
        retried = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
        for record in event["Records"]:
            if record["messageId"] not in retried:
                self.sqs.delete_message(QueueUrl=self.resources.queue_url, ReceiptHandle=record["receiptHandle"])
        return response

    def deliver_with(self, deliver: Deliver) -> BatchResponse:
        """``consume`` with ``make_handler(deliver)``: your delivery function behind the library's consumer."""
        return self.consume(make_handler(deliver))

    def run(self, handler: SqsHandler) -> BatchResponse:
        """``relay()``, then ``consume(handler)``: what was written so far reaches the handler."""
        self.relay()
        return self.consume(handler)

    def get(self, message_id: str) -> MessageRecord:
        """A message's record, strongly consistent (``Outbox.get``)."""
        return self.outbox.get(message_id)


class LocalExtraMissingError(ImportError):
    """moto is not installed: the local outbox needs the ``[local]`` extra."""


@contextlib.contextmanager
def _environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """``values`` set in ``os.environ`` (None: removed) while the block runs; what was there before, after."""
    before = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def local_outbox(table: LocalTable | None = None) -> Iterator[LocalOutbox]:
    """``table`` and its queues on moto in process; the environment points at them until the block ends.

    LocalExtraMissingError (one line naming the extra) without moto.
    """
    try:
        from moto import mock_aws  # noqa: PLC0415 - the local extra, imported only when it is used
    except ImportError as exc:
        raise LocalExtraMissingError(LOCAL_EXTRA_MISSING) from exc
    from outbox._outbox import Outbox  # noqa: PLC0415 - with moto only
    from outbox.bootstrap import bootstrap  # noqa: PLC0415
    from outbox.compose import Clients, build_stream_worker  # noqa: PLC0415
    from outbox.settings import Settings  # noqa: PLC0415

    table = table or LocalTable()
    # Nothing reaches AWS, or the endpoint a developer's environment names.
    isolated: dict[str, str | None] = {**_FAKE_CREDENTIALS, "AWS_PROFILE": None, "AWS_ENDPOINT_URL": None}
    with _environment(isolated), mock_aws():
        clients = Clients(_REGION)
        resources = bootstrap(
            clients.dynamodb,
            clients.sqs,
            table_name=table.name,
            fifo=table.fifo,
            hash_key=table.hash_key,
            range_key=table.range_key,
        )
        environment = {**resources.environment(), "OUTBOX_ID_SECRET": TEST_ID_SECRET}
        with _environment(environment):
            settings = Settings.from_env(require_queue=True)
            arn = clients.sqs.get_queue_attributes(QueueUrl=resources.queue_url, AttributeNames=["QueueArn"])
            local = LocalOutbox(
                table=table,
                resources=resources,
                outbox=Outbox.from_settings(settings, client=clients.dynamodb),
                dynamodb=clients.dynamodb,
                sqs=clients.sqs,
                streams=clients.streams,
                environment=environment,
                worker=build_stream_worker(settings, Clients(_REGION)),
                queue_arn=arn["Attributes"]["QueueArn"],
            )
            local.stream_event()  # past what bootstrap wrote: relay() sees the caller's own writes
            try:
                yield local
            finally:
                local.worker.relay.close()
