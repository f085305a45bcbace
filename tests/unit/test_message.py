"""Validation of notifications: exact field-level reasons, nothing echoed back."""

from __future__ import annotations

from typing import Any

import pytest

from outbox.domain.errors import ConfigurationError, FieldError, ValidationError
from outbox.domain.message import IdKey, is_message_id, new_message_id, validate_idempotency_key
from outbox.notifications.notification import Channel, parse_notification


def _errors(data: Any) -> set[FieldError]:
    with pytest.raises(ValidationError) as caught:
        parse_notification(data)
    return set(caught.value.errors)


@pytest.mark.parametrize(
    ("data", "channel"),
    [
        ({"channel": "email", "recipient": "a.b+c@mail.example.co.uk", "subject": "S", "body": "B"}, Channel.EMAIL),
        ({"channel": "sms", "recipient": "+447700900123", "body": "B"}, Channel.SMS),
        ({"channel": "push", "recipient": "fcm:APA91b-" + "x" * 40, "body": "B"}, Channel.PUSH),
        ({"channel": "webhook", "recipient": "https://hooks.example.com/a?b=c", "body": "{}"}, Channel.WEBHOOK),
    ],
)
def test_each_channel_accepts_its_recipient_form(data: dict[str, Any], channel: Channel) -> None:
    """Each channel accepts a well-formed recipient of its own kind."""
    assert parse_notification(data).channel is channel


@pytest.mark.parametrize(
    ("channel", "recipient", "reason_start"),
    [
        ("email", "no-at-sign", "must be an email address"),
        ("email", "a@b", "must be an email address"),
        ("sms", "0044 7700 900123", "must be an E.164 phone number"),
        ("sms", "+0123", "must be an E.164 phone number"),
        ("push", "short", "must be a device token"),
        ("webhook", "http://insecure.example.com", "must be an https URL"),
        ("webhook", "https://user:pw@example.com/", "must not carry credentials"),
        ("webhook", "https://", "must be an https URL"),
    ],
)
def test_recipient_is_validated_per_channel(channel: str, recipient: str, reason_start: str) -> None:
    """A recipient of the wrong form gets a reason naming the expected form."""
    data = {"channel": channel, "recipient": recipient, "body": "B"} | ({"subject": "S"} if channel == "email" else {})
    (error,) = _errors(data)
    assert error.field == "recipient"
    assert error.reason.startswith(reason_start)
    assert recipient not in error.reason


def test_every_problem_is_reported_at_once() -> None:
    """Unknown fields, a bad channel and a missing body are all listed in one error."""
    errors = _errors({"channel": "fax", "recipient": "x", "colour": "red", "priority": 1})
    assert errors == {
        FieldError("$", "2 unknown fields; allowed: body, channel, group_key, metadata, recipient, subject"),
        FieldError("channel", "must be one of email, sms, push, webhook"),
        FieldError("body", "is required"),
    }


def test_subject_is_required_for_email_and_refused_elsewhere() -> None:
    """Only email carries a subject."""
    assert _errors({"channel": "email", "recipient": "a@example.com", "body": "B"}) == {
        FieldError("subject", "is required")
    }
    assert _errors({"channel": "sms", "recipient": "+14155550100", "body": "B", "subject": "S"}) == {
        FieldError("subject", "is only allowed for the email channel")
    }


def test_subject_with_a_line_break_is_refused() -> None:
    """A subject cannot smuggle a header in."""
    errors = _errors({"channel": "email", "recipient": "a@example.com", "subject": "Hi\r\nBcc: x", "body": "B"})
    assert errors == {FieldError("subject", "must not contain control characters")}


def test_metadata_is_a_string_map_of_at_most_twenty_keys() -> None:
    """Metadata: string values only, at most 20 keys, each key and value bounded."""
    base = {"channel": "sms", "recipient": "+14155550100", "body": "B"}
    ok = parse_notification(base | {"metadata": {f"k{i}": str(i) for i in range(20)} | {"k0": ""}})
    assert len(ok.metadata) == 20
    assert _errors(base | {"metadata": {f"k{i}": "v" for i in range(21)}}) == {
        FieldError("metadata", "must have at most 20 keys")
    }
    assert _errors(base | {"metadata": {"n": 1}}) == {FieldError("metadata", "value 1 must be a string")}
    assert _errors(base | {"metadata": ["a"]}) == {FieldError("metadata", "must be an object of string values")}


def test_body_limits_depend_on_channel() -> None:
    """An SMS body is bounded at 1600 characters."""
    errors = _errors({"channel": "sms", "recipient": "+14155550100", "body": "x" * 1601})
    assert errors == {FieldError("body", "must be at most 1600 characters")}


def test_lone_surrogates_and_wrong_types_are_refused() -> None:
    """Strings that cannot be stored as UTF-8, and non-strings, are field errors rather than crashes."""
    assert _errors({"channel": "sms", "recipient": "+14155550100", "body": "\ud800"}) == {
        FieldError("body", "must be valid Unicode (no lone surrogates)")
    }
    assert _errors({"channel": "sms", "recipient": 14155550100, "body": True}) == {
        FieldError("recipient", "must be a string"),
        FieldError("body", "must be a string"),
    }
    assert _errors([1, 2]) == {FieldError("$", "must be a JSON object")}


def test_group_key_is_printable_ascii_up_to_128() -> None:
    """A group key must be usable as an SQS MessageGroupId."""
    base = {"channel": "sms", "recipient": "+14155550100", "body": "B"}
    assert parse_notification(base | {"group_key": "customer#42"}).group_key == "customer#42"
    assert _errors(base | {"group_key": "has space"}) == {
        FieldError("group_key", "must be 1 to 128 printable ASCII characters")
    }


def test_canonical_json_and_hash_ignore_key_order() -> None:
    """The same notification always hashes the same, whatever the key order of the request."""
    a = parse_notification(
        {"channel": "sms", "recipient": "+14155550100", "body": "B", "metadata": {"x": "1", "y": "2"}}
    )
    b = parse_notification(
        {"metadata": {"y": "2", "x": "1"}, "body": "B", "recipient": "+14155550100", "channel": "sms"}
    )
    message_id = new_message_id()
    envelopes = [n.envelope(message_id=message_id, created_at="2026-01-01T00:00:00.000Z") for n in (a, b)]
    assert envelopes[0].payload_hash() == envelopes[1].payload_hash()
    assert a.canonical_json() == b.canonical_json() == envelopes[0].payload_json()


def test_message_id_is_random_without_key_and_deterministic_with_one() -> None:
    """An Idempotency-Key always maps to the same id under one secret; without one every id is new."""
    key = IdKey("m" * 32)
    assert new_message_id("k", key=key) == new_message_id("k", key=IdKey("m" * 32))
    assert new_message_id("k", key=key) != new_message_id("k2", key=key)
    with pytest.raises(ConfigurationError):
        new_message_id("k")  # never an id anyone could compute
    assert new_message_id() != new_message_id()
    assert is_message_id(new_message_id())
    assert not is_message_id("../etc/passwd")


def test_idempotency_key_must_be_printable_ascii() -> None:
    """An Idempotency-Key is 1 to 255 printable ASCII characters."""
    assert validate_idempotency_key("abc-123") == "abc-123"
    assert validate_idempotency_key(None) is None
    for bad in ("", "x" * 256, "snow\u2603", "tab\t"):
        with pytest.raises(ValidationError):
            validate_idempotency_key(bad)
