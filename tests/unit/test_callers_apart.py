"""Callers kept apart: scoped Idempotency-Keys, unguessable ids, reads of one's own messages only."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outbox.api import MessagesApi, principal_of
from outbox.domain.errors import ConfigurationError
from outbox.domain.message import is_message_id, new_message_id, owner_of
from outbox.service.accept import Acceptor
from outbox.settings import Settings
from outbox.testing import InMemoryMessageStore
from tests.events import http_event

JSON_HEADERS = {"content-type": "application/json"}
ALICE = "arn:aws:iam::123456789012:user/alice"
BOB = "arn:aws:iam::123456789012:user/bob"
SECRET = "s" * 32


def _body(recipient: str = "https://hooks.example.com/x") -> str:
    return json.dumps({"channel": "webhook", "recipient": recipient, "body": "{}"})


def _post(api: MessagesApi, key: str | None = None, body: str | None = None, **who: Any) -> dict[str, Any]:
    headers = JSON_HEADERS | ({"idempotency-key": key} if key else {})
    return api.handle(http_event("POST", "/messages", body=body or _body(), headers=headers, **who))


def _get(api: MessagesApi, message_id: str, **who: Any) -> dict[str, Any]:
    return api.handle(http_event("GET", f"/messages/{message_id}", **who))


def test_principal_is_the_iam_caller_else_the_jwt_issuer_and_subject() -> None:
    """IAM first; a JWT subject counts with its issuer; nothing else is a principal."""
    both = http_event("GET", "/", iam_arn=ALICE, jwt_claims={"sub": "u1", "iss": "https://idp"})
    assert principal_of(both) == f"iam:{ALICE}"
    one = principal_of(http_event("GET", "/", jwt_claims={"sub": "u1", "iss": "https://a"}))
    other = principal_of(http_event("GET", "/", jwt_claims={"sub": "u1", "iss": "https://b"}))
    assert one
    assert other
    assert one != other
    assert principal_of(http_event("GET", "/")) is None
    assert principal_of(http_event("GET", "/", jwt_claims={"iss": "https://a"})) is None
    assert principal_of(http_event("GET", "/", iam_arn="")) is None


@pytest.mark.parametrize(("method", "path"), [("POST", "/messages"), ("GET", f"/messages/{uuid.uuid4()}")])
def test_require_principal_refuses_anonymous_with_401_and_writes_nothing(method: str, path: str) -> None:
    """OUTBOX_REQUIRE_PRINCIPAL: no principal, a 401 UNAUTHENTICATED problem, and no record."""
    store = InMemoryMessageStore()
    api = MessagesApi(Acceptor(store, id_secret=SECRET), require_principal=True)
    response = api.handle(http_event(method, path, body=_body(), headers=JSON_HEADERS))
    assert response["statusCode"] == 401
    assert response["headers"]["content-type"] == "application/problem+json"
    problem = json.loads(response["body"])
    assert problem["code"] == "UNAUTHENTICATED"
    assert problem["status"] == 401
    assert store.records == {}
    assert _post(api, iam_arn=ALICE)["statusCode"] == 202


def test_settings_read_the_principal_switch_and_the_id_secret() -> None:
    """OUTBOX_REQUIRE_PRINCIPAL is a boolean; OUTBOX_ID_SECRET is optional but never short."""
    base = {"OUTBOX_TABLE_NAME": "t", "OUTBOX_REQUIRE_PRINCIPAL": "true"}
    assert Settings.from_env(base).id_secret is None
    with pytest.raises(ConfigurationError, match="at least 32"):
        Settings.from_env(base | {"OUTBOX_ID_SECRET": "short"})
    with pytest.raises(ConfigurationError, match="true or false"):
        Settings.from_env({"OUTBOX_TABLE_NAME": "t", "OUTBOX_REQUIRE_PRINCIPAL": "maybe"})
    settings = Settings.from_env(base | {"OUTBOX_ID_SECRET": SECRET})
    assert settings.require_principal
    assert settings.id_secret == SECRET
    assert not Settings.from_env({"OUTBOX_TABLE_NAME": "t"}).require_principal


def test_same_key_two_callers_two_messages_and_a_conflict_names_only_ones_own() -> None:
    """Alice's key is not Bob's: two messages; Alice's own reuse is a 409 with her own id only."""
    store = InMemoryMessageStore()
    api = MessagesApi(Acceptor(store, id_secret=SECRET), require_principal=True)
    alice = json.loads(_post(api, "k-1", iam_arn=ALICE)["body"])["message_id"]
    bob_response = _post(api, "k-1", body=_body("https://hooks.example.com/other"), iam_arn=BOB)
    assert bob_response["statusCode"] == 202
    bob = json.loads(bob_response["body"])["message_id"]
    assert alice != bob
    assert len(store.records) == 2
    conflict = _post(api, "k-1", body=_body("https://hooks.example.com/other"), iam_arn=ALICE)
    assert conflict["statusCode"] == 409
    assert json.loads(conflict["body"])["message_id"] == alice
    assert bob not in conflict["body"]


def test_get_of_anothers_message_is_the_404_of_an_unknown_id() -> None:
    """Same status, headers and body, byte for byte, as an id nobody has: the answer names no id."""
    store = InMemoryMessageStore()
    api = MessagesApi(Acceptor(store, id_secret=SECRET), require_principal=True)
    alice = json.loads(_post(api, "k", iam_arn=ALICE)["body"])["message_id"]
    assert _get(api, alice, iam_arn=ALICE)["statusCode"] == 200
    theirs = _get(api, alice, iam_arn=BOB)
    unknown_id = str(uuid.uuid4())
    unknown = _get(api, unknown_id, iam_arn=BOB)
    assert theirs["statusCode"] == unknown["statusCode"] == 404
    assert theirs["headers"] == unknown["headers"]
    assert theirs["body"] == unknown["body"]
    assert alice not in theirs["body"]


def test_anonymous_reads_only_unscoped_messages() -> None:
    """Locally (no principal required) anonymous callers share one scope, apart from signed callers."""
    api = MessagesApi(Acceptor(InMemoryMessageStore()))
    anonymous = json.loads(_post(api, "k")["body"])["message_id"]
    alice = json.loads(_post(api, "k", iam_arn=ALICE)["body"])["message_id"]
    assert anonymous != alice
    assert _get(api, anonymous)["statusCode"] == 200
    assert _get(api, alice)["statusCode"] == 404
    assert _get(api, anonymous, iam_arn=ALICE)["statusCode"] == 404


def test_ids_are_keyed_hashes_of_scope_and_key() -> None:
    """Without the secret an id cannot be computed; scopes, keys and secrets all change it."""
    key = "order-42"
    keyed = new_message_id(key, scope="iam:a", secret=SECRET)
    assert is_message_id(keyed)
    assert keyed == new_message_id(key, scope="iam:a", secret=SECRET)
    assert keyed != new_message_id(key, scope="iam:a", secret="t" * 32)
    assert keyed != new_message_id(key, scope="iam:b", secret=SECRET)
    assert keyed != new_message_id(key, scope=None, secret=SECRET)
    assert keyed != new_message_id(key, scope="iam:a")  # the unkeyed (library) derivation
    assert new_message_id(key, scope="", secret=SECRET) != new_message_id(key, secret=SECRET)
    assert new_message_id("b:c", scope="a", secret=SECRET) != new_message_id("c", scope="a:b", secret=SECRET)
    assert new_message_id(key) == str(uuid.uuid5(uuid.UUID("6f1c3a52-8a57-4b39-9a0e-2f4d1d7c5b10"), key))


def test_records_keep_a_hash_of_the_principal_never_the_principal() -> None:
    """The table holds no ARN or e-mail: the record's owner is a SHA-256."""
    store = InMemoryMessageStore()
    api = MessagesApi(Acceptor(store, id_secret=SECRET))
    _post(api, "k", jwt_claims={"sub": "alice@example.com", "iss": "https://idp"})
    (record,) = store.records.values()
    assert record.owner is not None
    assert len(record.owner) == 64
    assert "alice@example.com" not in repr(record)


principals = st.one_of(
    st.builds(lambda n: f"arn:aws:iam::123456789012:user/{n}", st.text("abcdefgh-_@.", min_size=1, max_size=12)),
    st.text(min_size=1, max_size=40),
)
keys = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    a=st.tuples(principals, st.booleans()),
    b=st.tuples(principals, st.booleans()),
    key=keys,
    same_body=st.booleans(),
    secret=st.sampled_from([None, SECRET]),
)
def test_no_cross_principal_read_replay_or_leak(
    a: tuple[str, bool], b: tuple[str, bool], key: str, same_body: bool, secret: str | None
) -> None:
    """Two callers, one key: never one's replay of the other's message, read of it, or its id in a response."""
    (pa, a_jwt), (pb, b_jwt) = a, b

    def who(principal: str, jwt: bool) -> dict[str, Any]:
        return {"jwt_claims": {"sub": principal, "iss": "https://idp"}} if jwt else {"iam_arn": principal}

    scope_a = principal_of(http_event("GET", "/", **who(pa, a_jwt)))
    scope_b = principal_of(http_event("GET", "/", **who(pb, b_jwt)))
    if scope_a == scope_b:
        return  # one caller
    store = InMemoryMessageStore()
    api = MessagesApi(Acceptor(store, id_secret=secret), require_principal=True)
    first = _post(api, key, **who(pa, a_jwt))
    assert first["statusCode"] == 202
    a_id = json.loads(first["body"])["message_id"]
    body = None if same_body else _body("https://hooks.example.com/b")
    second = _post(api, key, body=body, **who(pb, b_jwt))
    assert second["statusCode"] == 202, "another caller's key is never a replay nor a conflict"
    assert a_id not in json.dumps(second)
    b_id = json.loads(second["body"])["message_id"]
    assert b_id != a_id
    assert _get(api, a_id, **who(pb, b_jwt))["statusCode"] == 404
    assert _get(api, b_id, **who(pa, a_jwt))["statusCode"] == 404
    assert _get(api, a_id, **who(pa, a_jwt))["statusCode"] == 200
    assert {record.owner for record in store.records.values()} == {owner_of(scope_a), owner_of(scope_b)}
