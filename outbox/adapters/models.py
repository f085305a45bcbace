"""PynamoDB models of the one table: message records and outbox entries share its key schema.

The models declare the schema and build expressions; all I/O goes through the store's own
boto3 client (injectable, countable), never through PynamoDB's connection.
"""

from __future__ import annotations

from functools import cache
from typing import Any, NamedTuple

from pynamodb.attributes import (
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.models import Model

from outbox.adapters.schema import HASH_KEY, RANGE_KEY, RECORD_INDEX, RECORD_INDEX_KEYS, TTL_ATTRIBUTE, check_key_names

__all__ = [
    "BILLING_MODE",
    "HASH_KEY",
    "RANGE_KEY",
    "RECORD_INDEX",
    "RECORD_INDEX_KEYS",
    "STREAM_VIEW_TYPE",
    "TTL_ATTRIBUTE",
    "HistoryAttribute",
    "MessageRecordModel",
    "OutboxEntryModel",
    "TableModels",
    "bind_models",
    "record_index_definition",
    "table_definition",
]

STREAM_VIEW_TYPE = "NEW_IMAGE"
BILLING_MODE = "PAY_PER_REQUEST"


class HistoryAttribute(MapAttribute[str, Any]):
    """One audit line: ``{status, at, by, reason?}``."""

    status = UnicodeAttribute()
    at = UnicodeAttribute()
    by = UnicodeAttribute()
    reason = UnicodeAttribute(null=True)


class MessageRecordModel(Model):
    """``MSG#<id>`` / ``MSG``: the message, its status and its history."""

    class Meta:
        table_name = "outbox"

    pk = UnicodeAttribute(hash_key=True, attr_name=HASH_KEY)
    sk = UnicodeAttribute(range_key=True, attr_name=RANGE_KEY)
    message_id = UnicodeAttribute()
    status = UnicodeAttribute()
    type = UnicodeAttribute()
    payload = UnicodeAttribute()  # canonical JSON of the payload
    payload_hash = UnicodeAttribute()
    idempotency_key = UnicodeAttribute(null=True)
    owner = UnicodeAttribute(null=True)  # HMAC of the writer's principal under the id secret (never the principal)
    group_key = UnicodeAttribute(null=True)
    trace_id = UnicodeAttribute(null=True)  # the writer's trace context, an X-Ray trace header
    outbox_pk = UnicodeAttribute(null=True)  # the record index's keys: until the record ends
    outbox_sk = UnicodeAttribute(null=True)
    # Its place in its writer's order, kept for good: replay finds the entry by it (none before 0.2).
    write_seq = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    history = ListAttribute(of=HistoryAttribute)
    attempts = NumberAttribute(default=0)
    relay_attempts = NumberAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    lease_owner = UnicodeAttribute(null=True)  # while PROCESSING: the consumer holding the message
    lease_until = UnicodeAttribute(null=True)  # ... and until when (ISO time)
    expires_at = NumberAttribute(null=True)  # COMPLETED or FAILED: the table's TTL removes it then (epoch s)
    send_generation = NumberAttribute(null=True)  # deliberate re-sends so far (absent: none)
    sent_at = UnicodeAttribute(null=True)  # when SQS accepted the sweeper's last re-send of it in flight
    ended_lease_owner = UnicodeAttribute(null=True)  # ended under a lease: its owner (a retried end knows its own)


class OutboxEntryModel(Model):
    """``OUTBOX#<bucket>`` / ``<created_at>#<write_seq>#<id>``: the SQS body exactly as it will be sent, its trace."""

    class Meta:
        table_name = "outbox"

    pk = UnicodeAttribute(hash_key=True, attr_name=HASH_KEY)
    sk = UnicodeAttribute(range_key=True, attr_name=RANGE_KEY)
    message_id = UnicodeAttribute()
    group_key = UnicodeAttribute(null=True)
    envelope = UnicodeAttribute()  # the SQS body (``Envelope.body``: the id alone; 0.1.0 wrote the whole envelope)
    trace_id = UnicodeAttribute(null=True)  # sent as the copy's AWSTraceHeader
    created_at = UnicodeAttribute()
    expires_at = TTLAttribute()


class TableModels(NamedTuple):
    """The two models bound to one table name."""

    record: type[MessageRecordModel]
    entry: type[OutboxEntryModel]


def _bind(model: type[Model], table_name: str, hash_key: str, range_key: str) -> Any:
    meta = type("Meta", (), {"table_name": table_name, "region": "us-east-1"})
    keys = {
        "pk": UnicodeAttribute(hash_key=True, attr_name=hash_key),
        "sk": UnicodeAttribute(range_key=True, attr_name=range_key),
    }
    return type(f"{model.__name__}_{table_name}", (model,), {"Meta": meta, **keys})


@cache
def bind_models(table_name: str, hash_key: str = HASH_KEY, range_key: str = RANGE_KEY) -> TableModels:
    """Both models bound to ``table_name`` and its key attribute names (cached: one class pair per table)."""
    check_key_names(hash_key, range_key)
    return TableModels(
        _bind(MessageRecordModel, table_name, hash_key, range_key),
        _bind(OutboxEntryModel, table_name, hash_key, range_key),
    )


def table_definition(table_name: str, hash_key: str = HASH_KEY, range_key: str = RANGE_KEY) -> dict[str, Any]:
    """The CreateTable request for the table, from the models' own schema."""
    schema = bind_models(table_name, hash_key, range_key).record._get_schema()
    index_keys = [{"AttributeName": name, "AttributeType": "S"} for name in RECORD_INDEX_KEYS]
    return {
        "TableName": table_name,
        "AttributeDefinitions": [*schema["attribute_definitions"], *index_keys],
        "KeySchema": schema["key_schema"],
        "BillingMode": BILLING_MODE,
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": STREAM_VIEW_TYPE},
        "GlobalSecondaryIndexes": [record_index_definition()],
    }


def record_index_definition() -> dict[str, Any]:
    """The record index of CreateTable (or of UpdateTable's Create, for a table made before it)."""
    hash_name, range_name = RECORD_INDEX_KEYS
    return {
        "IndexName": RECORD_INDEX,
        "KeySchema": [
            {"AttributeName": hash_name, "KeyType": "HASH"},
            {"AttributeName": range_name, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }
