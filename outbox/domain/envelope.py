"""The SQS envelope: exactly the body every copy of a message carries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from outbox.domain.errors import MalformedEntryError, ValidationError
from outbox.domain.message import Notification, is_message_id, parse_notification

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Envelope:
    """What a consumer receives. ``message_id`` is the dedup key of every copy."""

    message_id: str
    payload: Notification
    created_at: str
    trace_id: str | None = None
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        """The SQS body: compact, keys sorted, so every copy is byte-identical."""
        data: dict[str, Any] = {
            "message_id": self.message_id,
            "schema_version": self.schema_version,
            "payload": self.payload.to_dict(),
            "created_at": self.created_at,
            "trace_id": self.trace_id,
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, body: str) -> Envelope:
        """Read an SQS body back; anything malformed raises MalformedEntryError."""
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise MalformedEntryError("envelope is not JSON") from exc
        if not isinstance(data, dict):
            raise MalformedEntryError("envelope is not a JSON object")
        message_id = data.get("message_id")
        if not isinstance(message_id, str) or not is_message_id(message_id):
            raise MalformedEntryError("envelope has no valid message_id")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise MalformedEntryError("unsupported envelope schema_version", message_id=message_id)
        created_at, trace_id = data.get("created_at"), data.get("trace_id")
        if not isinstance(created_at, str) or not (trace_id is None or isinstance(trace_id, str)):
            raise MalformedEntryError("envelope has malformed created_at or trace_id", message_id=message_id)
        try:
            payload = parse_notification(data.get("payload"))
        except ValidationError as exc:
            raise MalformedEntryError(f"envelope payload is invalid: {exc.detail}", message_id=message_id) from exc
        return cls(message_id, payload, created_at, trace_id)
