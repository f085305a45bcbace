"""Callers apart through the API's Lambda entry point, with complete HTTP API events, on moto.

The events are whole payload 2.0 documents (``tests/integration/http_api_events/``), not minimal
dicts; the handler is ``outbox.api.handler`` configured through the environment as the Terraform
module deploys it (``OUTBOX_REQUIRE_PRINCIPAL=true``, an ``OUTBOX_ID_SECRET``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

import outbox.api
from outbox.api import principal_of
from outbox.domain.message import owner_of
from tests.integration.conftest import Stack, build_stack
from tests.integration.http_api_events import documented_event, request

ACCOUNT = "123456789012"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
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


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A stack on moto and the API's Lambda entry point, configured as the module deploys it."""
    with mock_aws():
        stack = build_stack()
        environment = {
            "OUTBOX_TABLE_NAME": stack.resources.table_name,
            "OUTBOX_BUCKETS": "4",  # what build_stack's bootstrap stored
            "OUTBOX_REQUIRE_PRINCIPAL": "true",
            "OUTBOX_ID_SECRET": "s" * 32,
            "OUTBOX_METRICS": "off",
        }
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        outbox.api.default_api.cache_clear()  # built from this environment at its first call
        yield stack
        outbox.api.default_api.cache_clear()
        stack.relay.close()


def call(event: dict[str, Any]) -> dict[str, Any]:
    """One invocation of the deployed handler."""
    response: dict[str, Any] = outbox.api.handler(event, _Context())
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
    for kind in ("iam", "jwt", "no_authorizer"):
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
    iam = documented_event("iam")["requestContext"]["authorizer"]
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
    assert iam["iam"]["cognitoIdentity"] is None
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
    assert {record["owner"]["S"] for record in records(deployed)} == {owner_of(f"iam:{ALICE}"), owner_of(f"iam:{BOB}")}
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
    assert principal_of(event) == f"jwt:{len(issuer)}:{issuer}:{subject}"
    message_id = message_id_of(call(event))
    assert {r["owner"]["S"] for r in records(deployed) if r["pk"]["S"] == f"MSG#{message_id}"} == {
        owner_of(principal_of(event))
    }
    # A new token of the same caller: new expiry, issue time, id, audience and scopes; same message.
    exp = str(1_740_833_700 + renewed)
    fresh = {**claims, "exp": exp, "iat": str(int(exp) - 3600), "jti": str(uuid.uuid4()), "aud": "another-client"}
    renewed_event = request("jwt", claims=fresh, scopes=["outbox/messages.write"], key="k")
    assert principal_of(renewed_event) == principal_of(event)
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
