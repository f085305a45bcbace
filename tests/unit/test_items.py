"""One description of the items: the hand-built requests, the PynamoDB models and the status writes agree with it."""

from __future__ import annotations

from itertools import product
from typing import Any

import pytest

from outbox.adapters.models import bind_models
from outbox.adapters.store import DynamoDBMessageStore
from outbox.adapters.updates import generation_shape, relay_failure_shape, release_shape, resent_shape, transition_shape
from outbox.domain.envelope import new_envelope
from outbox.domain.items import ENTRY, RECORD, Kind
from outbox.domain.keys import iso, utc_now
from outbox.domain.layout import TableLayout
from outbox.domain.message import new_message_id
from outbox.domain.status import Status, sources_of

LAYOUT = TableLayout("orders", "PK", "SK", buckets=4)


def _prepared(**envelope: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    store = DynamoDBMessageStore(LAYOUT, object())  # type: ignore[arg-type]
    fields = {"group_key": "g-1", "trace_id": "t-1"} | envelope
    new = new_envelope({"n": 1}, type="OrderPlaced", message_id=new_message_id(), created_at=iso(utc_now()), **fields)
    message = store.prepare(new, idempotency_key="k-1", by="api", owner="o-1")
    record, entry = (item["Put"]["Item"] for item in message.transact_items[:2])
    return record, entry


@pytest.mark.parametrize("envelope", [{}, {"group_key": None, "trace_id": None}], ids=["grouped", "bare"])
def test_the_pynamodb_models_write_the_items_the_store_builds_by_hand(envelope: dict[str, Any]) -> None:
    """A caller's TransactWrite (the models) and a TransactWriteItems (by hand) write the very same two items."""
    record, entry = _prepared(**envelope)
    models = bind_models(LAYOUT)
    for model, item in ((models.record, record), (models.entry, entry)):
        instance = model.from_raw_data(item)
        assert instance.serialize() == item  # same attributes, same types, nothing added or lost


def test_every_attribute_a_message_is_written_with_is_described() -> None:
    """The Puts hold only the key and described attributes, each of its described type; all required ones are there."""
    record, entry = _prepared()
    for shape, item in ((RECORD, record), (ENTRY, entry)):
        attributes = {k: v for k, v in item.items() if k not in (LAYOUT.hash_key, LAYOUT.range_key)}
        assert set(attributes) <= set(shape.names)
        assert all(next(iter(value)) == shape[name].kind.value for name, value in attributes.items())
        assert shape.read(item)[1] == []  # no attribute missing or mistyped
    assert {a.name for a in RECORD.attributes if a.required} <= set(record)


def test_a_described_item_reads_back_what_was_written() -> None:
    """decode(encode(values)) is the values: text, whole numbers and history lines round-trip."""
    values = {
        "message_id": "m",
        "status": "PENDING",
        "type": "OrderPlaced",
        "payload": "{}",
        "payload_hash": "h",
        "created_at": "2026-01-01T00:00:00.000Z",
        "updated_at": "2026-01-01T00:00:00.000Z",
        "history": [
            {"status": "PENDING", "at": "t", "by": "api"},
            {"status": "FAILED", "at": "u", "by": "c", "reason": "r"},
        ],
        "attempts": 3,
    }
    assert RECORD.decode(RECORD.encode(values)) == values


def test_a_gap_or_a_stranger_is_refused_when_an_item_is_built() -> None:
    """Encode names a missing required attribute, and an attribute the item does not have."""
    with pytest.raises(KeyError, match="needs envelope"):
        ENTRY.encode({"message_id": "m", "created_at": "t", "expires_at": 1})
    with pytest.raises(KeyError, match="no attribute 'colour'"):
        ENTRY.encode({"colour": "red"})


def _shapes() -> list[Any]:
    """Every kind of status write the store sends."""
    hash_key = LAYOUT.hash_key
    shapes = [release_shape(hash_key), relay_failure_shape(hash_key), resent_shape(hash_key)]
    statuses = frozenset(Status)
    shapes += [generation_shape(hash_key, statuses, seen=seen) for seen in (None, 0, 2)]
    edges = [(to, sources_of(to)) for to in Status if sources_of(to)]
    for (to, sources), reason, leased in product(edges, *[(False, True)] * 2):
        shapes.append(transition_shape(hash_key, to, sources, with_reason=reason, leased=leased))
    return shapes


def test_the_status_writes_name_only_described_attributes() -> None:
    """Each attribute an UpdateItem sets, removes or checks is the table's key or one of the record's described ones."""
    for shape in _shapes():
        for name in shape.names.values():
            assert name == LAYOUT.hash_key or name in RECORD, f"{name} is not described in domain/items.py"


def test_the_history_line_and_the_time_to_live_are_described_once() -> None:
    """The record's history is the one list attribute; the TTL the layout names is a number on both items."""
    assert [a.name for a in RECORD.attributes if a.kind is Kind.HISTORY] == ["history"]
    assert RECORD[LAYOUT.ttl_attribute].kind is ENTRY[LAYOUT.ttl_attribute].kind is Kind.NUMBER
    assert set(LAYOUT.record_index_keys) <= set(RECORD.names)
