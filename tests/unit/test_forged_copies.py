"""Forged and altered copies: checked against their record in the start condition, dropped, nothing changed."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any

import pytest

from outbox.domain.envelope import Envelope
from outbox.domain.errors import DeliveryError, PayloadMismatchError
from outbox.domain.message import new_message_id
from outbox.domain.record import Lease, iso, utc_now
from outbox.domain.status import Status
from outbox.logs import configure_logging
from outbox.notifications.notification import parse_notification
from outbox.service.consume import MAX_REASON_CHARS, Consumer, safe_reason
from outbox.testing import FakeVisibility, InMemoryMessageStore

NOTE = parse_notification({"channel": "sms", "recipient": "+14155550100", "body": "hi"})


def _accept(store: InMemoryMessageStore) -> Envelope:
    envelope = NOTE.envelope(message_id=new_message_id(), created_at=iso(utc_now()))
    store.accept(envelope, idempotency_key=None)
    return envelope


def _event(body: str, sqs_id: str = "copy-1") -> dict[str, Any]:
    record = {"messageId": sqs_id, "body": body, "attributes": {"ApproximateReceiveCount": "1"}, "receiptHandle": "rh"}
    return {"Records": [record]}


def _altered(envelope: Envelope, **change: Any) -> str:
    data = json.loads(envelope.to_json())
    data.update(change)
    return json.dumps(data)


@pytest.mark.parametrize(
    "change",
    [
        {"payload": {"channel": "sms", "recipient": "+14155550199", "body": "SECRET-TEXT"}},
        {"type": "SomethingElse"},
        {"group_key": "other-group"},
    ],
    ids=["payload", "type", "group_key"],
)
def test_a_forged_copy_changes_no_record_is_acknowledged_and_logged_without_content(change: dict[str, Any]) -> None:
    """Another payload, type or group under a real id: not delivered, no status change, no retry."""
    store = InMemoryMessageStore()
    envelope = _accept(store)
    before = store.records[envelope.message_id]
    delivered: list[Envelope] = []
    visibility = FakeVisibility()
    consumer = Consumer(store, delivered.append, visibility=visibility)
    logs = io.StringIO()
    configure_logging(logs)
    response = consumer.handle(_event(_altered(envelope, **change)))
    assert response == {"batchItemFailures": []}
    assert delivered == []
    assert visibility.delays == []
    assert store.records[envelope.message_id] == before
    assert consumer.stats["forged"] == 1
    written = logs.getvalue()
    assert "forged_copy_dropped" in written
    assert "SECRET-TEXT" not in written
    assert "+14155550199" not in written
    # AND the real copy still delivers, its one attempt intact
    assert consumer.handle(_event(envelope.to_json(), "copy-2")) == {"batchItemFailures": []}
    assert [e.message_id for e in delivered] == [envelope.message_id]
    assert store.records[envelope.message_id].status is Status.COMPLETED
    assert store.records[envelope.message_id].attempts == 1


def test_a_forged_copy_does_not_take_over_an_expired_lease_nor_finish_the_message() -> None:
    """Even where the status would admit it (an expired PROCESSING), the hash refuses."""
    store = InMemoryMessageStore()
    envelope = _accept(store)
    expired = iso(utc_now().replace(year=2000))
    store.transition(envelope.message_id, Status.PROCESSING, by="consumer", lease=Lease("dead", expired))
    before = store.records[envelope.message_id]
    forged = _altered(envelope, payload={"channel": "sms", "recipient": "+14155550100", "body": "other"})
    Consumer(store).handle(_event(forged))
    assert store.records[envelope.message_id] == before


def test_the_in_memory_store_refuses_a_wrong_hash_like_the_real_one() -> None:
    """PayloadMismatchError, before any status change, also for a record that could not move anyway."""
    store = InMemoryMessageStore()
    envelope = _accept(store)
    with pytest.raises(PayloadMismatchError):
        store.transition(envelope.message_id, Status.PROCESSING, by="c", payload_hash="0" * 64)
    store.transition(envelope.message_id, Status.PROCESSING, by="c", payload_hash=envelope.payload_hash())
    assert store.records[envelope.message_id].status is Status.PROCESSING
    completed = replace(store.records[envelope.message_id], status=Status.COMPLETED)
    store.records[envelope.message_id] = completed
    with pytest.raises(PayloadMismatchError):
        store.transition(envelope.message_id, Status.PROCESSING, by="c", payload_hash="0" * 64)


def test_a_delivery_errors_detail_is_stored_capped_clean_and_without_payload_text() -> None:
    """The FAILED reason GET serves: at most 256 characters, no control characters, no payload text."""
    store = InMemoryMessageStore()
    envelope = _accept(store)

    def deliver(e: Envelope) -> None:
        raise DeliveryError(f"gateway said\x00\n\u2028 no to {e.payload['recipient']}: " + "x" * 1000, retryable=False)

    Consumer(store, deliver).handle(_event(envelope.to_json()))
    record = store.records[envelope.message_id]
    assert record.status is Status.FAILED
    assert record.reason is not None
    assert len(record.reason) <= MAX_REASON_CHARS
    assert "+14155550100" not in record.reason
    assert not any(ch in record.reason for ch in "\x00\n\u2028")
    assert record.reason.startswith("delivery failed: gateway said no to [payload]: xxx")
    assert record.history[-1].reason == record.reason


@pytest.mark.parametrize("detail", ["\ud800", "a\ufffeb", "\uffff" * 300, "é" * 10, ""])
def test_safe_reason_holds_nothing_sqs_or_a_terminal_would_choke_on(detail: str) -> None:
    """Lone surrogates and non-characters become spaces; the result encodes as UTF-8 and fits."""
    reason = safe_reason(detail)
    reason.encode("utf-8")
    assert len(reason) <= MAX_REASON_CHARS
    assert "\ufffe" not in reason
