"""The items of the outbox's table, described once: each attribute of a message record and of an outbox entry.

Every writing and reading of an item derives from these two descriptions: accept's Put of a
record and its entry and every read of a record (``adapters/store.py``, ``adapters/sweep.py``),
the PynamoDB models a caller's ``TransactWrite`` takes (``adapters/models.py``), the projections
of partial reads, and the worker's check of an outbox entry's stream image (``service/stream.py``).
A new attribute is one line here. The status writes (``adapters/updates.py``) name the attributes
they change; a test holds each of those names to ``RECORD``.

Values are DynamoDB's attribute values (``{"S": ...}``): the hand-built requests are what a
warm accept, flip and read cost in our own CPU (``python -m bench.items`` measures them against
PynamoDB's models), so the models are made only for a caller's own ``TransactWrite``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

AttributeValue = dict[str, Any]
# Items are dicts: checking dict first skips the ABC machinery of Mapping (the worker reads every image).
_MAPPINGS = (dict, Mapping)

TTL_ATTRIBUTE = "expires_at"  # the table's time to live: an entry's, and an ended record's
# The record index's keys (``TableLayout.record_index``): a record holds them until it ends.
INDEX_PK, INDEX_SK = "outbox_pk", "outbox_sk"
HISTORY_LINE = ("status", "at", "by", "reason")  # one audit line: {status, at, by, reason?}, all text
HISTORY_OPTIONAL = frozenset({"reason"})


class Kind(Enum):
    """What an attribute holds, and so its DynamoDB type."""

    TEXT = "S"
    NUMBER = "N"  # a whole number
    HISTORY = "L"  # the audit trail: a list of maps of ``HISTORY_LINE``'s text fields


@dataclass(frozen=True)
class Attribute:
    """One attribute of an item: its name, what it holds, and whether every item has it."""

    name: str
    kind: Kind
    required: bool = False


@dataclass(frozen=True)
class ItemShape:
    """The attributes of one kind of item (besides the table's key), and how each is written and read."""

    name: str
    attributes: tuple[Attribute, ...]
    _by_name: dict[str, Attribute] = field(init=False, repr=False, compare=False)
    _plan: tuple[tuple[str, str, Kind, bool], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {a.name: a for a in self.attributes})
        # What ``read`` needs of each attribute, the DynamoDB type's tag first (an Enum's value is a slow property).
        plan = tuple((a.name, a.kind.value, a.kind, a.required) for a in self.attributes)
        object.__setattr__(self, "_plan", plan)

    def __getitem__(self, name: str) -> Attribute:
        """The attribute ``name``; KeyError naming the item if it has none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"a {self.name} has no attribute {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> tuple[str, ...]:
        """Every attribute's name, in the order described."""
        return tuple(a.name for a in self.attributes)

    def encode(self, values: Mapping[str, Any]) -> dict[str, AttributeValue]:
        """DynamoDB attribute values of ``values`` (None ones left out); KeyError for a stranger or a gap."""
        item: dict[str, AttributeValue] = {}
        for name, value in values.items():
            attribute = self[name]
            if value is not None:
                item[name] = _encode(attribute.kind, value)
        missing = [a.name for a in self.attributes if a.required and a.name not in item]
        if missing:
            raise KeyError(f"a {self.name} needs {', '.join(missing)}")
        return item

    def decode(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """The values of an item as stored (GetItem, a stream image): text, whole numbers, history lines.

        Attributes of another type than described are left out, as are those it does not describe.
        """
        return self.read(item)[0]

    def read(self, item: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """``decode``'s values, and the names of the attributes ``item`` lacks (required ones) or holds mistyped."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name, tag, kind, required in self._plan:  # the worker reads every image: plain lookups only
            stored = item.get(name)
            if stored is None:
                if required:
                    problems.append(name)
                continue
            raw = stored.get(tag) if isinstance(stored, _MAPPINGS) else None
            value = (raw if type(raw) is str else None) if tag == "S" else _decode(kind, raw)
            if value is None:
                problems.append(name)
            else:
                values[name] = value
        return values, problems

    def projection(self, names: Iterable[str]) -> tuple[str, dict[str, str]]:
        """A ProjectionExpression of ``names`` (each one of this item's) and its ExpressionAttributeNames."""
        placeholders = {f"#a{i}": self[name].name for i, name in enumerate(names)}
        return ", ".join(placeholders), placeholders


def _encode(kind: Kind, value: Any) -> AttributeValue:
    if kind is Kind.TEXT:
        return {"S": str(value)}
    if kind is Kind.NUMBER:
        return {"N": str(int(value))}
    lines = [{"M": {k: {"S": str(line[k])} for k in HISTORY_LINE if line.get(k) is not None}} for line in value]
    return {"L": lines}


def _decode(kind: Kind, raw: Any) -> Any:
    if kind is Kind.TEXT:
        return raw if type(raw) is str else None
    if raw is None:
        return None
    if kind is Kind.NUMBER:
        return _whole_number(raw)
    if not isinstance(raw, list):
        return None
    lines = []
    for line in raw:
        fields = line.get("M") if isinstance(line, _MAPPINGS) else None
        if not isinstance(fields, _MAPPINGS):
            return None
        lines.append(
            {k: v["S"] for k, v in fields.items() if k in HISTORY_LINE and isinstance(v, _MAPPINGS) and "S" in v}
        )
    return lines


def _whole_number(raw: Any) -> int | None:
    """A DynamoDB number as an int (``"7"``, ``"7.0"``); None for a fraction or not a number."""
    try:
        return int(raw)
    except (TypeError, ValueError):
        pass
    try:
        number = float(raw)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


TEXT, NUMBER, HISTORY = Kind.TEXT, Kind.NUMBER, Kind.HISTORY

# ``MSG#<id>`` / ``MSG``: the message, its status and its history.
RECORD = ItemShape(
    "message record",
    (
        Attribute("message_id", TEXT, required=True),
        Attribute("status", TEXT, required=True),
        Attribute("type", TEXT, required=True),
        Attribute("payload", TEXT, required=True),  # canonical JSON of the payload
        Attribute("payload_hash", TEXT, required=True),
        Attribute("idempotency_key", TEXT),
        Attribute("owner", TEXT),  # HMAC of the writer's principal under the id secret (never the principal)
        Attribute("group_key", TEXT),
        Attribute("trace_id", TEXT),  # the writer's trace context, an X-Ray trace header
        Attribute(INDEX_PK, TEXT),  # the record index's keys: until the record ends
        Attribute(INDEX_SK, TEXT),
        # Its place in its writer's order, kept for good: replay finds the entry by it (none before 0.2).
        Attribute("write_seq", TEXT),
        Attribute("created_at", TEXT, required=True),
        Attribute("updated_at", TEXT, required=True),
        Attribute("history", HISTORY, required=True),
        Attribute("attempts", NUMBER),  # deliveries started (PROCESSING) since the last re-drive
        Attribute("relay_attempts", NUMBER),  # passing SQS refusals while PENDING (poison at max_relay_attempts)
        Attribute("last_relay_failure", TEXT),  # the last refusal counted: its retry is not counted again
        Attribute("reason", TEXT),
        Attribute("lease_owner", TEXT),  # while PROCESSING: the consumer holding the message
        Attribute("lease_until", TEXT),  # ... and until when (ISO time)
        Attribute(TTL_ATTRIBUTE, NUMBER),  # COMPLETED or FAILED: the table's TTL removes it then (epoch s)
        Attribute("send_generation", NUMBER),  # deliberate re-sends so far (absent: none)
        Attribute("sent_at", TEXT),  # when SQS accepted the sweeper's last re-send of it in flight
        Attribute("ended_lease_owner", TEXT),  # ended under a lease: its owner (a retried end knows its own)
    ),
)

# ``OUTBOX#<bucket>`` / ``<created_at>#<write_seq>#<id>``: the SQS body exactly as it will be sent, its trace.
ENTRY = ItemShape(
    "outbox entry",
    (
        Attribute("message_id", TEXT, required=True),
        Attribute("group_key", TEXT),
        # The SQS body (``Envelope.body``: the id alone; 0.1.0 wrote the whole envelope).
        Attribute("envelope", TEXT, required=True),
        Attribute("trace_id", TEXT),  # sent as the copy's AWSTraceHeader
        Attribute("created_at", TEXT, required=True),
        Attribute(TTL_ATTRIBUTE, NUMBER, required=True),  # replay's window: the table's TTL removes it then
    ),
)
