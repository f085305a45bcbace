"""Callers kept apart on moto: the record's owner is stored as a keyed hash and compared on read and replay."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from outbox import Outbox
from outbox.domain.errors import IdempotencyKeyReusedError, TransactionCancelledError
from outbox.domain.id_secret import IdSecret
from outbox.domain.keys import utc_now
from outbox.domain.message import IdKey
from outbox.notifications.api import MessagesApi, caller_of
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


def _principal(arn: str) -> str:
    caller = caller_of(http_event("GET", "/", iam_arn=arn))
    assert caller is not None
    return caller.principal


def test_one_key_two_callers_two_records_each_with_a_hashed_owner(stack: Stack) -> None:
    """Same key, two principals: two records; the table holds keyed owners, no ARN."""
    api = _api(stack)
    alice = _post(api, VALID, "k-1", ALICE)
    bob = _post(api, OTHER, "k-1", BOB)
    assert alice["statusCode"] == bob["statusCode"] == 202
    records = [i for i in stack.all_items() if i["pk"]["S"].startswith("MSG#")]
    assert len(records) == 2
    assert {r["owner"]["S"] for r in records} == {IdKey(SECRET).owner(_principal(arn)) for arn in (ALICE, BOB)}
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
    outbox = Outbox(stack.resources.table_name, client=stack.dynamodb, buckets=4, id_secret=SECRET)
    mine = outbox.message({"n": 1}, type="T", idempotency_key="k", scope="tenant-a")
    outbox.transact_write([], mine)
    with pytest.raises(IdempotencyKeyReusedError) as caught:
        stack.store.accept(mine.envelope, idempotency_key="k", owner=IdKey(SECRET).owner("tenant-b"))
    assert caught.value.message_id is None


def test_the_library_scope_keeps_keys_apart(stack: Stack) -> None:
    """Outbox.message(scope=...): the same key in two scopes is two ids, both written."""
    outbox = Outbox(stack.resources.table_name, client=stack.dynamodb, buckets=4, id_secret=SECRET)
    a = outbox.message({"n": 1}, type="T", idempotency_key="k", scope="tenant-a")
    b = outbox.message({"n": 1}, type="T", idempotency_key="k", scope="tenant-b")
    unscoped = outbox.message({"n": 1}, type="T", idempotency_key="k")
    assert len({a.message_id, b.message_id, unscoped.message_id}) == 3
    outbox.transact_write([], a, b, unscoped)
    assert outbox.get(a.message_id).owner == IdKey(SECRET).owner("tenant-a")
    assert outbox.get(unscoped.message_id).owner is None


def test_the_library_finds_a_keys_message_written_before_a_rotation(stack: Stack) -> None:
    """Outbox.message in a rotation window checks the key's other id in the same transaction, raw or PynamoDB."""
    from pynamodb.connection import Connection
    from pynamodb.exceptions import TransactWriteError
    from pynamodb.transactions import TransactWrite

    before = Outbox(stack.resources.table_name, client=stack.dynamodb, buckets=4, id_secret=SECRET)
    first = before.message({"n": 1}, type="T", idempotency_key="k", scope="tenant-a")
    before.transact_write([], first)
    rotated = IdSecret("r" * 32, previous=SECRET, rotated_at=utc_now() - timedelta(days=1, hours=1))
    after = Outbox(stack.resources.table_name, client=stack.dynamodb, buckets=4, id_secret=rotated)
    again = after.message({"n": 1}, type="T", idempotency_key="k", scope="tenant-a")
    assert again.message_id != first.message_id  # the new value's id, checking the previous one's
    assert again.earlier_ids == (first.message_id,)
    with pytest.raises(TransactionCancelledError) as caught:
        after.transact_write([], again)
    assert caught.value.duplicate_message_ids == (first.message_id,)
    with pytest.raises(TransactWriteError), TransactWrite(connection=Connection(region="us-east-1")) as transaction:
        after.add_to(transaction, after.message({"n": 1}, type="T", idempotency_key="k", scope="tenant-a"))
    assert len([i for i in stack.all_items() if i["pk"]["S"].startswith("MSG#")]) == 1
