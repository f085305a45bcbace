"""The envelope every copy of a message carries."""

from __future__ import annotations

import json

import pytest

from outbox.domain.envelope import Envelope
from outbox.domain.errors import MalformedEntryError
from outbox.domain.message import new_message_id, parse_notification

NOTIFICATION = parse_notification({"channel": "sms", "recipient": "+14155550100", "body": "héllo"})


def test_round_trip_is_byte_identical() -> None:
    """Invariant 6 (dedupable): serialising the same envelope twice gives the same bytes, with the message_id."""
    envelope = Envelope(new_message_id(), NOTIFICATION, "2026-01-01T00:00:00.000Z", "trace-1")
    body = envelope.to_json()
    assert Envelope.from_json(body) == envelope
    assert Envelope.from_json(body).to_json() == body
    assert json.loads(body)["schema_version"] == 1


@pytest.mark.parametrize(
    ("body", "has_id"),
    [
        ("not json", False),
        ("[1]", False),
        ('{"message_id": "x"}', False),
        ("[" * 100_000, False),
        (json.dumps({"message_id": new_message_id(), "schema_version": 99}), True),
        (json.dumps({"message_id": new_message_id(), "schema_version": 1, "created_at": "t", "payload": {}}), True),
    ],
)
def test_malformed_bodies_raise_malformed_entry(body: str, has_id: bool) -> None:
    """A body that is not a valid envelope is MalformedEntryError, carrying the message_id when there is one."""
    with pytest.raises(MalformedEntryError) as caught:
        Envelope.from_json(body)
    assert (caught.value.message_id is not None) is has_id
