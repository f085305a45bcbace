"""Callers kept apart: principals from stable identity fields, keyed ids and owners, reads of one's own only."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outbox.domain.caller import ANONYMOUS, Caller, RoleSessions, iam_caller
from outbox.domain.clock import WriteClock
from outbox.domain.errors import ConfigurationError
from outbox.domain.id_secret import IdSecret
from outbox.domain.message import IdKey, is_message_id, legacy_owner, new_message_id
from outbox.domain.record import MessageRecord
from outbox.domain.status import Status
from outbox.notifications.api import MessagesApi, caller_of
from outbox.service.accept import Acceptor, new_message
from outbox.settings import MIN_ID_SECRET_WINDOW_S, Settings
from outbox.testing import InMemoryMessageStore
from tests.events import ACCOUNT, http_event, iam_authorizer, unique_id
from tests.profiles import UNIT

JSON_HEADERS = {"content-type": "application/json"}
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
SECRET = "s" * 32
NEW_SECRET = "n" * 32


def _body(recipient: str = "https://hooks.example.com/x") -> str:
    return json.dumps({"channel": "webhook", "recipient": recipient, "body": "{}"})


def _post(api: MessagesApi, key: str | None = None, body: str | None = None, **who: Any) -> dict[str, Any]:
    headers = JSON_HEADERS | ({"idempotency-key": key} if key else {})
    return api.handle(http_event("POST", "/messages", body=body or _body(), headers=headers, **who))


def _get(api: MessagesApi, message_id: str, **who: Any) -> dict[str, Any]:
    return api.handle(http_event("GET", f"/messages/{message_id}", **who))


def _id(response: dict[str, Any]) -> str:
    assert response["statusCode"] in {200, 202}, response
    message_id: str = json.loads(response["body"])["message_id"]
    return message_id


def _role(role: str, session: str) -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}"


def test_the_iam_principal_is_the_unique_id_in_its_account_never_the_arn() -> None:
    """An IAM user is its unique id (AIDA...) in its account: a user deleted and created again is another caller."""
    alice = caller_of(http_event("GET", "/", iam_arn=ALICE))
    assert alice == Caller(f"iam:{ACCOUNT}:{unique_id('AIDA', 'alice')}", legacy=f"iam:{ALICE}")
    recreated = http_event("GET", "/", iam_arn=ALICE)
    recreated["requestContext"]["authorizer"]["iam"]["userId"] = "AIDANEWALICE00000000"
    assert caller_of(recreated) != alice
    elsewhere = http_event("GET", "/", iam_arn=ALICE.replace(ACCOUNT, "210987654321"))
    elsewhere["requestContext"]["authorizer"]["iam"]["userId"] = alice.principal.rsplit(":", 1)[1]  # type: ignore[union-attr]
    assert caller_of(elsewhere) != alice  # the account is part of it
    root_arn = f"arn:aws:iam::{ACCOUNT}:root"
    assert caller_of(http_event("GET", "/", iam_arn=root_arn)) == Caller(f"iam:{ACCOUNT}:{ACCOUNT}", f"iam:{root_arn}")


def test_an_assumed_roles_sessions_are_one_caller_by_default_and_a_session_name_is_never_one() -> None:
    """Every session of a role is the role (rotating names stay one caller); the same name in two roles is two."""
    first = caller_of(http_event("GET", "/", iam_arn=_role("orders", "ecs-task-1a2b")))
    refreshed = caller_of(http_event("GET", "/", iam_arn=_role("orders", "ecs-task-9f8e")))
    assert first == refreshed == Caller(f"iam:{ACCOUNT}:{unique_id('AROA', 'orders')}/*")
    assert caller_of(http_event("GET", "/", iam_arn=_role("billing", "ecs-task-1a2b"))) != first
    alice_session = caller_of(http_event("GET", "/", iam_arn=_role("orders", "alice")))
    assert alice_session == first  # the session name "alice" says nothing about who assumed the role
    assert alice_session != caller_of(http_event("GET", "/", iam_arn=ALICE))
    assert alice_session is not None
    assert alice_session.legacy is None  # 0.1.0's principal ended in the session name


def test_with_role_sessions_apart_each_session_is_its_own_caller() -> None:
    """OUTBOX_ROLE_SESSIONS=apart: sessions named by someone trusted (IAM Identity Center) are callers."""
    apart = RoleSessions.APART
    alice = caller_of(http_event("GET", "/", iam_arn=_role("AWSReservedSSO_Dev", "alice@example.com")), apart)
    bob = caller_of(http_event("GET", "/", iam_arn=_role("AWSReservedSSO_Dev", "bob@example.com")), apart)
    assert alice is not None
    assert bob is not None
    assert alice != bob
    assert alice.principal == f"iam:{ACCOUNT}:{unique_id('AROA', 'AWSReservedSSO_Dev')}/alice@example.com"
    user = caller_of(http_event("GET", "/", iam_arn=ALICE), apart)
    assert user == caller_of(http_event("GET", "/", iam_arn=ALICE))  # users are users either way


def test_a_cognito_identity_is_the_caller_not_the_pools_shared_role() -> None:
    """Every user of an identity pool arrives as one role session: the identity id tells them apart."""
    pool_role = _role("Cognito_OrdersAuth_Role", "CognitoIdentityCredentials")
    ada = caller_of(http_event("GET", "/", iam_arn=pool_role, cognito_identity_id="eu-west-1:1111-ada"))
    bea = caller_of(http_event("GET", "/", iam_arn=pool_role, cognito_identity_id="eu-west-1:2222-bea"))
    assert ada == Caller(f"cognito:{ACCOUNT}:eu-west-1:1111-ada")
    assert bea is not None
    assert ada != bea
    for sessions in RoleSessions:
        assert (
            caller_of(http_event("GET", "/", iam_arn=pool_role, cognito_identity_id="eu-west-1:1111-ada"), sessions)
            == ada
        )


def test_the_jwt_principal_is_the_issuer_and_the_subject() -> None:
    """A JWT subject counts with its issuer; IAM wins when both are present; nothing else is a principal."""
    both = http_event("GET", "/", iam_arn=ALICE, jwt_claims={"sub": "u1", "iss": "https://idp"})
    assert caller_of(both) == caller_of(http_event("GET", "/", iam_arn=ALICE))
    one = caller_of(http_event("GET", "/", jwt_claims={"sub": "u1", "iss": "https://a"}))
    other = caller_of(http_event("GET", "/", jwt_claims={"sub": "u1", "iss": "https://b"}))
    assert one == Caller("jwt:9:https://a:u1", legacy="jwt:9:https://a:u1")  # 0.1.0's, the same
    assert other is not None
    assert one != other
    assert caller_of(http_event("GET", "/")) is None
    assert caller_of(http_event("GET", "/", jwt_claims={"iss": "https://a"})) is None


@pytest.mark.parametrize(
    "fields",
    [
        {"accountId": None},
        {"accountId": "not-an-account"},
        {"userId": None},
        {"userId": ""},
        {"userId": "AROAEXAMPLE000000000:"},  # a role without its session
        {"userId": "aroa-lower:case"},
    ],
)
def test_an_iam_authorizer_that_names_nobody_is_no_caller(fields: dict[str, Any]) -> None:
    """Missing or malformed identity fields never fall back to the ARN: no principal (401 where one is required)."""
    event = http_event("GET", f"/messages/{uuid.uuid4()}", iam_arn=ALICE)
    event["requestContext"]["authorizer"]["iam"] |= fields
    assert caller_of(event) is None
    api = MessagesApi(Acceptor(InMemoryMessageStore(), id_secret=SECRET), require_principal=True)
    assert api.handle(event)["statusCode"] == 401


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


def test_settings_read_the_id_secret_its_window_and_the_role_sessions() -> None:
    """OUTBOX_ID_SECRET_ARN or a 32+ character OUTBOX_ID_SECRET (not both); a window of 0 or 600+ s; shared/apart."""
    base = {"OUTBOX_TABLE_NAME": "t", "OUTBOX_REQUIRE_PRINCIPAL": "true"}
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-id-secret-AbCdEf"
    plain = Settings.from_env(base)
    assert (plain.id_secret, plain.id_secret_arn, plain.role_sessions) == (None, None, RoleSessions.SHARED)
    assert plain.id_secret_window == timedelta(days=1)
    assert Settings.from_env(base | {"OUTBOX_ID_SECRET_ARN": arn}).id_secret_arn == arn
    with pytest.raises(ConfigurationError, match="at least 32"):
        Settings.from_env(base | {"OUTBOX_ID_SECRET": "short"})
    with pytest.raises(ConfigurationError, match="not both"):
        Settings.from_env(base | {"OUTBOX_ID_SECRET": SECRET, "OUTBOX_ID_SECRET_ARN": arn})
    assert Settings.from_env(base | {"OUTBOX_ID_SECRET_WINDOW_SECONDS": "0"}).id_secret_window == timedelta(0)
    for wrong in ("60", "-1", "soon"):
        with pytest.raises(ConfigurationError, match="OUTBOX_ID_SECRET_WINDOW_SECONDS"):
            Settings.from_env(base | {"OUTBOX_ID_SECRET_WINDOW_SECONDS": wrong})
    assert Settings.from_env(base | {"OUTBOX_ROLE_SESSIONS": "apart"}).role_sessions is RoleSessions.APART
    with pytest.raises(ConfigurationError, match="shared or apart"):
        Settings.from_env(base | {"OUTBOX_ROLE_SESSIONS": "per-session"})
    with pytest.raises(ConfigurationError, match="true or false"):
        Settings.from_env({"OUTBOX_TABLE_NAME": "t", "OUTBOX_REQUIRE_PRINCIPAL": "maybe"})
    assert "repr" not in repr(Settings.from_env(base | {"OUTBOX_ID_SECRET": "repr" * 8}))  # never logged by accident
    assert MIN_ID_SECRET_WINDOW_S >= 2 * 300  # twice the refresh of adapters/secret.py


def test_same_key_two_callers_two_messages_and_a_conflict_names_only_ones_own() -> None:
    """Alice's key is not Bob's: two messages; Alice's own reuse is a 409 with her own id only."""
    store = InMemoryMessageStore()
    api = MessagesApi(Acceptor(store, id_secret=SECRET), require_principal=True)
    alice = _id(_post(api, "k-1", iam_arn=ALICE))
    bob = _id(_post(api, "k-1", body=_body("https://hooks.example.com/other"), iam_arn=BOB))
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
    alice = _id(_post(api, "k", iam_arn=ALICE))
    assert _get(api, alice, iam_arn=ALICE)["statusCode"] == 200
    theirs = _get(api, alice, iam_arn=BOB)
    unknown = _get(api, str(uuid.uuid4()), iam_arn=BOB)
    assert theirs["statusCode"] == unknown["statusCode"] == 404
    assert theirs["headers"] == unknown["headers"]
    assert theirs["body"] == unknown["body"]
    assert alice not in theirs["body"]


def test_anothers_message_is_read_no_further_than_an_unknown_id() -> None:
    """No timing tell: another's id and an unknown id cost the same read (the owner alone), nothing more."""
    store = InMemoryMessageStore()
    api = MessagesApi(Acceptor(store, id_secret=SECRET), require_principal=True)
    alice = _id(_post(api, "k", iam_arn=ALICE))
    unknown = str(uuid.uuid4())
    store.reads.clear()
    _get(api, alice, iam_arn=BOB)
    _get(api, unknown, iam_arn=BOB)
    assert store.reads == [("stored_owner", alice), ("stored_owner", unknown)]
    _get(api, alice, iam_arn=ALICE)
    assert store.reads[2:] == [("stored_owner", alice), ("view", alice)]  # only one's own record is read further


def test_the_anonymous_scope_is_its_own_never_the_librarys() -> None:
    """Locally (no principal required) anonymous callers share one scope: not a signed caller's, not the library's."""
    store = InMemoryMessageStore()
    api = MessagesApi(Acceptor(store, id_secret=SECRET))
    anonymous = _id(_post(api, "k"))
    alice = _id(_post(api, "k", iam_arn=ALICE))
    assert anonymous != alice
    assert _get(api, anonymous)["statusCode"] == 200
    assert _get(api, alice)["statusCode"] == 404
    assert _get(api, anonymous, iam_arn=ALICE)["statusCode"] == 404
    # The library's message of the same key (Outbox.message without a scope) is another id, and not the anonymous one's.
    keys = IdSecret(SECRET).keys(datetime.now(UTC))
    library = new_message({"n": 1}, type="T", idempotency_key="k", keys=keys)
    assert library.envelope.message_id != anonymous
    assert library.owner is None
    store.accept(library.envelope, idempotency_key="k", by="service")
    assert _get(api, library.envelope.message_id)["statusCode"] == 404
    assert store.records[anonymous].owner == IdKey(SECRET).owner(ANONYMOUS.principal)


def test_ids_and_owners_are_keyed_hashes_of_scope_and_key() -> None:
    """Without the secret neither can be computed; scopes, keys and secrets all change them; no unscoped collision."""
    key, secret = "order-42", IdKey(SECRET)
    keyed = secret.message_id(key, "iam:a")
    assert is_message_id(keyed)
    assert keyed == IdKey(SECRET).message_id(key, "iam:a")
    assert keyed != IdKey("t" * 32).message_id(key, "iam:a")
    assert keyed != secret.message_id(key, "iam:b")
    assert keyed != secret.message_id(key, None)
    assert secret.message_id(key, "") != secret.message_id(key, None)
    assert secret.message_id("b:c", "a") != secret.message_id("c", "a:b")
    assert keyed != str(uuid.uuid5(uuid.UUID("6f1c3a52-8a57-4b39-9a0e-2f4d1d7c5b10"), f"6:iam:a:{key}"))  # 0.1.0's
    assert secret.owner("iam:a") != legacy_owner("iam:a") == hashlib.sha256(b"outbox-owner:iam:a").hexdigest()
    assert secret.owner("iam:a") != IdKey("t" * 32).owner("iam:a")
    assert SECRET not in repr(secret)
    assert SECRET not in repr(IdSecret(SECRET, previous=NEW_SECRET))
    with pytest.raises(ConfigurationError):
        IdKey("short")
    with pytest.raises(ConfigurationError):
        new_message_id(key)


def test_records_keep_a_keyed_hash_of_the_principal_never_the_principal() -> None:
    """The table holds no ARN or e-mail, nor a plain hash a table reader reverses: the owner is an HMAC."""
    store = InMemoryMessageStore()
    api = MessagesApi(Acceptor(store, id_secret=SECRET))
    claims = {"sub": "alice@example.com", "iss": "https://idp"}
    _post(api, "k", jwt_claims=claims)
    (record,) = store.records.values()
    principal = "jwt:11:https://idp:alice@example.com"
    assert record.owner == IdKey(SECRET).owner(principal)
    assert record.owner != legacy_owner(principal)
    assert "alice@example.com" not in repr(record)


NOW = datetime(2027, 1, 10, 12, tzinfo=UTC)
WINDOW = timedelta(hours=1)


def test_a_rotation_writes_the_previous_value_for_a_window_then_the_new_one_checking_the_other() -> None:
    """Before: one key. In the window: the previous one written, the new one's id checked; then the reverse."""
    rotated = IdSecret(NEW_SECRET, previous=SECRET, rotated_at=NOW, window=WINDOW)
    old, new = IdKey(SECRET), IdKey(NEW_SECRET)

    def ids(at: datetime) -> tuple[str, list[str], set[str]]:
        keys = rotated.keys(at)
        return keys.write.message_id("k", "s"), [k.message_id("k", "s") for k in keys.earlier], keys.owners("s")

    both = {old.owner("s"), new.owner("s")}
    assert IdSecret(SECRET).keys(NOW).owners("s") == {old.owner("s")}
    assert ids(NOW + timedelta(minutes=5)) == (old.message_id("k", "s"), [new.message_id("k", "s")], both)
    assert ids(NOW + WINDOW + timedelta(minutes=5)) == (new.message_id("k", "s"), [old.message_id("k", "s")], both)
    assert ids(NOW + 2 * WINDOW) == (new.message_id("k", "s"), [], both)
    assert IdSecret(NEW_SECRET, previous=SECRET, rotated_at=NOW, window=timedelta(0)).keys(NOW).write.owner("s") == (
        new.owner("s")
    )


class Clock:
    """A settable clock for the acceptor."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize("after", [timedelta(minutes=5), WINDOW + timedelta(minutes=5)])
def test_a_retry_across_a_rotation_finds_its_message(after: timedelta) -> None:
    """A message written before the rotation, retried in or after the window: the same message, and still readable."""
    store = InMemoryMessageStore()
    source = [IdSecret(SECRET)]
    clock = Clock(NOW - timedelta(minutes=1))

    class Source:
        def id_secret(self) -> IdSecret:
            return source[0]

    api = MessagesApi(Acceptor(store, id_secret=Source(), clock=WriteClock(clock)), require_principal=True)
    first = _id(_post(api, "k", iam_arn=ALICE))
    source[0] = IdSecret(NEW_SECRET, previous=SECRET, rotated_at=NOW, window=WINDOW)
    clock.now = NOW + after
    retry = _post(api, "k", iam_arn=ALICE)
    assert (retry["statusCode"], _id(retry)) == (200, first)
    assert len(store.records) == 1
    assert _get(api, first, iam_arn=ALICE)["statusCode"] == 200
    assert _get(api, first, iam_arn=BOB)["statusCode"] == 404
    # A message written after the rotation is read, and replayed, the same way.
    later = _id(_post(api, "k-2", iam_arn=ALICE))
    assert _id(_post(api, "k-2", iam_arn=ALICE)) == later
    assert _get(api, later, iam_arn=ALICE)["statusCode"] == 200


def _legacy_record(owner: str) -> MessageRecord:
    """A record 0.1.0 wrote: its owner an unkeyed SHA-256 of its principal."""
    at = "2026-11-30T12:00:00.000Z"
    return MessageRecord(str(uuid.uuid4()), Status.QUEUED, "h", at, at, (), "notification", owner=owner)


def test_records_of_0_1_0_stay_readable_only_where_their_principal_was_safe() -> None:
    """A JWT caller and an IAM user read 0.1.0's records of them; an assumed role's session name never opens one."""
    store = InMemoryMessageStore()
    api = MessagesApi(Acceptor(store, id_secret=SECRET), require_principal=True)
    claims = {"sub": "u-1", "iss": "https://idp"}
    session = _role("orders", "alice")
    records = {
        "jwt": _legacy_record(legacy_owner("jwt:11:https://idp:u-1")),
        "user": _legacy_record(legacy_owner(f"iam:{ALICE}")),
        "role": _legacy_record(legacy_owner(f"iam:{session}")),
        "anonymous": _legacy_record(""),
    }
    store.records |= {record.message_id: record for record in records.values()}
    assert _get(api, records["jwt"].message_id, jwt_claims=claims)["statusCode"] == 200
    assert _get(api, records["user"].message_id, iam_arn=ALICE)["statusCode"] == 200
    assert _get(api, records["user"].message_id, iam_arn=BOB)["statusCode"] == 404
    # Anyone who assumes the role with the session name "alice" made 0.1.0's principal; it opens nothing now.
    assert _get(api, records["role"].message_id, iam_arn=session)["statusCode"] == 404
    assert _get(api, records["anonymous"].message_id, iam_arn=session)["statusCode"] == 404
    local = MessagesApi(Acceptor(store, id_secret=SECRET))
    assert _get(local, records["anonymous"].message_id)["statusCode"] == 404  # nor the anonymous scope


callers = st.one_of(
    st.builds(
        lambda n: {"iam_arn": f"arn:aws:iam::{ACCOUNT}:user/{n}"}, st.text("abcdefgh-_@.", min_size=1, max_size=12)
    ),
    st.builds(
        lambda r, s: {"iam_arn": _role(r, s)}, st.sampled_from(["orders", "billing"]), st.sampled_from(["a", "b"])
    ),
    st.builds(
        lambda i: {"iam_arn": _role("Cognito_Pool_Role", "CognitoIdentityCredentials"), "cognito_identity_id": i},
        st.sampled_from(["eu-west-1:1", "eu-west-1:2"]),
    ),
    st.builds(lambda s: {"jwt_claims": {"sub": s, "iss": "https://idp"}}, st.text(min_size=1, max_size=40)),
)
keys = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)


# The property's strategies, for its many-example run too (tests/integration/test_properties_thorough.py).
TWO_CALLERS = {"a": callers, "b": callers, "key": keys, "same_body": st.booleans()}


@UNIT
@given(**TWO_CALLERS)
def test_no_cross_principal_read_replay_or_leak(
    a: dict[str, Any], b: dict[str, Any], key: str, same_body: bool
) -> None:
    """Two callers, one key: never one's replay of the other's message, read of it, or its id in a response."""
    caller_a = caller_of(http_event("GET", "/", **a))
    caller_b = caller_of(http_event("GET", "/", **b))
    assert caller_a is not None
    assert caller_b is not None
    if caller_a == caller_b:
        return  # one caller
    store = InMemoryMessageStore()
    api = MessagesApi(Acceptor(store, id_secret=SECRET), require_principal=True)
    a_id = _id(_post(api, key, **a))
    body = None if same_body else _body("https://hooks.example.com/b")
    second = _post(api, key, body=body, **b)
    assert second["statusCode"] == 202, "another caller's key is never a replay nor a conflict"
    assert a_id not in json.dumps(second)
    b_id = _id(second)
    assert b_id != a_id
    assert _get(api, a_id, **b)["statusCode"] == 404
    assert _get(api, b_id, **a)["statusCode"] == 404
    assert _get(api, a_id, **a)["statusCode"] == 200
    key_ = IdKey(SECRET)
    assert {record.owner for record in store.records.values()} == {
        key_.owner(caller_a.principal),
        key_.owner(caller_b.principal),
    }


def test_the_fixture_fills_every_field_of_the_iam_authorizer() -> None:
    """The test events carry what API Gateway sends (tests/integration/http_api_events holds the documented ones)."""
    assert set(iam_authorizer(ALICE)) == {
        "accessKey",
        "accountId",
        "callerId",
        "cognitoIdentity",
        "principalOrgId",
        "userArn",
        "userId",
    }
    cognito = iam_authorizer(_role("R", "CognitoIdentityCredentials"), cognito_identity_id="eu-west-1:x")
    assert set(cognito["cognitoIdentity"]) == {"amr", "identityId", "identityPoolId"}
    assert iam_caller(account_id=ACCOUNT, user_id=None, cognito_identity_id="eu-west-1:x") == Caller(
        f"cognito:{ACCOUNT}:eu-west-1:x"
    )
