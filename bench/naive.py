"""The baselines the benchmarks compare against: what most outbox relays and notification APIs do."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from outbox.adapters.store import DynamoDBMessageStore
from outbox.domain.envelope import Envelope
from outbox.domain.errors import InvalidTransitionError
from outbox.domain.keys import RECORD_SK, iso, record_pk, utc_now
from outbox.domain.status import Status


class NaiveRelay:
    """Per stream record, sequentially: one SendMessage, then one UpdateItem."""

    def __init__(self, store: DynamoDBMessageStore, sqs: Any, queue_url: str) -> None:
        self.store = store
        self.sqs = sqs
        self.queue_url = queue_url

    def handle(self, event: Mapping[str, Any]) -> None:
        """Relay every outbox INSERT of a Lambda stream event."""
        for record in event["Records"]:
            image = record["dynamodb"].get("NewImage", {})
            if record.get("eventName") != "INSERT" or "envelope" not in image:
                continue
            body = image["envelope"]["S"]
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)
            with contextlib.suppress(InvalidTransitionError):
                self.store.transition(json.loads(body)["message_id"], Status.QUEUED, by="naive")


class FlipsOnly:
    """Not a relay: only the flips, one conditional UpdateItem per record, sequentially, no SQS at all.

    Every relay that flips each message once pays at least this on a backend where requests cost
    CPU and not waiting (moto in process): the ceiling of ours / naive there is naive / this.
    """

    def __init__(self, store: DynamoDBMessageStore) -> None:
        self.store = store

    def handle(self, event: Mapping[str, Any]) -> None:
        """Flip the record of every outbox INSERT of a Lambda stream event."""
        for record in event["Records"]:
            image = record["dynamodb"].get("NewImage", {})
            if record.get("eventName") == "INSERT" and "message_id" in image:
                self.store.transition(
                    image["message_id"]["S"], Status.QUEUED, by="ceiling", expected=frozenset({Status.PENDING})
                )


class NaiveApi:
    """A seed-style synchronous API: PutItem the record, SendMessage, UpdateItem to QUEUED (three requests)."""

    def __init__(self, store: DynamoDBMessageStore, sqs: Any, queue_url: str) -> None:
        self.store = store
        self.sqs = sqs
        self.queue_url = queue_url

    def accept(self, envelope: Envelope) -> None:
        """Accept one message the way a system without an outbox does (and can lose it between calls)."""
        item = _record_item(envelope, self.store.layout.hash_key, self.store.layout.range_key)
        self.store.client.put_item(TableName=self.store.table_name, Item=item)
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=envelope.to_json())
        self.store.transition(envelope.message_id, Status.QUEUED, by="naive")


def _record_item(envelope: Envelope, hash_key: str, range_key: str) -> dict[str, Any]:
    message_id, now = envelope.message_id, iso(utc_now())
    history = [{"M": {"status": {"S": "PENDING"}, "at": {"S": now}, "by": {"S": "naive"}}}]
    return {
        hash_key: {"S": record_pk(message_id)},
        range_key: {"S": RECORD_SK},
        "message_id": {"S": message_id},
        "status": {"S": "PENDING"},
        "type": {"S": envelope.type},
        "payload": {"S": envelope.payload_json()},
        "payload_hash": {"S": envelope.payload_hash()},
        "outbox_pk": {"S": "-"},
        "outbox_sk": {"S": "-"},
        "created_at": {"S": now},
        "updated_at": {"S": now},
        "history": {"L": history},
        "attempts": {"N": "0"},
    }


def item_size(item: Mapping[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (numbers ~ digits/2 + 1, +3 per list/map element)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: Mapping[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return len(str(inner).strip("-").replace(".", "")) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in inner.items())
    return sum(len(str(v)) for v in inner) if isinstance(inner, Sequence) else len(str(inner))
