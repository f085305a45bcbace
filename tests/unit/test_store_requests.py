"""The store's UpdateItem requests, one per lifecycle edge, as DynamoDB receives them (no AWS)."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from outbox.adapters.store import DynamoDBMessageStore
from outbox.domain.envelope import new_envelope
from outbox.domain.errors import InvalidTransitionError
from outbox.domain.keys import IN_FLIGHT_PARTITIONS, in_flight_pk, iso
from outbox.domain.layout import TableLayout
from outbox.domain.message import new_message_id
from outbox.domain.record import Lease
from outbox.domain.status import ENDED, TRANSITIONS, Status, sources_of
from outbox.logs import configure_logging, debug_enabled

NOW = "2026-11-25T10:00:00.000Z"

PK_SK = TableLayout("outbox", "PK", "SK")  # a single-table design's key names


class RecordingClient:
    """Answers every UpdateItem with nothing and keeps the requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def update_item(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        if request["ReturnValues"] == "ALL_OLD":  # taking a lease: the whole record as it was
            return {"Attributes": STORED["new"] | {"attempts": {"N": "2"}}}
        return {"Attributes": {"status": {"S": "PENDING"}, "attempts": {"N": "2"}}}


EDGES = [(to, frozenset({source})) for source, targets in TRANSITIONS.items() for to in targets]
EDGES += [(to, sources_of(to)) for to in Status if sources_of(to)]


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> tuple[DynamoDBMessageStore, RecordingClient]:
    """A store on a recording client, its clock stopped at NOW."""
    monkeypatch.setattr("outbox.adapters.store.utc_now", lambda: datetime.fromisoformat(NOW))
    client = RecordingClient()
    return DynamoDBMessageStore(PK_SK, client), client  # type: ignore[arg-type]


def _placeholders(text: str, sigil: str) -> set[str]:
    return set(re.findall(rf"{sigil}\w+", text))


@pytest.mark.parametrize(("to", "sources"), EDGES, ids=lambda v: str(getattr(v, "value", sorted(v))))
@pytest.mark.parametrize("reason", [None, "", "SQS refused the message: InvalidParameterValue"])
def test_every_edge_is_one_well_formed_conditional_update(
    store: tuple[DynamoDBMessageStore, RecordingClient], to: Status, sources: frozenset[Status], reason: str | None
) -> None:
    """Each lifecycle edge: the condition admits exactly its sources, the update sets status fields and one line."""
    s, client = store
    s.transition("m-1", to, by="worker", reason=reason, expected=sources)
    request = client.requests[-1]
    assert request["Key"] == {"PK": {"S": "MSG#m-1"}, "SK": {"S": "MSG"}}
    assert request["ExpressionAttributeNames"]["#pk"] == "PK"
    values = request["ExpressionAttributeValues"]
    # Every placeholder used is defined, and every one defined is used (DynamoDB refuses either mistake).
    expressions = request["UpdateExpression"] + " " + request["ConditionExpression"]
    assert _placeholders(expressions, ":") == set(values)
    assert _placeholders(expressions, "#") == set(request["ExpressionAttributeNames"])
    assert request["ConditionExpression"].startswith("attribute_exists(#pk) AND #status IN (")
    assert {v["S"] for k, v in values.items() if k.startswith(":s")} == {s.value for s in sources}
    assert values[":to"] == {"S": to.value}
    line = {"status": {"S": to.value}, "at": {"S": NOW}, "by": {"S": "worker"}} | (
        {"reason": {"S": reason}} if reason else {}
    )
    assert values[":line"] == {"L": [{"M": line}]}
    assert "#history = list_append(#history, :line)" in request["UpdateExpression"]
    assert ("#reason = :reason" in request["UpdateExpression"]) is bool(reason)  # an empty reason is no reason
    assert request["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    # The old values are asked for only when the result cannot be known without them.
    assert request["ReturnValues"] == ("UPDATED_OLD" if len(sources) > 1 or to is Status.PROCESSING else "NONE")
    # The record index: an ended record leaves it, one in flight is under its in-flight partition.
    update = request["UpdateExpression"]
    if to in ENDED:
        assert update.endswith("#outbox_pk, #outbox_sk")
        assert ":flight_pk" not in values
    else:
        assert "#outbox_pk = :flight_pk" in update
        assert (values[":flight_pk"], values[":flight_sk"]) == ({"S": in_flight_pk("m-1")}, {"S": f"{NOW}#m-1"})
        # From QUEUED or PROCESSING the keys stay as they are (a keys-only index is then not written).
        kept = "#outbox_sk = if_not_exists(#outbox_sk, :flight_sk)" in update
        assert kept is bool(sources & {Status.QUEUED, Status.PROCESSING})


def test_a_lease_is_taken_over_only_once_it_ran_out(store: tuple[DynamoDBMessageStore, RecordingClient]) -> None:
    """Taking PROCESSING with a lease: from PENDING or QUEUED at once, from PROCESSING only past its end."""
    s, client = store
    started = s.transition("m-1", Status.PROCESSING, by="consumer", lease=Lease("c-1", "2026-11-25T10:05:00.000Z"))
    request = client.requests[-1]
    # The same write answers with the record as it was: what the consumer delivers, at no extra request.
    assert request["ReturnValues"] == "ALL_OLD"
    assert started.record is not None
    assert started.record.envelope() == STORED_ENVELOPE
    assert (started.previous, started.attempts) == (Status.PENDING, 3)
    assert request["ConditionExpression"] == (
        "attribute_exists(#pk) AND (#status IN (:s0, :s2) OR "
        "(#status = :s1 AND (attribute_not_exists(#lease_until) OR #lease_until <= :now)))"
    )
    values = request["ExpressionAttributeValues"]
    assert [values[f":s{i}"]["S"] for i in range(3)] == ["PENDING", "PROCESSING", "QUEUED"]
    assert (values[":owner"], values[":until"]) == ({"S": "c-1"}, {"S": "2026-11-25T10:05:00.000Z"})
    assert "#lease_owner = :owner, #lease_until = :until" in request["UpdateExpression"]
    assert "ADD #attempts :one" in request["UpdateExpression"]


def test_only_the_lease_holder_finishes(store: tuple[DynamoDBMessageStore, RecordingClient]) -> None:
    """Leaving PROCESSING under a lease needs the same owner; the lease goes, its owner stays as who ended it."""
    s, client = store
    processing = frozenset({Status.PROCESSING})
    s.transition("m-1", Status.COMPLETED, by="consumer", expected=processing, lease=Lease("c-1", NOW))
    request = client.requests[-1]
    assert request["ConditionExpression"].endswith("AND #lease_owner = :owner")
    assert request["ExpressionAttributeValues"][":owner"] == {"S": "c-1"}
    assert ":until" not in request["ExpressionAttributeValues"]
    sets, removes = request["UpdateExpression"].split(" REMOVE ")
    assert "#ended_lease_owner = :owner" in sets
    assert removes.startswith("#lease_owner, #lease_until")


def test_a_redrive_forgets_who_ended_the_record(store: tuple[DynamoDBMessageStore, RecordingClient]) -> None:
    """FAILED -> QUEUED starts a new life: the ended record's ``ended_lease_owner`` goes with its TTL.

    And it is back in the record index, under its in-flight partition from now, as any move in flight.
    """
    s, client = store
    s.transition("m-1", Status.QUEUED, by="replay", expected=frozenset({Status.FAILED}))
    request = client.requests[-1]
    sets, removes = request["UpdateExpression"].split(" REMOVE ")
    assert "#ended_lease_owner" in removes
    assert "#outbox_pk = :flight_pk, #outbox_sk = :flight_sk" in sets
    values = request["ExpressionAttributeValues"]
    assert (values[":flight_pk"], values[":flight_sk"]) == ({"S": in_flight_pk("m-1")}, {"S": f"{NOW}#m-1"})


def test_single_source_result_comes_from_the_condition(store: tuple[DynamoDBMessageStore, RecordingClient]) -> None:
    """With one allowed source and no attempts to report, the answer is not needed (ReturnValues NONE)."""
    s, _ = store
    result = s.transition("m-1", Status.COMPLETED, by="consumer", expected=frozenset({Status.PROCESSING}))
    assert (result.previous, result.status, result.attempts) == (Status.PROCESSING, Status.COMPLETED, 0)
    started = s.transition("m-1", Status.PROCESSING, by="consumer", expected=frozenset({Status.QUEUED}))
    assert (started.previous, started.attempts) == (Status.PENDING, 3)  # from the UPDATED_OLD answer


def test_an_edge_outside_the_lifecycle_is_refused_before_any_call(
    store: tuple[DynamoDBMessageStore, RecordingClient],
) -> None:
    """A transition the table does not allow never reaches DynamoDB."""
    s, client = store
    with pytest.raises(ValueError, match="not a lifecycle edge"):
        s.transition("m-1", Status.QUEUED, by="x", expected=frozenset({Status.COMPLETED}))
    assert client.requests == []


def test_relay_failure_count_is_one_add_on_a_pending_record(
    store: tuple[DynamoDBMessageStore, RecordingClient],
) -> None:
    """count_relay_failure: ADD 1 to relay_attempts, only while PENDING, and once per failure (its token)."""
    s, client = store
    assert s.count_relay_failure("m-1") == 1
    assert s.count_relay_failure("m-1") == 1  # the recording client keeps nothing: each answer starts from 0
    first, second = client.requests
    assert first["Key"] == {"PK": {"S": "MSG#m-1"}, "SK": {"S": "MSG"}}
    assert first["UpdateExpression"] == "SET #last_failure = :failure ADD #relay_attempts :one"
    assert first["ConditionExpression"] == (
        "attribute_exists(#pk) AND #status = :pending AND "
        "(attribute_not_exists(#last_failure) OR #last_failure <> :failure)"
    )
    values = first["ExpressionAttributeValues"]
    assert {k: v for k, v in values.items() if k != ":failure"} == {":one": {"N": "1"}, ":pending": {"S": "PENDING"}}
    assert values[":failure"] != second["ExpressionAttributeValues"][":failure"]  # each failure its own token
    assert first["ReturnValues"] == "UPDATED_OLD"


class GenerationClient(RecordingClient):
    """Answers UpdateItem with the new send generation, or refuses its condition once ``refuse`` is set."""

    refuse = False

    def update_item(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        if self.refuse:
            from botocore.exceptions import ClientError

            error = {"Error": {"Code": "ConditionalCheckFailedException"}, "Item": {"status": {"S": "COMPLETED"}}}
            raise ClientError(error, "UpdateItem")  # type: ignore[arg-type]
        return {"Attributes": {"send_generation": {"N": "3"}}}


def test_a_new_send_generation_is_one_conditional_add(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before a deliberate re-send: ADD 1 to send_generation while in the expected statuses, no live lease, as read."""
    monkeypatch.setattr("outbox.adapters.store.utc_now", lambda: datetime.fromisoformat(NOW))
    client = GenerationClient()
    s = DynamoDBMessageStore(TableLayout("outbox"), client)  # type: ignore[arg-type]

    in_flight = frozenset({Status.QUEUED, Status.PROCESSING})
    assert s.new_send_generation("m-1", expected=in_flight, updated_at="2026-11-25T09:00:00.000Z", generation=2) == 3
    assert s.new_send_generation("m-1", expected=frozenset({Status.FAILED})) == 3

    seen, fresh = client.requests
    for request in (seen, fresh):
        expressions = request["UpdateExpression"] + " " + request["ConditionExpression"]
        assert _placeholders(expressions, ":") == set(request["ExpressionAttributeValues"])
        assert request["UpdateExpression"] == "ADD #generation :one"
        assert request["ReturnValues"] == "UPDATED_NEW"
        assert "#outbox_pk" not in request["ExpressionAttributeNames"]  # the index is not written
    assert seen["ConditionExpression"] == (
        "attribute_exists(#pk) AND #status IN (:s0, :s1)"
        " AND (#status <> :s0 OR attribute_not_exists(#lease_until) OR #lease_until <= :now)"
        " AND #updated_at = :seen_at AND #generation = :seen_generation"
    )
    assert seen["ExpressionAttributeValues"][":seen_generation"] == {"N": "2"}
    assert fresh["ConditionExpression"] == "attribute_exists(#pk) AND #status IN (:s0)"

    s.new_send_generation("m-1", expected=in_flight, updated_at=NOW, generation=0)
    assert client.requests[-1]["ConditionExpression"].endswith(
        "#updated_at = :seen_at AND attribute_not_exists(#generation)"
    )
    s.note_resent("m-1", 3)
    noted = client.requests[-1]
    assert (noted["UpdateExpression"], noted["ConditionExpression"]) == (
        "SET #sent_at = :now",
        "attribute_exists(#pk) AND #generation = :generation",
    )
    assert noted["ExpressionAttributeValues"] == {":now": {"S": NOW}, ":generation": {"N": "3"}}
    client.refuse = True
    with pytest.raises(InvalidTransitionError) as lost:
        s.new_send_generation("m-1", expected=in_flight)
    assert lost.value.current is Status.COMPLETED


def test_in_flight_partitions_spread_messages() -> None:
    """A message in flight sits in one of a fixed number of partitions, by its id."""
    partitions = {in_flight_pk(f"m-{n}") for n in range(500)}
    assert partitions == {f"SENT#{n:02d}" for n in range(IN_FLIGHT_PARTITIONS)}
    assert in_flight_pk("m-1") == in_flight_pk("m-1")


@pytest.mark.parametrize(
    ("at", "text"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, 999_999, tzinfo=UTC), "2026-01-02T03:04:05.999Z"),  # truncated, not rounded
        (datetime(2026, 1, 2, 3, 4, 5, 1_500, tzinfo=UTC), "2026-01-02T03:04:05.001Z"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))), "2026-01-02T01:04:05.000Z"),
    ],
)
def test_timestamps_are_utc_milliseconds_that_sort_as_text(at: datetime, text: str) -> None:
    """History and outbox sort keys compare these as strings: fixed width, UTC, a Z."""
    assert iso(at) == text


@pytest.mark.parametrize(("level", "written"), [("DEBUG", True), ("INFO", False)])
def test_a_transition_logs_its_line_only_at_debug(
    store: tuple[DynamoDBMessageStore, RecordingClient], level: str, written: bool
) -> None:
    """One line per message and transition is DEBUG: at the deployed INFO the record's history is the trail."""
    out = io.StringIO()
    configure_logging(out, level=level)  # tests/conftest.py sets WARNING again for the next test
    store[0].transition("m1", Status.QUEUED, by="worker", expected=frozenset({Status.PENDING}))
    assert debug_enabled() is written

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    expected = [{"event": "status_changed", "message_id": "m1", "from": "PENDING", "to": "QUEUED", "by": "worker"}]
    assert [{k: line[k] for k in expected[0]} for line in lines] == (expected if written else [])


def test_add_to_asks_pynamodb_for_no_old_item(store: tuple[DynamoDBMessageStore, RecordingClient]) -> None:
    """A cancelled PynamoDB transaction's text quotes what ALL_OLD returns: add_to asks for nothing old."""
    s, _ = store
    saved: list[dict[str, Any]] = []

    class Transaction:
        def save(self, _model: Any, **kwargs: Any) -> None:
            saved.append(kwargs)

    envelope = new_envelope({"card": "4111"}, type="T", message_id=new_message_id(), created_at=NOW)
    s.add_to(Transaction(), s.prepare(envelope, idempotency_key=None, by="t"))  # type: ignore[arg-type]
    assert len(saved) == 2
    assert [kwargs.get("return_values") for kwargs in saved] == [None, None]


class ReadingClient:
    """Answers every GetItem with one stored item, projected as the request asks, and keeps the requests."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        self.item = item
        self.requests: list[dict[str, Any]] = []

    def get_item(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        if self.item is None:
            return {}
        return {"Item": _projected(self.item, request)}


def _projected(item: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """The item as DynamoDB answers a GetItem: only the projected attributes, when it names some."""
    if "ProjectionExpression" not in request:
        return item
    names = request["ExpressionAttributeNames"]
    wanted = {names[token.strip()] for token in request["ProjectionExpression"].split(",")}
    return {name: value for name, value in item.items() if name in wanted}


STORED_ENVELOPE = new_envelope(
    {"channel": "sms"},
    type="notification",
    message_id=new_message_id(),
    created_at=NOW,
    group_key="g-1",
    trace_id="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
)


def _stored_records() -> dict[str, dict[str, Any]]:
    """Records as DynamoDB holds them: new, ended under a lease, held, re-sent in flight, with NULLs."""
    envelope = STORED_ENVELOPE
    new = DynamoDBMessageStore(PK_SK, ReadingClient(None)).prepare(  # type: ignore[arg-type]
        envelope, idempotency_key="k-1", by="api", owner="o" * 64
    )
    record: dict[str, Any] = new.transact_items[0]["Put"]["Item"]
    line = {"M": {"status": {"S": "FAILED"}, "at": {"S": NOW}, "by": {"S": "consumer"}, "reason": {"S": "gave up"}}}
    ended = record | {
        "status": {"S": "FAILED"},
        "history": {"L": [*record["history"]["L"], line]},
        "attempts": {"N": "5"},
        "relay_attempts": {"N": "2"},
        "reason": {"S": "gave up"},
        "expires_at": {"N": "1900000000"},
        "ended_lease_owner": {"S": "sqs-1/abc"},
    }
    held = record | {"status": {"S": "PROCESSING"}, "lease_owner": {"S": "sqs-1/abc"}, "lease_until": {"S": NOW}}
    resent = record | {
        "status": {"S": "QUEUED"},
        "type": {"S": "invoice.due"},
        "outbox_pk": {"S": in_flight_pk(envelope.message_id)},
        "outbox_sk": {"S": f"{NOW}#{envelope.message_id}"},
        "send_generation": {"N": "2"},
        "sent_at": {"S": NOW},
    }
    nulls = {k: v for k, v in record.items() if k not in ("owner", "group_key", "trace_id")} | {
        "trace_id": {"NULL": True},
        "reason": {"NULL": True},
    }
    return {"new": record, "ended": ended, "held": held, "resent": resent, "nulls": nulls}


def _model_reading(item: dict[str, Any]) -> Any:
    """The record the PynamoDB model reads from ``item``: the reference the hand-written reading must equal."""
    from outbox.adapters.models import bind_models
    from outbox.domain.record import HistoryEntry, MessageRecord

    read = bind_models(PK_SK).record.from_raw_data(item)
    fields = {
        "message_id": read.message_id,
        "status": Status(read.status),
        "payload_hash": read.payload_hash,
        "created_at": read.created_at,
        "updated_at": read.updated_at,
        "history": tuple(HistoryEntry(Status(h.status), h.at, h.by, h.reason) for h in read.history),
        "type": read.type,
        "payload": json.loads(read.payload),
        "group_key": read.group_key,
        "attempts": int(read.attempts or 0),
        "relay_attempts": int(read.relay_attempts or 0),
        "reason": read.reason,
        "lease": Lease(read.lease_owner, read.lease_until) if read.lease_owner and read.lease_until else None,
        "owner": read.owner,
        "expires_at": int(read.expires_at) if read.expires_at is not None else None,
        "send_generation": int(read.send_generation or 0),
        "sent_at": read.sent_at,
        "ended_lease_owner": read.ended_lease_owner,
        "trace_id": read.trace_id,
    }
    # A field the record gains must be read here too (and by record_of), or this test stops covering it.
    assert set(fields) == {f.name for f in dataclasses.fields(MessageRecord)}
    return MessageRecord(**fields)


STORED = _stored_records()


@pytest.mark.parametrize("name", list(STORED))
def test_a_record_is_read_by_hand_as_the_pynamodb_model_reads_it(name: str) -> None:
    """GetItem is built by hand and its item read without PynamoDB: the same record the model would give."""
    from outbox.adapters.models import bind_models
    from outbox.adapters.store import record_of

    # GIVEN a store whose table holds the item
    item = STORED[name]
    client = ReadingClient(item)
    store = DynamoDBMessageStore(PK_SK, client)  # type: ignore[arg-type]
    # WHEN it is read
    got = store.get(item["message_id"]["S"])
    # THEN the request is PynamoDB's, strongly consistent, and the record is what the model reads
    model = bind_models(PK_SK).record
    expected_request = model.get_operation_kwargs_from_class(item["PK"]["S"], "MSG") | {"ConsistentRead": True}
    assert client.requests == [expected_request]
    assert got == _model_reading(item)
    assert record_of(item) == got


@pytest.mark.parametrize("name", list(STORED))
def test_a_callers_view_is_the_same_reading_of_the_projected_attributes(name: str) -> None:
    """``view`` reads the projected item the one way ``get`` does: the shown attributes equal, nothing else read."""
    from outbox.adapters.store import VIEW_ATTRIBUTES

    # GIVEN a store whose table holds the item
    item = STORED[name]
    store = DynamoDBMessageStore(PK_SK, ReadingClient(item))  # type: ignore[arg-type]
    # WHEN a caller's view of it is read
    view = store.view(item["message_id"]["S"])
    # THEN it is the model's reading of the projection, and what it shows equals the full record's
    projected = {k: v for k, v in item.items() if k in VIEW_ATTRIBUTES}
    assert view == _model_reading(projected)
    full = store.get(item["message_id"]["S"])
    assert all(getattr(view, a) == getattr(full, a) for a in VIEW_ATTRIBUTES)
    hidden = (view.lease, view.owner, view.sent_at, view.ended_lease_owner, view.expires_at)
    assert hidden == (None, None, None, None, None)
    assert view.send_generation == 0


def test_the_stored_records_set_every_field_of_a_record() -> None:
    """Every optional field of a record is set in some stored record: the equivalence above covers each one."""
    from outbox.adapters.store import record_of
    from outbox.domain.record import MessageRecord

    records = [record_of(item) for item in STORED.values()]
    for field in dataclasses.fields(MessageRecord):
        if field.default is not dataclasses.MISSING:
            default: object = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            continue  # a field every record has
        assert any(getattr(record, field.name) != default for record in records), field.name
