"""Personal data kept short: an ended record carries the table's TTL attribute, a live one never does."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from outbox.adapters.store import DynamoDBMessageStore
from outbox.compose import Clients, message_store
from outbox.domain.keys import iso, utc_now
from outbox.domain.message import new_message_id
from outbox.domain.status import Status
from outbox.notifications.notification import parse_notification
from outbox.settings import Settings
from outbox.testing import InMemoryMessageStore
from tests.integration.conftest import Stack

NOTE = parse_notification({"channel": "sms", "recipient": "+14155550100", "body": "hi"})
DAY = 86_400


def _accept(store: DynamoDBMessageStore | InMemoryMessageStore) -> str:
    envelope = NOTE.envelope(message_id=new_message_id(), created_at=iso(utc_now()))
    store.accept(envelope, idempotency_key=None)
    return envelope.message_id


def _expires(stack: Stack, message_id: str) -> int | None:
    item = stack.raw_item(f"MSG#{message_id}", "MSG")
    assert item is not None
    return int(item["expires_at"]["N"]) if "expires_at" in item else None


@pytest.mark.parametrize("end", [Status.COMPLETED, Status.FAILED])
def test_an_ended_record_expires_and_a_redriven_one_no_longer_does(stack: Stack, end: Status) -> None:
    """expires_at is set by the terminal UpdateItem (retention from now) and removed by any other move."""
    store = DynamoDBMessageStore(stack.layout, stack.dynamodb, record_retention=timedelta(days=3))
    message_id = _accept(store)
    assert _expires(stack, message_id) is None
    store.transition(message_id, Status.QUEUED, by="worker")
    store.transition(message_id, Status.PROCESSING, by="consumer")
    assert _expires(stack, message_id) is None
    store.transition(message_id, end, by="consumer", reason="r" if end is Status.FAILED else None)
    expires = _expires(stack, message_id)
    assert expires is not None
    assert abs(expires - (time.time() + 3 * DAY)) < 120
    assert store.get(message_id).expires_at == expires
    if end is Status.FAILED:  # a re-drive makes it live again: no TTL while it is
        store.transition(message_id, Status.QUEUED, by="replay", expected=frozenset({Status.FAILED}))
        assert _expires(stack, message_id) is None
        assert store.get(message_id).expires_at is None


def test_the_in_memory_store_sets_and_clears_it_the_same_way() -> None:
    """InMemoryMessageStore keeps the same rule."""
    store = InMemoryMessageStore(record_retention=timedelta(days=2))
    message_id = _accept(store)
    store.transition(message_id, Status.QUEUED, by="worker")
    store.transition(message_id, Status.PROCESSING, by="consumer")
    assert store.records[message_id].expires_at is None
    store.transition(message_id, Status.FAILED, by="consumer", reason="x")
    expires = store.records[message_id].expires_at
    assert expires is not None
    assert abs(expires - (time.time() + 2 * DAY)) < 120
    store.transition(message_id, Status.QUEUED, by="replay", expected=frozenset({Status.FAILED}))
    assert store.records[message_id].expires_at is None


def test_the_retention_is_a_setting_of_30_days_by_default() -> None:
    """OUTBOX_RECORD_RETENTION_DAYS, a positive whole number."""
    assert Settings.from_env({"OUTBOX_TABLE_NAME": "t"}).record_retention == timedelta(days=30)
    settings = Settings.from_env({"OUTBOX_TABLE_NAME": "t", "OUTBOX_RECORD_RETENTION_DAYS": "7"})
    assert settings.record_retention == timedelta(days=7)
    assert message_store(settings, Clients()).record_retention == timedelta(days=7)
