"""The stream worker's Lambda entry point: a DynamoDB Streams batch to ``outbox.service.stream``'s worker.

The use case (outbox INSERTs relayed, malformed entries quarantined, a group's older PENDING
message first, the partial batch response) is ``outbox.service.stream.StreamWorker``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from outbox.adapters.aws import dynamodb_client, new_session, sqs_client
from outbox.adapters.publisher import SqsPublisher
from outbox.adapters.store import DynamoDBMessageStore
from outbox.adapters.sweep import DynamoDBSweepSource
from outbox.logs import bind_invocation, configure_logging
from outbox.service.relay import RecentSends, Relay, RelayPolicy
from outbox.service.stream import BatchResponse, StreamWorker
from outbox.settings import Settings

# Messages a warm container remembers sending: a redelivered stream batch is not sent again.
RECENT_SENDS = 10_000


@cache
def default_worker() -> StreamWorker:
    """The worker wired to real AWS clients: built once per cold start."""
    configure_logging()
    settings = Settings.from_env(require_queue=True)
    session = new_session(settings.region)  # one session: botocore loads its endpoint data once
    store = DynamoDBMessageStore.from_settings(settings, client=dynamodb_client(settings.region, session=session))
    relay = Relay(
        store,
        SqsPublisher.from_settings(settings, client=sqs_client(settings.region, session=session)),
        policy=RelayPolicy.from_settings(settings),
        recent=RecentSends(RECENT_SENDS),
    )
    pending = DynamoDBSweepSource(
        settings.table_name, client=store.client, hash_key=settings.hash_key, range_key=settings.range_key
    )
    return StreamWorker(relay, hash_key=settings.hash_key, range_key=settings.range_key, pending=pending)


def handler(event: Mapping[str, Any], context: Any) -> BatchResponse:
    """Lambda entry point."""
    worker = default_worker()
    bind_invocation(getattr(context, "aws_request_id", None), handler="worker")
    return worker.handle(event, context)
