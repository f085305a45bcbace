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
