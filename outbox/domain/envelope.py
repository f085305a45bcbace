"""The envelope (a message as its record holds it), the SQS body (its id alone), and the rules a message must meet.

A payload is any JSON object. It is checked once, when the message is made: it must be JSON as
it is (string keys, lists, strings, numbers, booleans, null; no NaN, tuples or sets), hold only
characters SQS accepts, and fit the queue's message size once wrapped in its envelope. A
``Decimal`` (what the boto3 resource API and PynamoDB return for a number) becomes the JSON number
it is, exactly. A refusal names where in the payload the bad value is (``payload.items[3].price``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from outbox.domain.errors import FieldError, MalformedEntryError, ValidationError
from outbox.domain.message import MAX_GROUP_KEY_CHARS, PRINTABLE_TOKEN, is_message_id
from outbox.domain.trace import trace_header

# The SQS body's format. 3: the message id alone, the envelope read from the record; 2 (0.1.0's
# body, the whole envelope) is still read, by its id alone, for copies sent before an upgrade.
SCHEMA_VERSION = 3
READ_SCHEMA_VERSIONS = frozenset({2, SCHEMA_VERSION})
NOTIFICATION_TYPE = "notification"  # the type of the reference API's messages
MAX_TYPE_CHARS = 256
DEFAULT_MAX_MESSAGE_BYTES = 262_144  # safe on every queue; raise to 1 MiB where the queue allows it
# A DynamoDB item holds at most 400 KB; the record keeps the payload beside its status and history.
MAX_STORED_PAYLOAD_BYTES = 350_000
MAX_PAYLOAD_DEPTH = 100  # levels of objects and arrays
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@functools.cache  # compiled by the first new message: a function that only reads or relays never needs it
def _sqs_refused() -> re.Pattern[str]:
    """Anything outside #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF: SQS refuses the message.

    Written as what it leaves out (the other C0 controls, the surrogates, U+FFFE and U+FFFF): the
    same characters, and a class of a few ranges compiles far faster than that negation.
    """
    return re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def canonical_json(value: Any) -> str:
    """One stable serialisation: keys sorted, no spaces, UTF-8 kept as it is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def message_body(message_id: str) -> str:
    """The SQS body of every copy of ``message_id``: the id and the format, the same bytes on every path.

    The one place a body is made: ``Envelope.body`` (accept's outbox entry) and a message re-sent
    from its record's id alone (the sweeper, the worker's older-first step) both call it, so every
    copy of a message carries the byte-identical body whichever path sent it.
    """
    return canonical_json({"message_id": message_id, "schema_version": SCHEMA_VERSION})


@dataclass(frozen=True)
class Envelope:
    """What a consumer receives, read from the record. ``message_id`` is the dedup key of every copy.

    ``trace_id`` is the writer's trace context as an X-Ray trace header (``domain/trace.py``), or None.
    """

    message_id: str
    type: str
    payload: Mapping[str, Any]
    created_at: str
    group_key: str | None = None
    trace_id: str | None = None
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        """The whole envelope as canonical JSON: what the consumer delivers, and what the size limit measures."""
        return canonical_json(
            {
                "message_id": self.message_id,
                "schema_version": self.schema_version,
                "type": self.type,
                "payload": self.payload,
                "group_key": self.group_key,
                "created_at": self.created_at,
                "trace_id": self.trace_id,
            }
        )

    def body(self) -> str:
        """The SQS body of every copy: the message id alone (and the format), byte-identical on every send.

        The consumer delivers what the record holds (invariant 11), read by its lease write, so a
        copy carries nothing a forger could use to change a delivery. FIFO ordering travels in the
        copy's ``MessageGroupId`` and the trace in its ``AWSTraceHeader``, both SQS attributes.
        """
        return message_body(self.message_id)

    def payload_json(self) -> str:
        """The payload alone, canonical: what the record stores."""
        return canonical_json(self.payload)

    def payload_hash(self) -> str:
        """SHA-256 of what makes the message itself (type, payload, group key): tells a replay from a reused key."""
        identity = {"type": self.type, "payload": self.payload, "group_key": self.group_key}
        return hashlib.sha256(canonical_json(identity).encode()).hexdigest()


def message_id_of(body: object) -> str:
    """The message id an SQS body names (this format, or 0.1.0's whole envelope); MalformedEntryError otherwise.

    Nothing else of a body is read: what is delivered comes from the record.
    """
    try:
        data = json.loads(body) if isinstance(body, str) else None
    except (ValueError, RecursionError) as exc:
        raise MalformedEntryError("body is not JSON") from exc
    if not isinstance(data, dict):
        raise MalformedEntryError("body is not a JSON object")
    message_id = data.get("message_id")
    if not isinstance(message_id, str) or not is_message_id(message_id):
        raise MalformedEntryError("body has no valid message_id")
    version = data.get("schema_version")
    if isinstance(version, bool) or version not in READ_SCHEMA_VERSIONS:
        raise MalformedEntryError("unsupported body schema_version", message_id=message_id)
    return message_id


def new_envelope(
    payload: object,
    *,
    type: str,
    message_id: str,
    created_at: str,
    group_key: str | None = None,
    trace_id: str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> Envelope:
    """A checked envelope for a new message, or ValidationError listing every problem."""
    errors: list[FieldError] = []
    problem = _type_problem(type)
    if problem:
        errors.append(FieldError("type", problem))
    if group_key is not None and (
        not isinstance(group_key, str) or len(group_key) > MAX_GROUP_KEY_CHARS or not PRINTABLE_TOKEN.match(group_key)
    ):
        errors.append(FieldError("group_key", f"must be 1 to {MAX_GROUP_KEY_CHARS} printable ASCII characters"))
    if not isinstance(payload, dict):
        errors.append(FieldError("payload", "must be a JSON object (a dict)"))
    else:
        try:
            payload = json_ready(payload, "payload")
        except PayloadError as exc:
            errors.append(FieldError(exc.path, exc.reason))
    trace_id = trace_header(trace_id)  # a hint, never a reason to refuse a message: a malformed one is dropped
    if errors or not isinstance(payload, dict):
        raise ValidationError(errors)
    envelope = Envelope(message_id, type, payload, created_at, group_key, trace_id)
    body = envelope.to_json()
    if _sqs_refused().search(body):
        raise ValidationError([FieldError("payload", "holds characters SQS refuses (lone surrogates, U+FFFE, U+FFFF)")])
    size = len(body.encode())
    limit = min(max_message_bytes, MAX_STORED_PAYLOAD_BYTES)
    if size > limit:
        raise ValidationError([FieldError("payload", f"makes a {size}-byte message; the limit is {limit} bytes")])
    return envelope


def _type_problem(value: object) -> str | None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TYPE_CHARS or not PRINTABLE_TOKEN.match(value):
        return f"must be 1 to {MAX_TYPE_CHARS} printable ASCII characters without spaces"
    return None


class PayloadError(ValueError):
    """A value of a payload with no exact JSON form: where it is, and why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def json_ready(value: Any, path: str = "payload", depth: int = 0) -> Any:
    """``value`` as JSON holds it: Decimals become the numbers they are; PayloadError names the first bad value.

    A Decimal with a fraction becomes the float whose shortest text is that same number
    (``Decimal("19.99")`` -> ``19.99``); one with more digits than that keeps is refused rather
    than rounded.
    """
    if depth > MAX_PAYLOAD_DEPTH:
        raise PayloadError(path, f"is nested deeper than {MAX_PAYLOAD_DEPTH} levels")
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PayloadError(path, "is NaN or infinity, which have no JSON form")
        return value
    if isinstance(value, Decimal):
        return _decimal_number(value, path)
    if isinstance(value, Mapping):
        ready: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise PayloadError(path, f"has the key {key!r}: object keys must be strings")
            ready[key] = json_ready(item, _child(path, key), depth + 1)
        return ready
    if isinstance(value, list):
        return [json_ready(item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value)]
    kind = type(value).__name__
    hint = ": use a list" if isinstance(value, (tuple, set, frozenset)) else ""
    raise PayloadError(path, f"is of type {kind}, which has no JSON form{hint}")


def _decimal_number(value: Decimal, path: str) -> int | float:
    if not value.is_finite():
        raise PayloadError(path, "is NaN or infinity, which have no JSON form")
    if value == value.to_integral_value():
        return int(value)
    number = float(value)
    if Decimal(repr(number)) != value:
        raise PayloadError(path, f"is {value}, more digits than a JSON number keeps exactly here: pass it as a string")
    return number


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENTIFIER.match(key) else f"{path}[{json.dumps(key, ensure_ascii=False)}]"
