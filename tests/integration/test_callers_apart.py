"""Callers kept apart on moto: the record's owner is stored hashed and compared on read and replay."""

from __future__ import annotations

import json

import pytest

from outbox import Outbox
from outbox.api import MessagesApi
from outbox.domain.errors import IdempotencyKeyReusedError
from outbox.domain.message import owner_of
from outbox.service.accept import Acceptor
from tests.events import http_event
from tests.integration.conftest import Stack

VALID = json.dumps({"channel": "email", "recipient": "ada@example.com", "subject": "Hi", "body": "Hello"})
OTHER = json.dumps({"channel": "email", "recipient": "bob@example.com", "subject": "Hi", "body": "Hello"})
ALICE = "arn:aws:iam::123456789012:user/alice"
BOB = "arn:aws:iam::123456789012:user/bob"
SECRET = "x" * 32


def _api(stack: Stack) -> MessagesApi:
    return MessagesApi(Acceptor(stack.store, id_secret=SECRET), require_principal=True)


def _post(api: MessagesApi, body: str, key: str, arn: str) -> dict[str, object]:
    headers = {"content-type": "application/json", "idempotency-key": key}
    return api.handle(http_event("POST", "/messages", body=body, headers=headers, iam_arn=arn))


def test_one_key_two_callers_two_records_each_with_a_hashed_owner(stack: Stack) -> None:
    """Same key, two principals: two records; the table holds SHA-256 owners, no ARN."""
    api = _api(stack)
    alice = _post(api, VALID, "k-1", ALICE)
    bob = _post(api, OTHER, "k-1", BOB)
    assert alice["statusCode"] == bob["statusCode"] == 202
    records = [i for i in stack.all_items() if i["pk"]["S"].startswith("MSG#")]
    assert len(records) == 2
    assert {r["owner"]["S"] for r in records} == {owner_of(f"iam:{ALICE}"), owner_of(f"iam:{BOB}")}
    assert ALICE not in json.dumps(stack.all_items())
    assert BOB not in json.dumps(stack.all_items())


def test_replay_conflict_and_reads_stay_with_their_caller(stack: Stack) -> None:
    """A caller's replay is a 200, its reuse a 409 with its own id; another's GET is the unknown 404."""
    api = _api(stack)
    first = _post(api, VALID, "k-2", ALICE)
    message_id = json.loads(str(first["body"]))["message_id"]
    replay = _post(api, VALID, "k-2", ALICE)
    assert replay["statusCode"] == 200
    conflict = _post(api, OTHER, "k-2", ALICE)
    assert conflict["statusCode"] == 409
    assert json.loads(str(conflict["body"]))["message_id"] == message_id
    own = api.handle(http_event("GET", f"/messages/{message_id}", iam_arn=ALICE))
    assert own["statusCode"] == 200
    theirs = api.handle(http_event("GET", f"/messages/{message_id}", iam_arn=BOB))
    assert theirs["statusCode"] == 404
    assert "recipient" not in str(theirs["body"])


def test_a_record_of_another_owner_at_the_same_id_is_neither_replayed_nor_named(stack: Stack) -> None:
    """Defence in depth: should two scopes ever meet at one id, the second gets a 409 naming nothing."""
    outbox = Outbox(stack.resources.table_name, client=stack.dynamodb, buckets=4)
    mine = outbox.message({"n": 1}, type="T", idempotency_key="k", scope="tenant-a")
    outbox.transact_write([], mine)
    with pytest.raises(IdempotencyKeyReusedError) as caught:
        stack.store.accept(mine.envelope, idempotency_key="k", owner=owner_of("tenant-b"))
    assert caught.value.message_id is None


def test_the_library_scope_keeps_keys_apart(stack: Stack) -> None:
    """Outbox.message(scope=...): the same key in two scopes is two ids, both written."""
    outbox = Outbox(stack.resources.table_name, client=stack.dynamodb, buckets=4, id_secret=SECRET)
    a = outbox.message({"n": 1}, type="T", idempotency_key="k", scope="tenant-a")
    b = outbox.message({"n": 1}, type="T", idempotency_key="k", scope="tenant-b")
    unscoped = outbox.message({"n": 1}, type="T", idempotency_key="k")
    assert len({a.message_id, b.message_id, unscoped.message_id}) == 3
    outbox.transact_write([], a, b, unscoped)
    assert outbox.get(a.message_id).owner == owner_of("tenant-a")
    assert outbox.get(unscoped.message_id).owner is None
