"""Shape DynamoDB Streams API records exactly as Lambda's event source mapping delivers them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


def to_lambda_record(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as a Lambda stream event record: ``eventSourceARN`` set, epoch seconds."""
    shaped: dict[str, Any] = {**record, "eventSourceARN": stream_arn, "eventSource": "aws:dynamodb"}
    change = dict(record.get("dynamodb") or {})
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    shaped["dynamodb"] = change
    return shaped


def to_sqs_record(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    """A ReceiveMessage message as a Lambda SQS event record."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": dict(message.get("MessageAttributes") or {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3] if queue_arn.count(":") >= 3 else "",
    }
