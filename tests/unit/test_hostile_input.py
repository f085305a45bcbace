"""Hostile input, generated: no 5xx and no write from the API, no crash loop in the worker or consumer."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outbox.logs import configure_logging
from outbox.notifications.api import HTTP_STATUS, MessagesApi
from outbox.service.accept import Acceptor
from outbox.service.consume import Consumer
from outbox.service.relay import Relay
from outbox.service.stream import StreamWorker
from outbox.testing import FakeLambdaContext, FakePublisher, InMemoryMessageStore
from tests.profiles import UNIT

STABLE_CODES = set(HTTP_STATUS)
SECRET = "hostile-input-id-secret-0123456789abcdef"
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
near_valid = st.fixed_dictionaries(
    {
        "channel": st.sampled_from(["email", "sms", "push", "webhook", "fax", ""]) | json_scalars,
        "recipient": st.sampled_from(["a@example.com", "+14155550100", "https://x.example", "\ud800", ""]) | st.text(),
        "body": st.text(max_size=50) | json_scalars,
    },
    optional={
        "subject": st.text(max_size=30),
        "metadata": json_values,
        "group_key": st.text(max_size=30),
        "x": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=300).map(lambda b: (base64.b64encode(b).decode(), True)),
    st.text(max_size=300).map(lambda t: (t, False)),
    json_values.map(lambda v: (json.dumps(v), False)),
    near_valid.map(lambda v: (json.dumps(v), False)),
    st.integers(1, 20_000).map(lambda depth: ("[" * depth + "]" * depth, False)),
    st.just(("x" * 70_000, False)),
)
paths = st.one_of(
    st.sampled_from(["/messages", "/messages/", "/messages/..", "//messages", "/messages/%00", "/messages/../admin"]),
    st.text(max_size=60).map(lambda t: "/" + t),
    st.uuids().map(lambda u: f"/messages/{u}"),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "",
        "application/problem+json",
        "APPLICATION/JSON",
    ]
) | st.text(max_size=40)
headers = st.fixed_dictionaries(
    {"content-type": content_types},
    optional={
        "idempotency-key": st.text(max_size=300),
        "x-amzn-trace-id": st.text(max_size=300),
        "x-big": st.text(min_size=5000, max_size=9000),
    },
)


def _event(method: str, path: str, header_map: dict[str, str], body: tuple[str, bool]) -> dict[str, Any]:
    return {
        "version": "2.0",
        "rawPath": path,
        "headers": header_map,
        "requestContext": {"http": {"method": method, "path": path}, "requestId": "r", "stage": "$default"},
        "body": body[0],
        "isBase64Encoded": body[1],
    }


# The strategies of each property, for its many-example run too (tests/integration/test_properties_thorough.py).
API_REQUESTS = {
    "method": st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "post", "BREW"]),
    "path": paths,
    "header_map": headers,
    "body": bodies,
}


@UNIT
@given(**API_REQUESTS)
def test_api_never_fails_on_hostile_requests(
    method: str, path: str, header_map: dict[str, str], body: tuple[str, bool]
) -> None:
    """Invariant 8 (clear errors): any request is < 500, problem+json with a stable code; rejections write nothing."""
    store = InMemoryMessageStore()

    response = MessagesApi(Acceptor(store, id_secret=SECRET)).handle(_event(method, path, header_map, body))

    assert response["statusCode"] < 500
    if response["statusCode"] >= 400:
        assert response["headers"]["content-type"] == "application/problem+json"
        assert json.loads(response["body"])["code"] in STABLE_CODES
        assert store.records == {}
    else:
        assert len(store.records) == 1


stream_records = st.lists(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "eventName": st.sampled_from(["INSERT", "MODIFY", "REMOVE"]) | json_scalars,
                "dynamodb": st.fixed_dictionaries(
                    {
                        "Keys": st.just({"pk": {"S": "OUTBOX#0001"}}) | json_values,
                        "SequenceNumber": st.text(max_size=10) | json_scalars,
                        "NewImage": st.dictionaries(
                            st.sampled_from(
                                ["pk", "sk", "message_id", "envelope", "created_at", "expires_at", "group_key"]
                            ),
                            st.dictionaries(st.sampled_from(["S", "N", "M", "L", "BOOL"]), json_values, max_size=2),
                        )
                        | json_values,
                    }
                ),
            }
        ),
    ),
    max_size=8,
)


STREAM_BATCHES = {"records": stream_records}


@UNIT
@given(**STREAM_BATCHES)
def test_worker_never_crashes_on_hostile_stream_records(records: list[Any]) -> None:
    """Invariant 7 (no poison blocks a shard): malformed records are skipped or quarantined, never raised."""
    relay = Relay(InMemoryMessageStore(), FakePublisher())
    try:
        response = StreamWorker(relay).handle({"Records": records}, FakeLambdaContext())
    finally:
        relay.close()
    sequence_numbers = [  # a list: a hostile record's sequence number may be anything, unhashable included
        r["dynamodb"].get("SequenceNumber")
        for r in records
        if isinstance(r, dict) and isinstance(r.get("dynamodb"), dict)
    ]
    for failure in response["batchItemFailures"]:
        assert failure["itemIdentifier"]
        assert failure["itemIdentifier"] in sequence_numbers


SQS_BODIES = {"bodies": st.lists(st.text(max_size=200) | json_values.map(json.dumps), max_size=6)}


@UNIT
@given(**SQS_BODIES)
def test_consumer_never_crashes_on_hostile_bodies(bodies: list[str]) -> None:
    """A garbage SQS body is rejected (left for the DLQ), never an exception that fails the whole batch."""
    event = {"Records": [{"messageId": f"m{i}", "body": b} for i, b in enumerate(bodies)]}

    response = Consumer(InMemoryMessageStore()).handle(event)

    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} <= {f"m{i}" for i in range(len(bodies))}


SQS_REFUSED = ["\\ud800", "\\udfff", "\\ufffe", "\\uffff"]  # as JSON escapes: what json.loads turns into them
TEXT_FIELDS = {
    "body": '{"channel":"sms","recipient":"+14155550100","body":"a%sb"}',
    "subject": '{"channel":"email","recipient":"a@example.com","subject":"a%sb","body":"x"}',
    "metadata": '{"channel":"sms","recipient":"+14155550100","body":"x","metadata":{"k":"a%sb"}}',
    "recipient": '{"channel":"webhook","recipient":"https://x.example/%s","body":"x"}',
}


@pytest.mark.parametrize("char", SQS_REFUSED)
@pytest.mark.parametrize("field", sorted(TEXT_FIELDS))
def test_characters_sqs_refuses_are_a_400_and_write_nothing(field: str, char: str) -> None:
    """Lone surrogates, U+FFFE and U+FFFF would make SendMessage fail for ever: refused at the door."""
    store = InMemoryMessageStore()
    body = TEXT_FIELDS[field] % char
    response = MessagesApi(Acceptor(store, id_secret=SECRET)).handle(
        _event("POST", "/messages", {"content-type": "application/json"}, (body, False))
    )
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["code"] == "VALIDATION_ERROR"
    assert store.records == {}


def _post_logged(data: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    logs = io.StringIO()
    configure_logging(logs)
    response = MessagesApi(Acceptor(InMemoryMessageStore(), id_secret=SECRET)).handle(
        _event("POST", "/messages", {"content-type": "application/json"}, (json.dumps(data), False))
    )
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    return response["body"], [{k: v for k, v in line.items() if k != "timestamp"} for line in lines]


FIELD_NAMES = {"names": st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=4, unique=True)}


@UNIT
@given(**FIELD_NAMES)
def test_unknown_field_names_are_counted_never_echoed(names: list[str]) -> None:
    """Client text never comes back nor goes to the log: the answer is the same whatever the unknown names."""
    unknown = [n for n in names if n not in {"channel", "recipient", "subject", "body", "metadata", "group_key"}]
    if not unknown:
        return
    valid = {"channel": "sms", "recipient": "+14155550100", "body": "hi"}
    body, logs = _post_logged(valid | dict.fromkeys(unknown, 1))
    placeholder_body, placeholder_logs = _post_logged(valid | {f"q{i}": 1 for i in range(len(unknown))})
    assert body == placeholder_body
    assert logs == placeholder_logs
