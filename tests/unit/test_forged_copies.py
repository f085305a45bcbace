"""Forged and altered copies: a copy names its message, and what is delivered is what the record holds."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
import structlog

from outbox.domain.envelope import Envelope
from outbox.domain.errors import DeliveryError
from outbox.domain.keys import iso, utc_now
from outbox.domain.message import new_message_id
from outbox.domain.record import Lease
from outbox.domain.status import Status
from outbox.logs import configure_logging
from outbox.notifications.notification import parse_notification
from outbox.service.consume import MAX_REASON_CHARS, Consumer, safe_reason
from outbox.testing import FakeVisibility, InMemoryMessageStore

NOTE = parse_notification({"channel": "sms", "recipient": "+14155550100", "body": "hi"})
FORGED_TRACE = "Root=1-00000000-000000000000000000000bad;Parent=000000000000dead;Sampled=1"


def _accept(store: InMemoryMessageStore) -> Envelope:
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    envelope = NOTE.envelope(message_id=new_message_id(), created_at=iso(utc_now()), trace_id=trace)
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
        {"created_at": "1999-01-01T00:00:00.000Z", "trace_id": FORGED_TRACE},
        {"schema_version": 2},
    ],
    ids=["payload", "type", "group_key", "created_at-trace_id", "0.1.0-body"],
)
def test_a_forged_copy_delivers_what_the_record_holds_once(change: dict[str, Any]) -> None:
    """Invariant 11: whatever a body says beside the id, the record is delivered; the real copy is then a duplicate."""
    store = InMemoryMessageStore()
    envelope = _accept(store)
    delivered: list[Envelope] = []
    consumer = Consumer(store, delivered.append, visibility=FakeVisibility())
    assert consumer.handle(_event(_altered(envelope, **change))) == {"batchItemFailures": []}
    assert delivered == [envelope]
    assert store.records[envelope.message_id].status is Status.COMPLETED
    # AND the genuine copy that follows is a duplicate: delivered once in all
    assert consumer.handle(_event(envelope.body(), "copy-2")) == {"batchItemFailures": []}
    assert delivered == [envelope]
    assert consumer.stats["duplicates"] == 1


def test_a_forged_copy_starts_only_what_the_lifecycle_allows() -> None:
    """A copy naming a live lease's message waits for the lease; one naming a COMPLETED message changes nothing."""
    store = InMemoryMessageStore()
    envelope = _accept(store)
    live = iso(utc_now() + timedelta(minutes=5))
    store.transition(envelope.message_id, Status.PROCESSING, by="consumer", lease=Lease("holder", live))
    held = store.records[envelope.message_id]
    delivered: list[Envelope] = []
    visibility = FakeVisibility()
    consumer = Consumer(store, delivered.append, visibility=visibility)
    assert consumer.handle(_event(_altered(envelope, payload={"x": 1}))) == {
        "batchItemFailures": [{"itemIdentifier": "copy-1"}]
    }
    assert (delivered, store.records[envelope.message_id]) == ([], held)
    store.transition(envelope.message_id, Status.COMPLETED, by="consumer", lease=Lease("holder", live))
    ended = store.records[envelope.message_id]
    assert consumer.handle(_event(envelope.body(), "copy-2")) == {"batchItemFailures": []}
    assert (delivered, store.records[envelope.message_id]) == ([], ended)


def test_the_in_memory_store_returns_the_record_with_a_lease_like_the_real_one() -> None:
    """A move to PROCESSING under a lease answers with the record; any other move with none."""
    store = InMemoryMessageStore()
    envelope = _accept(store)
    lease = Lease("c", iso(utc_now() + timedelta(minutes=1)))
    started = store.transition(envelope.message_id, Status.PROCESSING, by="c", lease=lease)
    assert started.record is not None
    assert started.record.envelope() == envelope
    assert store.transition(envelope.message_id, Status.COMPLETED, by="c", lease=lease).record is None


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


def test_a_copys_lines_carry_its_trace_and_the_delivery_the_records() -> None:
    """Issue 26: before the lease write a copy's lines carry its AWSTraceHeader; the delivery's, the record's."""
    store = InMemoryMessageStore()
    envelope = _accept(store)
    seen: list[object] = []

    def deliver(_: Envelope) -> None:
        seen.append(structlog.contextvars.get_contextvars().get("trace_id"))

    event = _event(envelope.body())
    event["Records"][0]["attributes"]["AWSTraceHeader"] = FORGED_TRACE
    logs = io.StringIO()
    configure_logging(logs)
    Consumer(store, deliver).handle(event)  # delivered: the record's trace, whatever the copy's says
    event["Records"][0]["attributes"]["AWSTraceHeader"] = "not a trace"
    Consumer(store, deliver).handle(event)  # a duplicate now, logged before any record is read
    event["Records"][0]["attributes"]["AWSTraceHeader"] = FORGED_TRACE
    Consumer(store, deliver).handle(event)
    assert seen == [envelope.trace_id]
    dropped = [json.loads(line) for line in logs.getvalue().splitlines() if "duplicate_dropped" in line]
    assert [line.get("trace_id") for line in dropped] == [None, FORGED_TRACE]
    assert "trace_id" not in structlog.contextvars.get_contextvars()
