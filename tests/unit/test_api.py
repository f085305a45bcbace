"""The API handler's HTTP contract, on the in-memory store (no AWS)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from outbox.domain.errors import AwsError, CancellationReason, ItemPart, TransactionCancelledError
from outbox.notifications.api import MAX_BODY_BYTES, MessagesApi
from outbox.service.accept import CONFLICT_RETRY_PAUSES_S, Acceptor
from outbox.testing import InMemoryMessageStore
from tests.events import http_event

VALID = {"channel": "webhook", "recipient": "https://hooks.example.com/x", "body": "{}"}
JSON_HEADERS = {"content-type": "application/json"}
SECRET = "api-tests-id-secret-0123456789abcdef"


@pytest.fixture
def store() -> InMemoryMessageStore:
    """A fresh store."""
    return InMemoryMessageStore()


@pytest.fixture
def api(store: InMemoryMessageStore) -> MessagesApi:
    """A fresh api."""
    return MessagesApi(Acceptor(store, id_secret=SECRET))


def _problem(response: dict[str, Any], status: int, code: str) -> dict[str, Any]:
    assert response["statusCode"] == status
    assert response["headers"]["content-type"] == "application/problem+json"
    body: dict[str, Any] = json.loads(response["body"])
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"].startswith("urn:outbox:problem:")
    return body


def test_post_accepts_and_get_reads_back(api: MessagesApi) -> None:
    """POST is 202 with the id and Location; GET of that Location is the record."""
    posted = api.handle(http_event("POST", "/messages", body=json.dumps(VALID), headers=JSON_HEADERS))
    assert posted["statusCode"] == 202
    got = api.handle(http_event("GET", posted["headers"]["location"]))
    assert got["statusCode"] == 200
    assert json.loads(got["body"])["message_id"] == json.loads(posted["body"])["message_id"]


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("DELETE", "/messages", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/messages", 405, "METHOD_NOT_ALLOWED"),
        ("POST", "/messages/00000000-0000-4000-8000-000000000000", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/elsewhere", 404, "NOT_FOUND"),
        ("GET", "/messages/../../etc/passwd", 404, "NOT_FOUND"),
        ("GET", "/messages/%2e%2e", 404, "NOT_FOUND"),
        ("GET", "/messages/not-a-uuid", 404, "NOT_FOUND"),
        ("GET", "/messages/00000000-0000-4000-8000-000000000000", 404, "NOT_FOUND"),
    ],
)
def test_routing_errors(api: MessagesApi, method: str, path: str, status: int, code: str) -> None:
    """Unknown paths are 404 and wrong methods 405 with an Allow header, all as problem+json."""
    response = api.handle(http_event(method, path))
    _problem(response, status, code)
    if status == 405:
        assert response["headers"]["allow"] in {"POST", "GET"}


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, json.dumps(VALID), 415, "UNSUPPORTED_MEDIA_TYPE"),
        ({"content-type": "text/plain"}, json.dumps(VALID), 415, "UNSUPPORTED_MEDIA_TYPE"),
        (JSON_HEADERS, "x" * (MAX_BODY_BYTES + 1), 413, "PAYLOAD_TOO_LARGE"),
        (JSON_HEADERS, "", 400, "VALIDATION_ERROR"),
        (JSON_HEADERS, "{not json", 400, "VALIDATION_ERROR"),
        (JSON_HEADERS, "[" * 30_000 + "]" * 30_000, 400, "VALIDATION_ERROR"),
        (JSON_HEADERS, '{"channel": "sms", "channel": "email"}', 400, "VALIDATION_ERROR"),
        (JSON_HEADERS, '{"channel": NaN}', 400, "VALIDATION_ERROR"),
        (JSON_HEADERS, '"\\ud800"', 400, "VALIDATION_ERROR"),
        (JSON_HEADERS | {"idempotency-key": "k\u2603"}, json.dumps(VALID), 400, "VALIDATION_ERROR"),
    ],
)
def test_bad_requests_are_problems_and_write_nothing(
    api: MessagesApi, store: InMemoryMessageStore, headers: dict[str, str], body: str, status: int, code: str
) -> None:
    """Invariant 8 (clear errors): each kind of bad request has its stable code and writes nothing."""
    _problem(api.handle(http_event("POST", "/messages", body=body, headers=headers)), status, code)
    assert store.records == {}


def test_base64_body_and_charset_parameter_are_accepted(api: MessagesApi) -> None:
    """A base64-encoded body (as API Gateway sends binary) and a charset parameter are fine."""
    body = base64.b64encode(json.dumps(VALID).encode()).decode()
    headers = {"content-type": "application/json; charset=utf-8"}
    assert api.handle(http_event("POST", "/messages", body=body, headers=headers, b64=True))["statusCode"] == 202


def test_invalid_base64_and_non_utf8_are_validation_errors(api: MessagesApi) -> None:
    """Broken base64 and bytes that are not UTF-8 are 400, not 500."""
    bad_b64 = http_event("POST", "/messages", body="!!!", headers=JSON_HEADERS, b64=True)
    latin1 = base64.b64encode('{"body": "caf\xe9"}'.encode("latin-1")).decode()
    not_utf8 = http_event("POST", "/messages", body=latin1, headers=JSON_HEADERS, b64=True)
    _problem(api.handle(bad_b64), 400, "VALIDATION_ERROR")
    _problem(api.handle(not_utf8), 400, "VALIDATION_ERROR")


def test_named_stage_prefix_is_stripped(api: MessagesApi) -> None:
    """With a named stage the raw path carries it; routing ignores it."""
    event = http_event("POST", "/prod/messages", body=json.dumps(VALID), headers=JSON_HEADERS, stage="prod")
    assert api.handle(event)["statusCode"] == 202


def test_not_an_http_api_event_is_a_validation_error(api: MessagesApi) -> None:
    """An event of another shape is rejected, not crashed on."""
    _problem(api.handle({"Records": []}), 400, "VALIDATION_ERROR")


def test_unexpected_exception_is_a_bare_500(api: MessagesApi, store: InMemoryMessageStore) -> None:
    """Invariant 8 (clear errors): a bug is SYSTEM_ERROR with no stack trace or exception text."""

    def boom(*_: Any, **__: Any) -> Any:
        raise KeyError("secret-internal-detail")

    store.accept = boom  # type: ignore[method-assign]
    response = api.handle(http_event("POST", "/messages", body=json.dumps(VALID), headers=JSON_HEADERS))
    body = _problem(response, 500, "SYSTEM_ERROR")
    assert "secret-internal-detail" not in response["body"]
    assert body["detail"] == "the request could not be completed"


def test_retryable_aws_fault_is_500_with_retry_after(api: MessagesApi, store: InMemoryMessageStore) -> None:
    """A passing AWS fault is SYSTEM_ERROR, and Retry-After tells the client it may try again."""
    store.fail_next["accept"] = AwsError("TransactWriteItems failed (InternalServerError)", retryable=True)
    response = api.handle(http_event("POST", "/messages", body=json.dumps(VALID), headers=JSON_HEADERS))
    _problem(response, 500, "SYSTEM_ERROR")
    assert response["headers"]["retry-after"] == "1"


def _conflict() -> TransactionCancelledError:
    return TransactionCancelledError([CancellationReason(0, ItemPart.RECORD, "TransactionConflict", "", "m")])


def test_a_transaction_conflict_is_retried_then_accepted(
    api: MessagesApi, store: InMemoryMessageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A passing TransactionConflict (a concurrent POST with the same key) is retried, not a 500."""
    monkeypatch.setattr(api.acceptor, "sleep", lambda _s: None)
    store.fail_next["accept"] = _conflict()
    response = api.handle(http_event("POST", "/messages", body=json.dumps(VALID), headers=JSON_HEADERS))
    assert response["statusCode"] == 202


def test_a_lasting_transaction_conflict_is_503_throttled(
    api: MessagesApi, store: InMemoryMessageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Conflicts on every try end as 503 THROTTLED with Retry-After, never a 500, and nothing is written."""
    pauses: list[float] = []
    monkeypatch.setattr(api.acceptor, "sleep", pauses.append)

    def always_conflicts(*_: Any, **__: Any) -> Any:
        raise _conflict()

    store.accept = always_conflicts  # type: ignore[method-assign]
    response = api.handle(http_event("POST", "/messages", body=json.dumps(VALID), headers=JSON_HEADERS))
    _problem(response, 503, "THROTTLED")
    assert response["headers"]["retry-after"] == "1"
    assert pauses == [0.0, *CONFLICT_RETRY_PAUSES_S]
    assert store.records == {}


def test_the_bucket_check_runs_once_before_the_first_accept_and_never_for_a_read(store: InMemoryMessageStore) -> None:
    """A GET needs no AWS call beyond its own; the first POST checks the table's bucket count, later ones do not."""
    checks: list[int] = []
    api = MessagesApi(Acceptor(store, id_secret=SECRET, before_first_accept=lambda: checks.append(1)))
    api.handle(http_event("GET", "/messages/00000000-0000-4000-8000-000000000000"))
    assert checks == []
    for _ in range(3):
        api.handle(http_event("POST", "/messages", body=json.dumps(VALID), headers=JSON_HEADERS))
    assert checks == [1]
