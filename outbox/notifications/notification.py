"""The notification a client asks us to send, and its validation.

Validation collects every problem with a field-level reason, so a client fixes a request in
one round trip. It never echoes client text back, value or name: a recipient is personal data,
and an unknown field's or a metadata key's name could be anything (they are counted, not named).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from outbox.domain.envelope import NOTIFICATION_TYPE, Envelope, new_envelope
from outbox.domain.errors import FieldError, ValidationError
from outbox.domain.message import MAX_GROUP_KEY_CHARS, PRINTABLE_TOKEN

MAX_METADATA_KEYS = 20
MAX_METADATA_KEY_CHARS = 128
MAX_METADATA_VALUE_CHARS = 1024
MAX_SUBJECT_CHARS = 998  # RFC 5322 line length
MAX_BODY_CHARS = {"email": 32_768, "sms": 1_600, "push": 4_000, "webhook": 32_768}

_EMAIL = re.compile(
    r"^[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$"
)
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_DEVICE_TOKEN = re.compile(r"^[A-Za-z0-9:_\-]{16,4096}$")
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_.:\-]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Channel(enum.StrEnum):
    """How a notification reaches its recipient."""

    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    WEBHOOK = "webhook"


_FIELDS = frozenset({"channel", "recipient", "subject", "body", "metadata", "group_key"})
ALLOWED_FIELDS = ", ".join(sorted(_FIELDS))


@dataclass(frozen=True)
class Notification:
    """A validated notification: what the client sent, nothing more."""

    channel: Channel
    recipient: str
    body: str
    subject: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    group_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The payload as plain JSON-able data, without absent optional fields."""
        data: dict[str, Any] = {"channel": self.channel.value, "recipient": self.recipient, "body": self.body}
        if self.subject is not None:
            data["subject"] = self.subject
        if self.metadata:
            data["metadata"] = dict(self.metadata)
        if self.group_key is not None:
            data["group_key"] = self.group_key
        return data

    def envelope(self, *, message_id: str, created_at: str, trace_id: str | None = None) -> Envelope:
        """The envelope that carries this notification: type ``notification``, its group key."""
        return new_envelope(
            self.to_dict(),
            type=NOTIFICATION_TYPE,
            message_id=message_id,
            created_at=created_at,
            group_key=self.group_key,
            trace_id=trace_id,
        )

    def canonical_json(self) -> str:
        """One stable serialisation: what the record stores as the payload of this notification."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_notification(data: object) -> Notification:
    """Validate decoded JSON into a Notification, or raise ValidationError listing every problem."""
    if not isinstance(data, dict):
        raise ValidationError([FieldError("$", "must be a JSON object")])
    errors: list[FieldError] = []
    unknown = len(set(data) - _FIELDS)
    if unknown:
        errors.append(
            FieldError("$", f"{unknown} unknown field{'s' if unknown > 1 else ''}; allowed: {ALLOWED_FIELDS}")
        )
    channel = _channel(data.get("channel"), errors)
    recipient = _string(data, "recipient", errors, max_chars=4096)
    body = _string(data, "body", errors, max_chars=MAX_BODY_CHARS.get(channel or "", 32_768), multiline=True)
    subject = _subject(data, channel, errors)
    metadata = _metadata(data.get("metadata"), errors)
    group_key = _group_key(data.get("group_key"), errors)
    if channel is not None and recipient is not None:
        reason = _recipient_problem(channel, recipient)
        if reason:
            errors.append(FieldError("recipient", reason))
    if errors or channel is None or recipient is None or body is None:
        raise ValidationError(errors)
    return Notification(channel, recipient, body, subject, metadata, group_key)


def _channel(value: object, errors: list[FieldError]) -> Channel | None:
    if value is None:
        errors.append(FieldError("channel", "is required"))
        return None
    try:
        return Channel(value) if isinstance(value, str) else Channel("")
    except ValueError:
        errors.append(FieldError("channel", f"must be one of {', '.join(c.value for c in Channel)}"))
        return None


def _text_problem(value: object, *, max_chars: int, multiline: bool) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if not value.strip():
        return "must not be empty"
    if len(value) > max_chars:
        return f"must be at most {max_chars} characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates)"
    if _CONTROL.search(value) or (not multiline and ("\n" in value or "\r" in value)):
        return "must not contain control characters"
    return None


def _string(
    data: Mapping[str, object], name: str, errors: list[FieldError], *, max_chars: int, multiline: bool = False
) -> str | None:
    if name not in data:
        errors.append(FieldError(name, "is required"))
        return None
    problem = _text_problem(data[name], max_chars=max_chars, multiline=multiline)
    if problem:
        errors.append(FieldError(name, problem))
        return None
    value = data[name]
    return value if isinstance(value, str) else None


def _subject(data: Mapping[str, object], channel: Channel | None, errors: list[FieldError]) -> str | None:
    if channel is not Channel.EMAIL:
        if "subject" in data:
            errors.append(FieldError("subject", "is only allowed for the email channel"))
        return None
    return _string(data, "subject", errors, max_chars=MAX_SUBJECT_CHARS)


def _metadata(value: object, errors: list[FieldError]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append(FieldError("metadata", "must be an object of string values"))
        return {}
    if len(value) > MAX_METADATA_KEYS:
        errors.append(FieldError("metadata", f"must have at most {MAX_METADATA_KEYS} keys"))
        return {}
    result: dict[str, str] = {}
    for position, (key, item) in enumerate(value.items(), start=1):
        if len(key) > MAX_METADATA_KEY_CHARS or not _METADATA_KEY.match(key):
            errors.append(FieldError("metadata", f"keys must be 1 to {MAX_METADATA_KEY_CHARS} of A-Z a-z 0-9 _ . : -"))
            continue
        problem = _metadata_value_problem(item)
        if problem:  # by position, not by name: the key is the client's text
            errors.append(FieldError("metadata", f"value {position} {problem}"))
        elif isinstance(item, str):
            result[key] = item
    return result


def _metadata_value_problem(value: object) -> str | None:
    if value == "":  # an empty value is a legitimate flag
        return None
    return _text_problem(value, max_chars=MAX_METADATA_VALUE_CHARS, multiline=False)


def _group_key(value: object, errors: list[FieldError]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_GROUP_KEY_CHARS or not PRINTABLE_TOKEN.match(value):
        errors.append(FieldError("group_key", f"must be 1 to {MAX_GROUP_KEY_CHARS} printable ASCII characters"))
        return None
    return value


def _recipient_problem(channel: Channel, recipient: str) -> str | None:
    if channel is Channel.EMAIL:
        return None if len(recipient) <= 254 and _EMAIL.match(recipient) else "must be an email address"
    if channel is Channel.SMS:
        return None if _E164.match(recipient) else "must be an E.164 phone number such as +14155550100"
    if channel is Channel.PUSH:
        return None if _DEVICE_TOKEN.match(recipient) else "must be a device token (16+ of A-Z a-z 0-9 : _ -)"
    return _webhook_problem(recipient)


def _webhook_problem(url: str) -> str | None:
    if len(url) > 2048 or any(c.isspace() for c in url):
        return "must be an https URL of at most 2048 characters"
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return "must be an https URL"
    if parts.scheme != "https" or not parts.hostname or not port_ok:
        return "must be an https URL"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials"
    return None
