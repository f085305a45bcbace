"""The envelope (a message as its record holds it), the SQS body naming it, and the rules a new payload must meet."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from outbox.domain.envelope import (
    NOTIFICATION_TYPE,
    SCHEMA_VERSION,
    Envelope,
    _sqs_refused,
    message_id_of,
    new_envelope,
)
from outbox.domain.errors import MalformedEntryError, ValidationError
from outbox.domain.message import new_message_id
from outbox.notifications.notification import parse_notification

NOTIFICATION = parse_notification({"channel": "sms", "recipient": "+14155550100", "body": "héllo"})
AT = "2026-01-01T00:00:00.000Z"
TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def _new(payload: Any, **overrides: Any) -> Envelope:
    arguments: dict[str, Any] = {"type": "OrderPlaced", "message_id": new_message_id(), "created_at": AT}
    return new_envelope(payload, **(arguments | overrides))


def _problems(payload: Any, **overrides: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        _new(payload, **overrides)
    return {e.field: e.reason for e in caught.value.errors}


def test_the_body_names_the_message_alone_and_is_byte_identical() -> None:
    """Invariant 6 and 11: every copy's body is the same bytes, and carries the id and nothing a forger could use."""
    envelope = NOTIFICATION.envelope(message_id=new_message_id(), created_at=AT, trace_id=TRACE)
    body = envelope.body()
    assert json.loads(body) == {"message_id": envelope.message_id, "schema_version": SCHEMA_VERSION}
    assert body == NOTIFICATION.envelope(message_id=envelope.message_id, created_at="2030-01-01T00:00:00.000Z").body()
    assert message_id_of(body) == envelope.message_id
    data = json.loads(envelope.to_json())
    assert data["type"] == NOTIFICATION_TYPE
    assert set(data) == {"message_id", "type", "payload", "group_key", "created_at", "trace_id", "schema_version"}


def test_a_body_of_0_1_0_is_read_by_its_id_alone() -> None:
    """A copy 0.1.0 sent (the whole envelope, schema 2) still names its message; nothing else of it is read."""
    message_id = new_message_id()
    body = json.dumps(
        {"message_id": message_id, "schema_version": 2, "type": "X", "payload": "not even an object", "created_at": 1}
    )
    assert message_id_of(body) == message_id


def test_a_generic_payload_is_kept_exactly_as_given() -> None:
    """Any JSON object (nested, unicode, numbers, null) is the envelope's payload, equal to what went in."""
    payload = {"order_id": "o-1", "total": 42.5, "lines": [{"sku": "✓", "qty": 2}], "note": None, "big": 2**62}
    envelope = _new(payload, group_key="customer-7", trace_id=TRACE)
    read = json.loads(envelope.to_json())
    assert read["payload"] == payload
    assert (read["type"], read["group_key"], read["trace_id"], read["created_at"]) == (
        "OrderPlaced",
        "customer-7",
        TRACE,
        AT,
    )


def test_a_malformed_trace_is_dropped_never_refused() -> None:
    """A trace is a hint: a value that is no trace context makes a message without one, never a refusal."""
    for bad in ("t-1", "Root=1-xyz", "x" * 300, "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=nothex!"):
        assert _new({"a": 1}, trace_id=bad).trace_id is None


def test_the_payload_hash_covers_type_payload_and_group_key() -> None:
    """Two messages are the same message only with the same type, payload and group key."""
    base = _new({"a": 1})
    assert _new({"a": 1}).payload_hash() == base.payload_hash()
    for other in (_new({"a": 2}), _new({"a": 1}, type="Other"), _new({"a": 1}, group_key="g")):
        assert other.payload_hash() != base.payload_hash()


@pytest.mark.parametrize(
    ("payload", "where", "reason"),
    [
        ([1, 2], "payload", "must be a JSON object"),
        ("text", "payload", "must be a JSON object"),
        ({"x": float("nan")}, "payload.x", "is NaN or infinity"),
        ({"x": {1, 2}}, "payload.x", "is of type set, which has no JSON form: use a list"),
        ({"x": object()}, "payload.x", "is of type object, which has no JSON form"),
        ({1: "x"}, "payload", "has the key 1: object keys must be strings"),
        ({"x": (1, 2)}, "payload.x", "is of type tuple, which has no JSON form: use a list"),
        ({"items": [{}, {}, {}, {"price": Decimal("NaN")}]}, "payload.items[3].price", "is NaN or infinity"),
        ({"a b": {"c": [b"x"]}}, 'payload["a b"].c[0]', "is of type bytes"),
        ({"x": Decimal("0.1000000000000000055511151231257827")}, "payload.x", "pass it as a string"),
    ],
)
def test_a_payload_that_is_not_json_is_a_clear_error_naming_where(payload: Any, where: str, reason: str) -> None:
    """Non-JSON values are refused before anything is written, with where in the payload and why."""
    problems = _problems(payload)
    assert list(problems) == [where]
    assert reason in problems[where]


def test_decimals_become_the_exact_numbers_they_are() -> None:
    """What boto3's resource API and PynamoDB return: Decimals, delivered as the same numbers."""
    payload = {
        "total": Decimal("19.99"),
        "qty": Decimal("3"),
        "big": Decimal("12345678901234567890"),
        "n": [Decimal("-0.5")],
    }
    envelope = _new(payload)
    assert envelope.to_json().count('"total":19.99') == 1
    body = json.loads(envelope.to_json(), parse_float=Decimal)
    assert body["payload"] == {"total": Decimal("19.99"), "qty": 3, "big": 12345678901234567890, "n": [Decimal("-0.5")]}
    assert json.loads(envelope.to_json())["payload"] == json.loads(envelope.payload_json())
    assert (
        envelope.payload_hash()
        == _new({"total": 19.99, "qty": 3, "big": 12345678901234567890, "n": [-0.5]}).payload_hash()
    )


@pytest.mark.parametrize("text", ["\ud800", "\ufffe", "\uffff"])
def test_characters_sqs_refuses_are_a_clear_error(text: str) -> None:
    """A lone surrogate or a non-character would make SendMessage fail for ever: refused up front."""
    assert "SQS refuses" in _problems({"x": f"a{text}b"})["payload"]


# The characters SQS accepts in a message: #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF.
SQS_ALLOWED = ((0x9, 0x9), (0xA, 0xA), (0xD, 0xD), (0x20, 0xD7FF), (0xE000, 0xFFFD), (0x10000, 0x10FFFF))
EDGES = sorted({c for low, high in SQS_ALLOWED for c in (low - 1, low, high, high + 1) if 0 <= c <= 0x10FFFF})


@pytest.mark.parametrize("code", EDGES, ids=hex)
def test_the_refused_characters_are_all_sqs_does_not_allow(code: int) -> None:
    """At each edge of SQS's allowed ranges, a character is refused exactly when SQS does not allow it."""
    allowed = any(low <= code <= high for low, high in SQS_ALLOWED)
    assert (_sqs_refused().search(chr(code)) is None) is allowed


def test_control_characters_travel_escaped() -> None:
    """JSON escapes control characters, so SQS accepts them and the consumer gets them back."""
    envelope = _new({"x": "a\x00b\x1f"})
    assert json.loads(envelope.to_json())["payload"] == {"x": "a\x00b\x1f"}


def test_the_size_is_checked_against_the_queue_limit() -> None:
    """A message over the queue's size is refused, one within it is accepted."""
    _new({"x": "y" * 1000}, max_message_bytes=2000)
    assert "limit is 2000 bytes" in _problems({"x": "y" * 2000}, max_message_bytes=2000)["payload"]
    # A record is one DynamoDB item (400 KB): a 1 MiB queue does not lift that.
    assert "limit is 350000 bytes" in _problems({"x": "y" * 400_000}, max_message_bytes=1_048_576)["payload"]


def test_type_and_group_key_are_checked() -> None:
    """Type and group key are printable ASCII tokens of bounded length; every problem is listed."""
    problems = _problems({"x": 1}, type="has space", group_key="g" * 129)
    assert set(problems) == {"type", "group_key"}
    assert set(_problems({"x": 1}, type="")) == {"type"}


@pytest.mark.parametrize(
    ("body", "has_id"),
    [
        ("not json", False),
        ("[1]", False),
        ('{"message_id": "x"}', False),
        ("[" * 100_000, False),
        (json.dumps({"message_id": new_message_id(), "schema_version": 99}), True),
        # schema 1 (a notification-only envelope) was never written by a release
        (json.dumps({"message_id": new_message_id(), "schema_version": 1, "created_at": "t", "payload": {}}), True),
        (json.dumps({"message_id": new_message_id()}), True),
        (json.dumps({"message_id": new_message_id(), "schema_version": True}), True),
    ],
)
def test_malformed_bodies_raise_malformed_entry(body: str, has_id: bool) -> None:
    """A body naming no message in a format we write is MalformedEntryError, with the message_id when there is one."""
    with pytest.raises(MalformedEntryError) as caught:
        message_id_of(body)
    assert (caught.value.message_id is not None) is has_id
