"""Create the table and queues the outbox needs, on any endpoint (AWS included). Idempotent.

An existing table is checked before anything is changed: its keys, its stream and any index named
like the outbox's must be what the outbox needs, or bootstrap stops with one line saying what to
fix, and the table is left as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from outbox.adapters.aws import AWS_ERRORS, error_code, translate
from outbox.adapters.models import record_index_definition, table_definition
from outbox.adapters.sweep import DynamoDBSweepSource
from outbox.adapters.table import CLI_SETTINGS, table_problems
from outbox.domain.errors import ConfigurationError
from outbox.domain.layout import DEFAULT_HASH_KEY, DEFAULT_RANGE_KEY, TableLayout

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

# Above the consumer's OUTBOX_MAX_DELIVERY_ATTEMPTS (5), so the consumer marks a message FAILED
# (with its reason) before SQS moves the copy to the DLQ and leaves the record PROCESSING.
DLQ_MAX_RECEIVE_COUNT = 10
VISIBILITY_TIMEOUT_S = 60
RETENTION_S = 14 * 24 * 3600


@dataclass(frozen=True)
class Resources:
    """What bootstrap made (or found): the names a deployment exports."""

    table_name: str
    stream_arn: str
    queue_url: str
    dlq_url: str
    on_failure_queue_url: str
    hash_key: str = DEFAULT_HASH_KEY
    range_key: str = DEFAULT_RANGE_KEY

    def environment(self, endpoint_url: str | None = None) -> dict[str, str]:
        """The environment variables that point the handlers at these resources."""
        env = {
            "OUTBOX_TABLE_NAME": self.table_name,
            "OUTBOX_QUEUE_URL": self.queue_url,
            "OUTBOX_DLQ_URL": self.dlq_url,
            "OUTBOX_ON_FAILURE_QUEUE_URL": self.on_failure_queue_url,
            "OUTBOX_HASH_KEY": self.hash_key,
            "OUTBOX_RANGE_KEY": self.range_key,
        }
        if endpoint_url:
            env["AWS_ENDPOINT_URL"] = endpoint_url
        return env


def bootstrap(
    dynamodb: DynamoDBClient,
    sqs: SQSClient,
    *,
    table_name: str = "outbox",
    queue_name: str = "outbox-messages",
    fifo: bool = False,
    hash_key: str = DEFAULT_HASH_KEY,
    range_key: str = DEFAULT_RANGE_KEY,
    buckets: int | None = None,
) -> Resources:
    """Create (or find) the table with its stream, TTL and record index, the queue, its DLQ and the on-failure queue.

    ``buckets`` is stored in the table as its outbox's bucket count (ConfigurationError if it
    already keeps another one).
    """
    layout = TableLayout(table_name, hash_key, range_key)
    if buckets is not None:
        layout = layout.with_buckets(buckets)
    try:
        definition = table_definition(layout)
        table = _describe(dynamodb, table_name)
        if table is None:
            table = _create_table(dynamodb, definition)
        else:
            check_existing_table(table, layout)
        if buckets is not None:  # a table keeping another count is refused here, before it is changed
            DynamoDBSweepSource(layout, dynamodb).buckets(buckets)
        _ensure_record_index(dynamodb, table, layout)
        _ensure_ttl(dynamodb, layout)
        stream_arn = str(table["LatestStreamArn"])
        suffix = ".fifo" if fifo else ""
        dlq_url = _ensure_queue(sqs, f"{queue_name}-dlq{suffix}", fifo=fifo)
        dlq_arn = _queue_arn(sqs, dlq_url)
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": DLQ_MAX_RECEIVE_COUNT})
        queue_url = _ensure_queue(sqs, f"{queue_name}{suffix}", fifo=fifo, RedrivePolicy=redrive)
        on_failure_url = _ensure_queue(sqs, f"{queue_name}-stream-failures", fifo=False)
    except AWS_ERRORS as exc:
        raise translate(exc, "bootstrap") from exc
    return Resources(table_name, stream_arn, queue_url, dlq_url, on_failure_url, hash_key, range_key)


def check_existing_table(table: Any, layout: TableLayout) -> None:
    """ConfigurationError (one line: the table and each fix) unless ``table``, as DescribeTable gives it, fits.

    A missing record index is no problem here: bootstrap adds it.
    """
    problems = table_problems(table, layout, settings=CLI_SETTINGS, need_index=False)
    if problems:
        name = table["TableName"]
        raise ConfigurationError(f"table {name} cannot hold the outbox, nothing was changed: {'; '.join(problems)}")


def _describe(dynamodb: DynamoDBClient, table_name: str) -> Any:
    """DescribeTable's ``Table``, or None when there is no such table."""
    try:
        return dynamodb.describe_table(TableName=table_name)["Table"]
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
    return None


def _create_table(dynamodb: DynamoDBClient, definition: Any) -> Any:
    table_name = definition["TableName"]
    try:
        dynamodb.create_table(**definition)
    except ClientError as exc:
        if error_code(exc) != "ResourceInUseException":  # made meanwhile by another bootstrap
            raise
    dynamodb.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    return dynamodb.describe_table(TableName=table_name)["Table"]


def _ensure_ttl(dynamodb: DynamoDBClient, layout: TableLayout) -> None:
    """TTL on the outbox's attribute, unless the table already has TTL (on it, or on one of its own)."""
    ttl = dynamodb.describe_time_to_live(TableName=layout.table_name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        dynamodb.update_time_to_live(
            TableName=layout.table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": layout.ttl_attribute},
        )


def _ensure_record_index(dynamodb: DynamoDBClient, table: Any, layout: TableLayout) -> None:
    """A table made before the record index gets it (DynamoDB backfills it from the records)."""
    if any(index["IndexName"] == layout.record_index for index in table.get("GlobalSecondaryIndexes", [])):
        return
    create: Any = {"Create": record_index_definition(layout)}
    dynamodb.update_table(
        TableName=layout.table_name,
        AttributeDefinitions=table_definition(layout)["AttributeDefinitions"],
        GlobalSecondaryIndexUpdates=[create],
    )


def _ensure_queue(sqs: SQSClient, name: str, *, fifo: bool, **attributes: str) -> str:
    attrs: dict[Any, str] = {
        "VisibilityTimeout": str(VISIBILITY_TIMEOUT_S),
        "MessageRetentionPeriod": str(RETENTION_S),
        **attributes,
    }
    if fifo:
        attrs["FifoQueue"] = "true"
    try:
        return sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    except ClientError as exc:
        if error_code(exc) not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    mutable = {k: v for k, v in attrs.items() if k != "FifoQueue"}  # FifoQueue cannot be changed
    sqs.set_queue_attributes(QueueUrl=url, Attributes=mutable)
    return url


def _queue_arn(sqs: SQSClient, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
