"""The sweeper Lambda, run on a schedule: relay every message PENDING past ``OUTBOX_SWEEP_MIN_AGE_SECONDS``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from functools import cache
from typing import Any

from outbox.adapters.aws import dynamodb_client, new_session, sqs_client
from outbox.adapters.publisher import SqsPublisher
from outbox.adapters.store import DynamoDBMessageStore
from outbox.adapters.sweep import DynamoDBSweepSource
from outbox.logs import bind_invocation, configure_logging
from outbox.service.relay import Relay, RelayPolicy
from outbox.service.sweep import Sweeper
from outbox.settings import Settings


def build_sweeper(settings: Settings) -> Sweeper:
    """A sweeper on real AWS clients, with the bucket count the table keeps."""
    session = new_session(settings.region)  # one session: botocore loads its endpoint data once
    store = DynamoDBMessageStore.from_settings(settings, client=dynamodb_client(settings.region, session=session))
    source = DynamoDBSweepSource(
        settings.table_name, client=store.client, hash_key=settings.hash_key, range_key=settings.range_key
    )
    publisher = SqsPublisher.from_settings(settings, client=sqs_client(settings.region, session=session))
    relay = Relay(store, publisher, policy=RelayPolicy.from_settings(settings), by="sweeper")
    buckets = source.stored_buckets() or settings.buckets
    return Sweeper(source, relay, buckets=buckets, min_age=settings.sweep_min_age)


@cache
def default_sweeper() -> Sweeper:
    """The sweeper wired from the environment: built once per cold start."""
    configure_logging()
    return build_sweeper(Settings.from_env(require_queue=True))


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (EventBridge Scheduler): one sweep; its report is the result."""
    sweeper = default_sweeper()
    bind_invocation(getattr(context, "aws_request_id", None), handler="sweeper")
    time_left: Callable[[], int] | None = getattr(context, "get_remaining_time_in_millis", None)
    report = sweeper.sweep(time_left_ms=time_left)
    return {k: v for k, v in asdict(report).items() if k != "failed_ids"}
