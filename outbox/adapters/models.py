"""PynamoDB models of the one table, made from the items' one description (``outbox/domain/items.py``).

The store writes and reads its items by hand from that description; these models exist for a
caller's own PynamoDB ``TransactWrite`` (``Outbox.add_to``), which takes model instances, and are
made from the very items the store built. All I/O goes through the store's own client, never
through PynamoDB's connection. The CreateTable definition needs no PynamoDB: it is here beside
the models because both describe the table.
"""

from __future__ import annotations

from functools import cache
from typing import Any, NamedTuple

from pynamodb.attributes import (
    Attribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.models import Model

from outbox.domain import items
from outbox.domain.items import ENTRY, HISTORY_LINE, HISTORY_OPTIONAL, RECORD, TTL_ATTRIBUTE, ItemShape, Kind
from outbox.domain.layout import DEFAULT_HASH_KEY, DEFAULT_RANGE_KEY, RECORD_INDEX, TableLayout

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

HASH_KEY, RANGE_KEY = DEFAULT_HASH_KEY, DEFAULT_RANGE_KEY
RECORD_INDEX_KEYS = (items.INDEX_PK, items.INDEX_SK)
STREAM_VIEW_TYPE = "NEW_IMAGE"
BILLING_MODE = "PAY_PER_REQUEST"


# One audit line: ``{status, at, by, reason?}``, as the record's description has it.
HistoryAttribute: Any = type(
    "HistoryAttribute",
    (MapAttribute,),
    {
        "__doc__": "One audit line: ``{status, at, by, reason?}``.",
        "__module__": __name__,
        **{name: UnicodeAttribute(null=name in HISTORY_OPTIONAL) for name in HISTORY_LINE},
    },
)


def _attribute(attribute: items.Attribute) -> Attribute[Any]:
    """The PynamoDB attribute of a described one; an entry's TTL (always there) reads as a datetime."""
    null = not attribute.required
    if attribute.kind is Kind.TEXT:
        return UnicodeAttribute(null=null)
    if attribute.kind is Kind.HISTORY:
        return ListAttribute(of=HistoryAttribute, null=null)
    if attribute.name == TTL_ATTRIBUTE and attribute.required:
        return TTLAttribute()
    return NumberAttribute(null=null)


def _model(name: str, shape: ItemShape, doc: str) -> Any:
    """A Model class with the table's default key names and every attribute ``shape`` describes."""
    meta = type("Meta", (), {"table_name": "outbox"})
    keys = {
        "pk": UnicodeAttribute(hash_key=True, attr_name=DEFAULT_HASH_KEY),
        "sk": UnicodeAttribute(range_key=True, attr_name=DEFAULT_RANGE_KEY),
    }
    attributes = {a.name: _attribute(a) for a in shape.attributes}
    return type(name, (Model,), {"__doc__": doc, "__module__": __name__, "Meta": meta, **keys, **attributes})


MessageRecordModel = _model(
    "MessageRecordModel", RECORD, "``MSG#<id>`` / ``MSG``: the message, its status and history."
)
OutboxEntryModel = _model(
    "OutboxEntryModel",
    ENTRY,
    "``OUTBOX#<bucket>`` / ``<created_at>#<write_seq>#<id>``: the envelope as it will be sent.",
)


class TableModels(NamedTuple):
    """The two models bound to one table's name and key names."""

    record: Any
    entry: Any


def _bind(model: Any, layout: TableLayout) -> Any:
    meta = type("Meta", (), {"table_name": layout.table_name, "region": "us-east-1"})
    keys = {
        "pk": UnicodeAttribute(hash_key=True, attr_name=layout.hash_key),
        "sk": UnicodeAttribute(range_key=True, attr_name=layout.range_key),
    }
    return type(f"{model.__name__}_{layout.table_name}", (model,), {"Meta": meta, **keys})


@cache
def bind_models(layout: TableLayout) -> TableModels:
    """Both models bound to the layout's table and key names (cached: one class pair per table)."""
    return TableModels(_bind(MessageRecordModel, layout), _bind(OutboxEntryModel, layout))


def table_definition(layout: TableLayout) -> dict[str, Any]:
    """The CreateTable request for the layout's table: string keys, the stream, the record index."""
    keys = (layout.hash_key, layout.range_key, *layout.record_index_keys)
    return {
        "TableName": layout.table_name,
        "AttributeDefinitions": [{"AttributeName": name, "AttributeType": "S"} for name in keys],
        "KeySchema": [
            {"AttributeName": layout.hash_key, "KeyType": "HASH"},
            {"AttributeName": layout.range_key, "KeyType": "RANGE"},
        ],
        "BillingMode": BILLING_MODE,
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": STREAM_VIEW_TYPE},
        "GlobalSecondaryIndexes": [record_index_definition(layout)],
    }


def record_index_definition(layout: TableLayout) -> dict[str, Any]:
    """The record index of CreateTable (or of UpdateTable's Create, for a table made before it)."""
    hash_name, range_name = layout.record_index_keys
    return {
        "IndexName": layout.record_index,
        "KeySchema": [
            {"AttributeName": hash_name, "KeyType": "HASH"},
            {"AttributeName": range_name, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }
