"""Callers apart through the API's Lambda entry point, with complete HTTP API events, on moto.

The events are whole payload 2.0 documents (``tests/integration/http_api_events/``), not minimal
dicts; the handler is ``worker.api.handler`` configured through the environment as the Terraform
module deploys it (``OUTBOX_REQUIRE_PRINCIPAL=true``, ``OUTBOX_ID_SECRET_ARN`` naming a Secrets
Manager secret, its rotation window and the role-session rule).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import botocore.session
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

import worker.api
from outbox import Outbox
from outbox.adapters import aws
from outbox.domain.clock import WriteClock
from outbox.domain.keys import utc_now
from outbox.domain.message import IdKey, legacy_owner
from outbox.notifications.api import caller_of
from outbox.settings import Settings
from tests.integration.conftest import Stack, build_stack
from tests.integration.http_api_events import documented_event, request

ACCOUNT = "123456789012"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
OTHER_BODY = json.dumps({"channel": "email", "recipient": "bea@example.com", "subject": "Basket", "body": "Saved"})
# Few examples, each a handful of requests on one moto stack: a second or two in all.
EXAMPLES = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# IAM names ([\w+=,.@-], at most 64) as users, or roles assumed with a session name.
_iam_name = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789+=,.@_-"), min_size=1, max_size=64
)
iam_arns = st.one_of(
    _iam_name.map(lambda name: f"arn:aws:iam::{ACCOUNT}:user/{name}"),
    st.tuples(_iam_name, _iam_name).map(lambda rs: f"arn:aws:sts::{ACCOUNT}:assumed-role/{rs[0]}/{rs[1][:32]}"),
)
# Idempotency-Keys the API accepts: printable ASCII without spaces, at most 255 characters.
keys = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=80)
issuers = st.sampled_from(
    [
        "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_EXAMPLE",
        "https://login.example.com/",
        "https://login.example.com",
        "https://idp.example.org/realms/outbox",
    ]
)
subjects = st.one_of(st.uuids().map(str), st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789|:@.-", min_size=1))


class _Context:
    """The part of Lambda's context the handler reads."""

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())


SECRET_VALUE = "k9" * 32  # what Secrets Manager generated (64 characters, as the module asks for)


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A stack on moto and the API's Lambda entry point, configured as the module deploys it."""
    with mock_aws():
        stack = build_stack()
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        secret_arn = secrets.create_secret(Name="outbox-id-secret-test", SecretString=SECRET_VALUE)["ARN"]
        environment = {
            "OUTBOX_TABLE_NAME": stack.resources.table_name,
            "OUTBOX_BUCKETS": "4",  # what build_stack's bootstrap stored
            "OUTBOX_REQUIRE_PRINCIPAL": "true",
            "OUTBOX_ID_SECRET_ARN": secret_arn,
            "OUTBOX_ID_SECRET_WINDOW_SECONDS": "86400",
            "OUTBOX_ROLE_SESSIONS": "shared",
            "OUTBOX_METRICS": "off",
        }
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("OUTBOX_ID_SECRET", raising=False)
        worker.api.default_api.cache_clear()  # built from this environment at its first call
        yield stack
        worker.api.default_api.cache_clear()
        stack.relay.close()


def owner(principal: str, secret: str = SECRET_VALUE) -> str:
    """The owner a record of ``principal`` holds under the id secret's value."""
    return IdKey(secret).owner(principal)


def principal(event: dict[str, Any]) -> str:
    """The principal the API builds for an event (as deployed: an assumed role's sessions shared)."""
    caller = caller_of(event)
    assert caller is not None
    return caller.principal


def call(event: dict[str, Any]) -> dict[str, Any]:
    """One invocation of the deployed handler."""
    response: dict[str, Any] = worker.api.handler(event, _Context())
    return response


def message_id_of(response: dict[str, Any]) -> str:
    """The id an accepted (202) or replayed (200) POST answers."""
    assert response["statusCode"] in {200, 202}, response
    message_id: str = json.loads(response["body"])["message_id"]
    return message_id


def records(stack: Stack) -> list[dict[str, Any]]:
    """The message records in the table."""
    return [item for item in stack.all_items() if item["pk"]["S"].startswith("MSG#")]


def test_the_fixtures_are_the_documented_payload_shapes() -> None:
    """Payload 2.0 as AWS documents it: the IAM authorizer's seven fields, JWT claims as strings, scopes."""
    for kind in ("iam", "assumed_role", "cognito", "jwt", "no_authorizer"):
        event = documented_event(kind)
        assert event["version"] == "2.0"
        assert {"routeKey", "rawPath", "rawQueryString", "headers", "requestContext", "body", "isBase64Encoded"} <= set(
            event
        )
        context = event["requestContext"]
        assert {"accountId", "apiId", "domainName", "domainPrefix", "http", "requestId", "routeKey", "stage"} <= set(
            context
        )
        assert {"time", "timeEpoch"} <= set(context)
        assert set(context["http"]) == {"method", "path", "protocol", "sourceIp", "userAgent"}
        assert int(event["headers"]["content-length"]) == len(event["body"].encode())
    for kind in ("iam", "assumed_role", "cognito"):
        iam = documented_event(kind)["requestContext"]["authorizer"]
        assert set(iam) == {"iam"}
        assert set(iam["iam"]) == {
            "accessKey",
            "accountId",
            "callerId",
            "cognitoIdentity",
            "principalOrgId",
            "userArn",
            "userId",
        }
        assert iam["iam"]["callerId"] == iam["iam"]["userId"]
        assert f"Credential={iam['iam']['accessKey']}/" in documented_event(kind)["headers"]["authorization"]
    assert documented_event("iam")["requestContext"]["authorizer"]["iam"]["cognitoIdentity"] is None
    # An assumed role: AROA...:<session>, and the session ends the ARN.
    role = documented_event("assumed_role")["requestContext"]["authorizer"]["iam"]
    assert role["cognitoIdentity"] is None
    role_id, session = role["userId"].split(":")
    assert role_id.startswith("AROA")
    assert role["userArn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/orders-service/{session}"
    # A Cognito identity pool's user: the pool role's shared session, and the identity.
    cognito = documented_event("cognito")["requestContext"]["authorizer"]["iam"]
    assert cognito["userId"].endswith(":CognitoIdentityCredentials")
    assert cognito["userArn"].endswith(":assumed-role/Cognito_OrdersAuth_Role/CognitoIdentityCredentials")
    assert set(cognito["cognitoIdentity"]) == {"amr", "identityId", "identityPoolId"}
    assert cognito["cognitoIdentity"]["amr"][0] == "authenticated"
    jwt = documented_event("jwt")["requestContext"]["authorizer"]
    assert set(jwt) == {"jwt"}
    claims = jwt["jwt"]["claims"]
    assert {"iss", "sub", "aud", "exp"} <= set(claims)
    assert all(isinstance(value, str) for value in claims.values())  # API Gateway passes every claim as a string
    assert jwt["jwt"]["scopes"] == claims["scope"].split()
    assert "authorizer" not in documented_event("no_authorizer")["requestContext"]


def test_two_iam_users_with_one_idempotency_key_get_two_messages(deployed: Stack) -> None:
    """Invariant 9: the same key and body from two IAM users is two messages, each its own caller's."""
    alice = call(request("iam", user_arn=ALICE, key="order-42"))
    bob = call(request("iam", user_arn=BOB, key="order-42"))
    assert alice["statusCode"] == bob["statusCode"] == 202
    assert message_id_of(alice) != message_id_of(bob)
    principals = {principal(request("iam", user_arn=arn)) for arn in (ALICE, BOB)}
    assert {record["owner"]["S"] for record in records(deployed)} == {owner(p) for p in principals}
    assert ALICE not in json.dumps(deployed.all_items())  # the table keeps a hash, never the ARN
    for arn, response in ((ALICE, alice), (BOB, bob)):
        own = call(request("iam", "GET", message_id_of(response), user_arn=arn))
        assert own["statusCode"] == 200
        assert json.loads(own["body"])["message_id"] == message_id_of(response)


@EXAMPLES
@given(arns=st.lists(iam_arns, min_size=2, max_size=2, unique=True), key=keys)
def test_iam_callers_never_meet_whatever_their_names_and_keys(deployed: Stack, arns: list[str], key: str) -> None:
    """Invariant 9, generated: one key, two IAM principals; two ids, each replayed only to its caller."""
    first, second = arns
    mine = message_id_of(call(request("iam", user_arn=first, key=key)))
    theirs = message_id_of(call(request("iam", user_arn=second, key=key)))
    assert mine != theirs
    assert message_id_of(call(request("iam", user_arn=first, key=key))) == mine  # the caller's own replay
    assert call(request("iam", "GET", mine, user_arn=first))["statusCode"] == 200
    unknown = call(request("iam", "GET", str(uuid.uuid4()), user_arn=second))
    for reader, message_id in ((second, mine), (first, theirs)):
        assert _answer(call(request("iam", "GET", message_id, user_arn=reader))) == _answer(unknown)


@EXAMPLES
@given(
    pair=st.lists(issuers, min_size=2, max_size=2, unique=True),
    subject=subjects,
    renewed=st.integers(min_value=1, max_value=10**6),
)
def test_the_jwt_principal_is_the_issuer_and_the_subject(
    deployed: Stack, pair: list[str], subject: str, renewed: int
) -> None:
    """Issuer and subject, nothing else of the token: a renewed token is the same caller, another issuer another."""
    issuer, other_issuer = pair
    claims = {"iss": issuer, "sub": subject}
    event = request("jwt", claims=claims, key="k")
    assert principal(event) == f"jwt:{len(issuer)}:{issuer}:{subject}"
    message_id = message_id_of(call(event))
    assert {r["owner"]["S"] for r in records(deployed) if r["pk"]["S"] == f"MSG#{message_id}"} == {
        owner(principal(event))
    }
    # A new token of the same caller: new expiry, issue time, id, audience and scopes; same message.
    exp = str(1_740_833_700 + renewed)
    fresh = {**claims, "exp": exp, "iat": str(int(exp) - 3600), "jti": str(uuid.uuid4()), "aud": "another-client"}
    renewed_event = request("jwt", claims=fresh, scopes=["outbox/messages.write"], key="k")
    assert principal(renewed_event) == principal(event)
    assert message_id_of(call(renewed_event)) == message_id
    # The same subject from another issuer is another caller: its own message, and none of the first's.
    stranger = {"iss": other_issuer, "sub": subject}
    assert message_id_of(call(request("jwt", claims=stranger, key="k"))) != message_id
    unknown = call(request("jwt", "GET", str(uuid.uuid4()), claims=stranger))
    assert _answer(call(request("jwt", "GET", message_id, claims=stranger))) == _answer(unknown)


def test_get_by_another_principal_is_the_unknown_id_404_byte_for_byte(deployed: Stack) -> None:
    """Invariant 9: another caller's id answers exactly what an id nobody has answers, for IAM and JWT readers."""
    message_id = message_id_of(call(request("iam", user_arn=ALICE)))
    readers: list[dict[str, Any]] = [{"kind": "iam", "user_arn": BOB}, {"kind": "jwt"}]
    for reader in readers:
        theirs = call(request(method="GET", message_id=message_id, **reader))
        unknown = call(request(method="GET", message_id=str(uuid.uuid4()), **reader))
        assert theirs["statusCode"] == unknown["statusCode"] == 404
        assert theirs["headers"] == unknown["headers"]
        assert theirs["body"] == unknown["body"]
        assert message_id not in theirs["body"]
        assert json.loads(theirs["body"])["code"] == "NOT_FOUND"


def test_without_an_authorizer_a_required_principal_is_a_401_and_nothing_is_written(deployed: Stack) -> None:
    """OUTBOX_REQUIRE_PRINCIPAL: a route without authorizer gets 401 UNAUTHENTICATED; no item, no stream record."""
    for event in (request("no_authorizer", key="order-42"), request("no_authorizer", key=None)):
        response = call(event)
        assert response["statusCode"] == 401
        assert response["headers"]["content-type"] == "application/problem+json"
        assert json.loads(response["body"])["code"] == "UNAUTHENTICATED"
    assert deployed.all_items() == []
    assert deployed.stream_event()["Records"] == []
    # Nor may it read a signed caller's message.
    message_id = message_id_of(call(request("iam", user_arn=ALICE)))
    read = call(request("no_authorizer", "GET", message_id))
    assert read["statusCode"] == 401
    assert message_id not in read["body"]
    assert len(records(deployed)) == 1


def _answer(response: dict[str, Any]) -> tuple[int, dict[str, str], str]:
    """Everything a client sees of a response."""
    return response["statusCode"], response["headers"], response["body"]


def _role_event(method: Any = "POST", message_id: str | None = None, **changes: Any) -> dict[str, Any]:
    return request("assumed_role", method, message_id, **changes)


def test_an_assumed_roles_refreshed_session_is_the_same_caller(deployed: Stack) -> None:
    """Invariant 9: a workload whose session name rotates (ECS task, IRSA) keeps its message and is not sent twice."""
    first = call(_role_event(key="order-7"))
    assert first["statusCode"] == 202
    # The credentials were refreshed: a new session name, the same role. The retry is the same message.
    retry = call(_role_event(key="order-7", session="ecs-task-9e8d7c6b5a4f"))
    assert (retry["statusCode"], message_id_of(retry)) == (200, message_id_of(first))
    assert call(_role_event("GET", message_id_of(first), session="ecs-task-9e8d7c6b5a4f"))["statusCode"] == 200
    assert len(records(deployed)) == 1


def test_a_session_name_makes_no_caller(deployed: Stack) -> None:
    """RoleSessionName=alice in another role is that role, never Alice: her message stays hers."""
    alice = call(request("iam", user_arn=ALICE, key="order-8"))
    other_role = f"arn:aws:sts::{ACCOUNT}:assumed-role/someone-elses-role/alice"
    squatter = call(request("iam", user_arn=other_role, key="order-8"))
    assert squatter["statusCode"] == 202
    assert message_id_of(squatter) != message_id_of(alice)
    theirs = call(request("iam", "GET", message_id_of(alice), user_arn=other_role))
    unknown = call(request("iam", "GET", str(uuid.uuid4()), user_arn=other_role))
    assert _answer(theirs) == _answer(unknown)
    assert principal(request("iam", user_arn=other_role)) == principal(
        request("iam", user_arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/someone-elses-role/bob")
    )


def test_the_users_of_a_cognito_identity_pool_are_callers_apart(deployed: Stack) -> None:
    """Every user of the pool arrives as the same role session: the identity id keeps their keys and reads apart."""
    ada = call(request("cognito", key="basket-1"))
    bea_identity = "eu-west-1:0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
    bea = call(request("cognito", key="basket-1", identity_id=bea_identity, body=OTHER_BODY))
    assert (ada["statusCode"], bea["statusCode"]) == (202, 202)  # not Ada's replay, not a 409 naming her message
    assert message_id_of(ada) not in bea["body"]
    theirs = call(request("cognito", "GET", message_id_of(ada), identity_id=bea_identity))
    unknown = call(request("cognito", "GET", str(uuid.uuid4()), identity_id=bea_identity))
    assert _answer(theirs) == _answer(unknown)
    assert call(request("cognito", "GET", message_id_of(ada)))["statusCode"] == 200


def test_ids_and_owners_are_keyed_with_the_secret_the_function_reads(deployed: Stack) -> None:
    """With the module's configuration the id is an HMAC under the Secrets Manager value: no guess computes it."""
    event = request("iam", user_arn=ALICE, key="order-9")
    message_id = message_id_of(call(event))
    assert message_id == IdKey(SECRET_VALUE).message_id("order-9", principal(event))
    (record,) = records(deployed)
    assert record["owner"]["S"] == owner(principal(event))
    # What a caller knowing Alice's ARN and key could compute: 0.1.0's ids and owners, of any principal.
    namespace = uuid.UUID("6f1c3a52-8a57-4b39-9a0e-2f4d1d7c5b10")
    for candidate in (f"iam:{ALICE}", principal(event)):
        assert message_id != str(uuid.uuid5(namespace, f"{len(candidate)}:{candidate}:order-9"))
        assert record["owner"]["S"] != legacy_owner(candidate)
    assert ALICE not in json.dumps(deployed.all_items())


def test_the_anonymous_scope_is_never_the_librarys(deployed: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a required principal, an anonymous request neither reads the service's message nor squats its key."""
    monkeypatch.setenv("OUTBOX_REQUIRE_PRINCIPAL", "false")
    worker.api.default_api.cache_clear()
    # The service's own outbox, with the same secret (read from Secrets Manager as the API reads it).
    library = Outbox.from_settings(Settings.from_env(), client=deployed.dynamodb)
    service = library.message({"order": 1}, type="OrderPlaced", idempotency_key="order-10")
    library.transact_write([], service)
    # The same key, anonymously: its own new message, not a 409 naming the service's id nor a replay of it.
    anonymous = call(request("no_authorizer", key="order-10"))
    assert anonymous["statusCode"] == 202
    assert service.message_id not in anonymous["body"]
    assert call(request("no_authorizer", "GET", service.message_id))["statusCode"] == 404
    # A key the anonymous caller used first is still the service's to write.
    assert call(request("no_authorizer", key="order-11"))["statusCode"] == 202
    library.transact_write([], library.message({"order": 2}, type="OrderPlaced", idempotency_key="order-11"))
    assert len(records(deployed)) == 4


def test_a_rotation_of_the_id_secret_keeps_retries_and_reads(deployed: Stack) -> None:
    """put-secret-value: a retry before, in and after the window is the same message; reads keep working."""
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    written = message_id_of(call(request("iam", user_arn=ALICE, key="order-12")))
    arn = os.environ["OUTBOX_ID_SECRET_ARN"]
    secrets.put_secret_value(SecretId=arn, SecretString="n3" * 32)
    worker.api.default_api.cache_clear()  # a function started after the rotation (warm ones re-read within 5 minutes)
    retried = call(request("iam", user_arn=ALICE, key="order-12"))
    assert (retried["statusCode"], message_id_of(retried)) == (200, written)
    # In the window new messages are still written under the previous value, which every function knows.
    during = message_id_of(call(request("iam", user_arn=ALICE, key="order-13")))
    assert during == IdKey(SECRET_VALUE).message_id("order-13", principal(request("iam", user_arn=ALICE)))
    # After the window: the new value, checking the previous one's ids.
    acceptor = worker.api.default_api().acceptor
    acceptor.clock = WriteClock(lambda: utc_now() + timedelta(days=1, hours=1))  # its stamps and its keys' time
    for key, message_id in (("order-12", written), ("order-13", during)):
        again = call(request("iam", user_arn=ALICE, key=key))
        assert (again["statusCode"], message_id_of(again)) == (200, message_id)
        assert call(request("iam", "GET", message_id, user_arn=ALICE))["statusCode"] == 200
        assert call(request("iam", "GET", message_id, user_arn=BOB))["statusCode"] == 404
    after = message_id_of(call(request("iam", user_arn=ALICE, key="order-14")))
    assert after == IdKey("n3" * 32).message_id("order-14", principal(request("iam", user_arn=ALICE)))
    assert len(records(deployed)) == 3


def test_past_the_rotation_windows_a_first_request_reads_the_secret_once(
    deployed: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rotated long ago: a new function's first POST or GET makes one GetSecretValue; older owners are still found."""
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    before = message_id_of(call(request("iam", user_arn=ALICE, key="order-20")))  # under the first value
    secrets.put_secret_value(SecretId=os.environ["OUTBOX_ID_SECRET_ARN"], SecretString="n4" * 32)
    stages: list[str] = []
    session = aws._session

    def rotated_long_ago(region: str | None) -> botocore.session.Session:
        # At the botocore boundary: the stages asked for, and every version made 30 days earlier
        # than moto made it (moto cannot date a version in the past).
        made = session(region)
        made.register(
            "before-parameter-build.secrets-manager.GetSecretValue",
            lambda params, **_: stages.append(params["VersionStage"]),
        )
        made.register(
            "after-call.secrets-manager.GetSecretValue",
            lambda parsed, **_: parsed.update(CreatedDate=parsed["CreatedDate"] - timedelta(days=30)),
        )
        return made

    monkeypatch.setattr(aws, "_session", rotated_long_ago)
    worker.api.default_api.cache_clear()  # a new function
    after = message_id_of(call(request("iam", user_arn=ALICE, key="order-21")))
    assert stages == ["AWSCURRENT"]
    assert after == IdKey("n4" * 32).message_id("order-21", principal(request("iam", user_arn=ALICE)))
    worker.api.default_api.cache_clear()
    stages.clear()
    assert call(request("iam", "GET", after, user_arn=ALICE))["statusCode"] == 200
    assert stages == ["AWSCURRENT"]
    # An owner written under the previous value: its value read now, once, and the owner recognised.
    assert call(request("iam", "GET", before, user_arn=ALICE))["statusCode"] == 200
    assert stages == ["AWSCURRENT", "AWSPREVIOUS"]
    assert call(request("iam", "GET", before, user_arn=BOB))["statusCode"] == 404
    assert call(request("iam", "GET", str(uuid.uuid4()), user_arn=ALICE))["statusCode"] == 404
    assert stages == ["AWSCURRENT", "AWSPREVIOUS"]


def test_anothers_message_is_read_no_further_than_an_unknown_id(
    deployed: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No timing tell: the GetItem of another's id asks and returns only the owner, as the unknown id's does."""
    message_id = message_id_of(call(request("iam", user_arn=ALICE)))
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []
    session = aws._session

    def recording(region: str | None) -> botocore.session.Session:
        made = session(region)
        made.register("before-parameter-build.dynamodb.GetItem", lambda params, **_: seen.append((dict(params), {})))
        made.register("after-call.dynamodb.GetItem", lambda parsed, **_: seen[-1][1].update(parsed))
        return made

    monkeypatch.setattr(aws, "_session", recording)
    worker.api.default_api.cache_clear()
    call(request("iam", "GET", str(uuid.uuid4()), user_arn=ALICE))  # the first request reads the id secret
    seen.clear()
    theirs = call(request("iam", "GET", message_id, user_arn=BOB))
    unknown = call(request("iam", "GET", str(uuid.uuid4()), user_arn=BOB))
    assert _answer(theirs)[:2] == _answer(unknown)[:2]
    (theirs_read, theirs_answer), (unknown_read, unknown_answer) = seen  # one read each, nothing else
    assert {k: v for k, v in theirs_read.items() if k != "Key"} == {k: v for k, v in unknown_read.items() if k != "Key"}
    assert list(theirs_read["ExpressionAttributeNames"].values()) == ["owner"]
    assert set(theirs_answer["Item"]) == {"owner"}  # not the payload, the history, the recipient
    assert "Item" not in unknown_answer
    seen.clear()
    assert call(request("iam", "GET", message_id, user_arn=ALICE))["statusCode"] == 200
    assert len(seen) == 2  # one's own: the owner, then the view
    assert "lease_owner" not in seen[1][1]["Item"]


def test_records_of_0_1_0_are_read_by_their_caller_only_where_its_principal_was_safe(deployed: Stack) -> None:
    """An IAM user reads the record 0.1.0 wrote for its ARN; a session named like 0.1.0's role session opens nothing."""
    session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/orders-service/alice"
    legacy = {}
    for name, arn in (("user", ALICE), ("session", session_arn)):
        message_id = str(uuid.uuid4())
        deployed.dynamodb.put_item(
            TableName=deployed.resources.table_name,
            Item={
                "pk": {"S": f"MSG#{message_id}"},
                "sk": {"S": "MSG"},
                "message_id": {"S": message_id},
                "status": {"S": "COMPLETED"},
                "type": {"S": "notification"},
                "payload": {"S": '{"channel": "email"}'},
                "payload_hash": {"S": "h"},
                "owner": {"S": legacy_owner(f"iam:{arn}")},  # 0.1.0's owner: a SHA-256 of "iam:<userArn>"
                "created_at": {"S": "2026-11-30T12:00:00.000Z"},
                "updated_at": {"S": "2026-11-30T12:00:01.000Z"},
                "history": {"L": []},
                "attempts": {"N": "1"},
            },
        )
        legacy[name] = message_id
    assert call(request("iam", "GET", legacy["user"], user_arn=ALICE))["statusCode"] == 200
    assert call(request("iam", "GET", legacy["user"], user_arn=BOB))["statusCode"] == 404
    assert call(_role_event("GET", legacy["session"], session="alice"))["statusCode"] == 404
