"""Lambda events as Lambda delivers them, for your tests: SQS, DynamoDB Streams and API Gateway HTTP API.

Plain functions returning plain dicts, usable with or without pytest (``outbox.pytest_plugin``
builds its events with them, and the local stack's runners shape what they read with them).
Each event holds every field Lambda fills, so a handler tested on one meets no surprise when
deployed; the values are made up where AWS would make them up (ids, receipt handles, times).
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

__all__ = [
    "ACCOUNT",
    "QUEUE_ARN",
    "REGION",
    "STREAM_ARN",
    "http_api_event",
    "iam_authorizer",
    "lambda_stream_record",
    "received_sqs_record",
    "sqs_event",
    "sqs_record",
    "stream_event",
    "stream_record",
    "unique_id",
]

ACCOUNT = "123456789012"
REGION = "us-east-1"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:outbox-messages"
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/outbox/stream/2026-01-01T00:00:00.000"
_ARN = re.compile(r"^arn:aws:(?:iam|sts)::(\d{12}):(?:(user)/(?:.*/)?([^/]+)|(assumed-role)/([^/]+)/([^/]+)|(root))$")


def sqs_record(
    body: str,
    *,
    message_id: str | None = None,
    receive_count: int = 1,
    queue_arn: str = QUEUE_ARN,
    group_id: str | None = None,
    deduplication_id: str | None = None,
    sent_at_ms: int | None = None,
    attributes: Mapping[str, str] | None = None,
    message_attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One record of an SQS event, as Lambda's SQS mapping delivers a copy of ``body``.

    ``receive_count`` is the copy's ``ApproximateReceiveCount`` (the consumer's last-receive rule
    reads it); ``group_id`` and ``deduplication_id`` make it a FIFO queue's copy (give
    ``queue_arn`` a ``.fifo`` name too); ``attributes`` add system attributes (``AWSTraceHeader``).
    """
    sent = sent_at_ms if sent_at_ms is not None else int(time.time() * 1000)
    system = {
        "ApproximateReceiveCount": str(receive_count),
        "SentTimestamp": str(sent),
        "SenderId": "AROAEXAMPLEWORKER0001:outbox-worker",
        "ApproximateFirstReceiveTimestamp": str(sent),
    }
    if group_id is not None:
        system["MessageGroupId"] = group_id
        system["MessageDeduplicationId"] = deduplication_id or hashlib.sha256(body.encode()).hexdigest()
        system["SequenceNumber"] = str(sent * 1_000_000)
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": f"AQEB{uuid.uuid4().hex}",
        "body": body,
        "attributes": system | dict(attributes or {}),
        "messageAttributes": dict(message_attributes or {}),
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": _region_of(queue_arn),
    }


def received_sqs_record(message: Mapping[str, Any], queue_arn: str = QUEUE_ARN) -> dict[str, Any]:
    """A message as SQS's ReceiveMessage returned it, as Lambda's SQS mapping delivers it."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": dict(message.get("MessageAttributes") or {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": _region_of(queue_arn),
    }


def sqs_event(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """An SQS event holding ``records`` (``sqs_record``'s or ``received_sqs_record``'s), in their order."""
    return {"Records": [dict(record) for record in records]}


def stream_record(
    keys: Mapping[str, Any],
    *,
    new_image: Mapping[str, Any] | None = None,
    old_image: Mapping[str, Any] | None = None,
    event_name: str | None = None,
    sequence_number: str = "100000000000000000001",
    stream_arn: str = STREAM_ARN,
    created_at: int | None = None,
) -> dict[str, Any]:
    """One record of a DynamoDB Streams event (attribute values typed, ``{"S": ...}``), as Lambda delivers it.

    ``event_name`` defaults to what the images say: INSERT (new only), MODIFY (both), REMOVE (old only).
    """
    if event_name is None:
        event_name = "MODIFY" if new_image and old_image else "REMOVE" if old_image else "INSERT"
    view = "NEW_AND_OLD_IMAGES" if old_image is not None else "NEW_IMAGE"
    change: dict[str, Any] = {
        "ApproximateCreationDateTime": created_at if created_at is not None else int(time.time()),
        "Keys": dict(keys),
        "SequenceNumber": sequence_number,
        "SizeBytes": len(repr((keys, new_image, old_image)).encode()),
        "StreamViewType": view,
    }
    if new_image is not None:
        change["NewImage"] = dict(new_image)
    if old_image is not None:
        change["OldImage"] = dict(old_image)
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": _region_of(stream_arn),
        "dynamodb": change,
        "eventSourceARN": stream_arn,
    }


def lambda_stream_record(record: Mapping[str, Any], stream_arn: str = STREAM_ARN) -> dict[str, Any]:
    """A record as DynamoDB Streams' GetRecords returned it, as Lambda delivers it (its ARN set, epoch seconds)."""
    shaped: dict[str, Any] = {**record, "eventSourceARN": stream_arn, "eventSource": "aws:dynamodb"}
    change = dict(record.get("dynamodb") or {})
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    shaped["dynamodb"] = change
    return shaped


def stream_event(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A DynamoDB Streams event holding ``records`` (``stream_record``'s or ``lambda_stream_record``'s)."""
    return {"Records": [dict(record) for record in records]}


def unique_id(prefix: str, name: str) -> str:
    """A stable IAM unique id (``AIDA...``, ``AROA...``) for a user's or role's name."""
    digest = hashlib.sha256(name.encode()).hexdigest().upper()
    return prefix + "".join(c for c in digest if c.isalnum())[:17]


def iam_authorizer(arn: str, *, cognito_identity_id: str | None = None) -> dict[str, Any]:
    """``requestContext.authorizer.iam`` as API Gateway fills it for a caller with this ARN (every field).

    A user's ``userId`` is its unique id, an assumed role's ``AROA...:<session>`` (the role's
    unique id, then the session name), root's the account id. An ARN of another shape keeps a
    made-up user id derived from it.
    """
    match = _ARN.match(arn)
    account = match.group(1) if match else ACCOUNT
    if match and match.group(2):
        user_id = unique_id("AIDA", match.group(3))
    elif match and match.group(4):
        user_id = f"{unique_id('AROA', match.group(5))}:{match.group(6)}"
    elif match and match.group(7):
        user_id = account
    else:
        user_id = unique_id("AIDA", arn)
    cognito = None
    if cognito_identity_id is not None:
        cognito = {
            "amr": ["authenticated", "cognito-idp.eu-west-1.amazonaws.com/eu-west-1_EXAMPLE"],
            "identityId": cognito_identity_id,
            "identityPoolId": "eu-west-1:2f5f5a7c-4b1e-4d6a-9c3b-1e2f3a4b5c6d",
        }
    return {
        "accessKey": "ASIAIOSFODNN7EXAMPLE",
        "accountId": account,
        "callerId": user_id,
        "cognitoIdentity": cognito,
        "principalOrgId": "o-a1b2c3d4e5",
        "userArn": arn,
        "userId": user_id,
    }


def http_api_event(
    method: str,
    path: str,
    *,
    body: str | None = None,
    headers: Mapping[str, str] | None = None,
    b64: bool = False,
    stage: str = "$default",
    iam_arn: str | None = None,
    cognito_identity_id: str | None = None,
    jwt_claims: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event; ``iam_arn``/``jwt_claims`` as its authorizer filled them.

    ``iam_arn`` brings every field of the IAM authorizer (``iam_authorizer``), with
    ``cognito_identity_id`` for a Cognito identity pool's user.
    """
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": dict(headers or {}),
        "requestContext": {"http": {"method": method, "path": path}, "requestId": "req-1", "stage": stage},
        "body": body,
        "isBase64Encoded": b64,
    }
    authorizer: dict[str, Any] = {}
    if iam_arn is not None:
        authorizer["iam"] = iam_authorizer(iam_arn, cognito_identity_id=cognito_identity_id)
    if jwt_claims is not None:
        authorizer["jwt"] = {"claims": dict(jwt_claims), "scopes": None}
    if authorizer:
        event["requestContext"]["authorizer"] = authorizer
    return event


def _region_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else ""
