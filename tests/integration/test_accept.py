"""The API on moto: one TransactWriteItems per accepted message, nothing for a rejected one."""

from __future__ import annotations

import json

import pytest

from tests.events import http_event
from tests.integration.conftest import Stack

VALID = json.dumps({"channel": "email", "recipient": "ada@example.com", "subject": "Hi", "body": "Hello"})


def test_valid_post_makes_exactly_one_aws_request_and_two_items(stack: Stack) -> None:
    """Invariant 1 (atomic accept): a valid POST is one TransactWriteItems leaving one PENDING record and one entry."""
    # GIVEN an empty table WHEN a valid message is posted
    stack.faults.calls.clear()
    response = stack.post(VALID)

    # THEN it is accepted with one request
    assert response["statusCode"] == 202
    assert dict(stack.faults.calls) == {"TransactWriteItems": 1}
    body = json.loads(response["body"])
    assert body["status"] == "PENDING"
    assert response["headers"]["location"] == f"/messages/{body['message_id']}"
    items = stack.all_items()
    records = [i for i in items if i["pk"]["S"].startswith("MSG#")]
    entries = [i for i in items if i["pk"]["S"].startswith("OUTBOX#")]
    assert len(records) == 1
    assert len(entries) == 1
    assert records[0]["status"]["S"] == "PENDING"
    assert entries[0]["message_id"]["S"] == body["message_id"]
    assert json.loads(entries[0]["envelope"]["S"])["message_id"] == body["message_id"]
    assert int(entries[0]["expires_at"]["N"]) > 0


def test_invalid_post_returns_problem_and_writes_nothing(stack: Stack) -> None:
    """Invariant 8 (clear errors): an invalid message is a 400 problem+json and the table stays empty."""
    stack.faults.calls.clear()
    response = stack.post(json.dumps({"channel": "sms", "recipient": "not-a-phone", "body": "x", "extra": 1}))

    assert response["statusCode"] == 400
    assert response["headers"]["content-type"] == "application/problem+json"
    problem = json.loads(response["body"])
    assert problem["code"] == "VALIDATION_ERROR"
    assert {
        "field": "$",
        "reason": "1 unknown field; allowed: body, channel, group_key, metadata, recipient, subject",
    } in problem["errors"]
    assert "extra" not in response["body"]
    assert any(e["field"] == "recipient" for e in problem["errors"])
    assert "not-a-phone" not in response["body"]
    assert sum(stack.faults.calls.values()) == 0
    assert stack.all_items() == []


def test_same_idempotency_key_and_payload_returns_existing_message_without_writing(stack: Stack) -> None:
    """A repeated Idempotency-Key with the same payload answers 200 with the same message and adds nothing."""
    first = stack.post(VALID, key="order-42")
    before = stack.all_items()
    again = stack.post(VALID, key="order-42")

    assert first["statusCode"] == 202
    assert again["statusCode"] == 200
    assert again["headers"]["idempotent-replayed"] == "true"
    assert json.loads(again["body"])["message_id"] == json.loads(first["body"])["message_id"]
    assert stack.all_items() == before


def test_reused_idempotency_key_with_other_payload_is_409_and_cancelled_transaction_writes_nothing(
    stack: Stack,
) -> None:
    """Invariant 1 (atomic accept): the transaction cancelled by the record's condition writes no outbox entry."""
    stack.post(VALID, key="order-7")
    before = stack.all_items()
    other = json.dumps({"channel": "email", "recipient": "ada@example.com", "subject": "Hi", "body": "Changed"})

    response = stack.post(other, key="order-7")

    assert response["statusCode"] == 409
    assert json.loads(response["body"])["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert stack.all_items() == before


def test_throttled_transaction_is_503_with_retry_after_and_writes_nothing(stack: Stack) -> None:
    """Invariant 8 (clear errors): throttling is THROTTLED with Retry-After; a failed transaction writes nothing."""
    stack.faults.fail("TransactWriteItems", "ProvisionedThroughputExceededException")

    response = stack.post(VALID)

    assert response["statusCode"] == 503
    assert response["headers"]["retry-after"] == "1"
    assert json.loads(response["body"])["code"] == "THROTTLED"
    assert stack.all_items() == []


def test_unexpected_aws_fault_is_system_error_without_detail(stack: Stack) -> None:
    """Invariant 8 (clear errors): a real fault is a 500 SYSTEM_ERROR that leaks no internals."""
    stack.faults.fail("TransactWriteItems", "InternalServerError", status=500)

    response = stack.post(VALID)

    assert response["statusCode"] == 500
    problem = json.loads(response["body"])
    assert problem["code"] == "SYSTEM_ERROR"
    assert "Traceback" not in response["body"]
    assert "InternalServerError" not in response["body"]


def test_get_returns_status_and_history_or_404(stack: Stack) -> None:
    """GET /messages/{id} shows the status and history but not the payload; an unknown id is 404."""
    message_id = json.loads(stack.post(VALID)["body"])["message_id"]

    found = stack.api.handle(http_event("GET", f"/messages/{message_id}"))
    missing = stack.api.handle(http_event("GET", "/messages/00000000-0000-4000-8000-000000000000"))

    assert found["statusCode"] == 200
    view = json.loads(found["body"])
    assert view["status"] == "PENDING"
    assert [h["status"] for h in view["history"]] == ["PENDING"]
    assert "ada@example.com" not in found["body"]
    assert missing["statusCode"] == 404
    assert json.loads(missing["body"])["code"] == "NOT_FOUND"


CONFLICT = {"CancellationReasons": [{"Code": "TransactionConflict", "Message": "conflict"}, {"Code": "None"}]}


def test_a_conflict_injected_at_aws_is_retried_then_replays_idempotently(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TransactionConflict on the first try is retried: the POST succeeds and the table has one message."""
    monkeypatch.setattr(stack.api.acceptor, "sleep", lambda _s: None)
    stack.faults.fail("TransactWriteItems", "TransactionCanceledException", details=CONFLICT)
    response = stack.post(VALID, key="conflicted")
    assert response["statusCode"] == 202
    assert stack.faults.calls["TransactWriteItems"] == 2
    assert sum(i["pk"]["S"].startswith("MSG#") for i in stack.all_items()) == 1


def test_a_lasting_conflict_is_503_throttled_and_writes_nothing(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Conflicts on every try: 503 THROTTLED with Retry-After, never a 500, and the table stays empty."""
    monkeypatch.setattr(stack.api.acceptor, "sleep", lambda _s: None)
    stack.faults.fail("TransactWriteItems", "TransactionCanceledException", details=CONFLICT, times=-1)
    response = stack.post(VALID, key="conflicted")
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["code"] == "THROTTLED"
    assert response["headers"]["retry-after"] == "1"
    assert stack.all_items() == []
