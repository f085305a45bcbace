"""The store's cached request templates build exactly the UpdateItem PynamoDB builds per call (no AWS)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from outbox.adapters.models import bind_models
from outbox.adapters.store import DynamoDBMessageStore, RequestTemplate
from outbox.domain.record import iso, record_pk
from outbox.domain.status import TRANSITIONS, Status, sources_of
from outbox.logs import configure_logging, debug_enabled

NOW = "2026-11-25T10:00:00.000Z"


class RecordingClient:
    """Answers every UpdateItem with nothing and keeps the requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def update_item(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return {"Attributes": {"status": {"S": "PENDING"}, "attempts": {"N": "2"}}}


def per_call_request(message_id: str, to: Status, sources: frozenset[Status], by: str, reason: str | None) -> Any:
    """The request as built before templates: PynamoDB's expression objects, every call."""
    model = bind_models("outbox").record
    line = {"status": to.value, "at": NOW, "by": by} | ({"reason": reason} if reason else {})
    actions: list[Any] = [
        model.status.set(to.value),
        model.updated_at.set(NOW),
        model.history.set(model.history.append([line])),
    ]
    if reason:  # an empty reason is no reason
        actions.append(model.reason.set(reason))
    if to is Status.PROCESSING:
        actions.append(model.attempts.add(1))
    elif to is Status.QUEUED:
        actions.append(model.attempts.set(0))
    condition = model.pk.exists() & model.status.is_in(*(s.value for s in sorted(sources)))
    return model(record_pk(message_id), "MSG").get_update_kwargs_from_instance(
        actions, condition, return_values_on_condition_failure="ALL_OLD"
    )


EDGES = [(to, frozenset({source})) for source, targets in TRANSITIONS.items() for to in targets]
EDGES += [(to, sources_of(to)) for to in Status if sources_of(to)]


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> tuple[DynamoDBMessageStore, RecordingClient]:
    """A store on a recording client, its clock stopped at NOW."""
    monkeypatch.setattr("outbox.adapters.store.utc_now", lambda: datetime.fromisoformat(NOW))
    client = RecordingClient()
    return DynamoDBMessageStore("outbox", client=client), client  # type: ignore[arg-type]


@pytest.mark.parametrize(("to", "sources"), EDGES, ids=lambda v: str(getattr(v, "value", sorted(v))))
@pytest.mark.parametrize("reason", [None, "", "SQS refused the message: InvalidParameterValue"])
def test_template_request_equals_the_per_call_build(
    store: tuple[DynamoDBMessageStore, RecordingClient], to: Status, sources: frozenset[Status], reason: str | None
) -> None:
    """Every lifecycle edge, with and without a reason, on the first call and on the cached template."""
    s, client = store
    for message_id, by in (("m-1", "worker"), ("m-2", "consumer")):  # the second call reuses the template
        s.transition(message_id, to, by=by, reason=reason, expected=sources)
        request = client.requests[-1]
        returns = request.pop("ReturnValues")
        assert request == per_call_request(message_id, to, sources, by, reason)
        # The old values are asked for only when the result cannot be known without them.
        assert returns == ("UPDATED_OLD" if len(sources) > 1 or to is Status.PROCESSING else "NONE")
    assert len(s._transitions) == 1


def test_single_source_result_comes_from_the_condition(store: tuple[DynamoDBMessageStore, RecordingClient]) -> None:
    """With one allowed source and no attempts to report, the answer is not needed (ReturnValues NONE)."""
    s, _ = store
    result = s.transition("m-1", Status.COMPLETED, by="consumer", expected=frozenset({Status.PROCESSING}))
    assert (result.previous, result.status, result.attempts) == (Status.PROCESSING, Status.COMPLETED, 0)
    started = s.transition("m-1", Status.PROCESSING, by="consumer", expected=frozenset({Status.QUEUED}))
    assert (started.previous, started.attempts) == (Status.PENDING, 3)  # from the UPDATED_OLD answer


def test_values_that_look_like_markers_are_kept_verbatim(store: tuple[DynamoDBMessageStore, RecordingClient]) -> None:
    """Filling is one pass: an id, actor or reason spelled like a marker is not expanded again."""
    s, client = store
    message_id, by, reason = "\x00now\x00", "\\u0000reason\\u0000", "\x00by\x00 \\u0000message_id\\u0000"
    s.transition(message_id, Status.FAILED, by=by, reason=reason)
    request = client.requests[-1]
    request.pop("ReturnValues")
    assert request == per_call_request(message_id, Status.FAILED, sources_of(Status.FAILED), by, reason)


def test_a_template_builds_a_fresh_request_from_any_json_like_literal() -> None:
    """Quotes, backslashes, non-ASCII, numbers, booleans and None survive; each fill shares nothing."""
    template = RequestTemplate(
        {"a": 'it\'s "x" \\ é \x00now\x00-\x00by\x00', "n": [1, 2.5, True, None], "m": {"k": "\x00now\x00"}}
    )

    first = template.fill(now="N", by="B", reason="unused")
    assert first == {"a": 'it\'s "x" \\ é N-B', "n": [1, 2.5, True, None], "m": {"k": "N"}}
    first["m"]["k"] = "changed"
    first["n"].append(3)
    assert template.fill(now="N", by="B") == {"a": 'it\'s "x" \\ é N-B', "n": [1, 2.5, True, None], "m": {"k": "N"}}


def test_a_template_refuses_what_a_request_cannot_hold() -> None:
    """Only JSON-like values, and only marker names that can be parameters."""
    with pytest.raises(TypeError, match="cannot hold a bytes"):
        RequestTemplate({"b": b"raw"})
    with pytest.raises(ValueError, match="identifiers"):
        RequestTemplate({"k": "\x00if\x00"})


def test_relay_failure_count_uses_one_cached_request(store: tuple[DynamoDBMessageStore, RecordingClient]) -> None:
    """count_relay_failure shares the template cache: same expression, per-call key."""
    s, client = store
    assert s.count_relay_failure("m-1") == 1
    s.count_relay_failure("m-2")
    first, second = client.requests
    assert first["Key"]["pk"] == {"S": "MSG#m-1"}
    assert second["Key"]["pk"] == {"S": "MSG#m-2"}
    assert first["UpdateExpression"] == second["UpdateExpression"]
    assert first["ExpressionAttributeNames"] == {"#0": "pk", "#1": "status", "#2": "relay_attempts"}
    assert first["ReturnValues"] == "UPDATED_OLD"


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
