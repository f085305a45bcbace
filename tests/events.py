"""Builders of Lambda events for tests."""

from __future__ import annotations

import hashlib
import re
from typing import Any

ACCOUNT = "123456789012"
_ARN = re.compile(r"^arn:aws:(?:iam|sts)::(\d{12}):(?:(user)/(?:.*/)?([^/]+)|(assumed-role)/([^/]+)/([^/]+)|(root))$")


def unique_id(prefix: str, name: str) -> str:
    """A stable IAM unique id (``AIDA...``, ``AROA...``) for a test user's or role's name."""
    digest = hashlib.sha256(name.encode()).hexdigest().upper()
    return prefix + "".join(c for c in digest if c.isalnum())[:17]


def iam_authorizer(arn: str, *, cognito_identity_id: str | None = None) -> dict[str, Any]:
    """``requestContext.authorizer.iam`` as API Gateway fills it for a caller with this ARN (every field).

    A user's ``userId`` is its unique id, an assumed role's ``AROA...:<session>`` (the role's
    unique id, then the session name), root's the account id. An ARN of another shape keeps a
    made-up user id derived from it.
    """
    match = _ARN.match(arn)
    account = match.group(1) if match else ACCOUNT
    if match and match.group(2):
        user_id = unique_id("AIDA", match.group(3))
    elif match and match.group(4):
        user_id = f"{unique_id('AROA', match.group(5))}:{match.group(6)}"
    elif match and match.group(7):
        user_id = account
    else:
        user_id = unique_id("AIDA", arn)
    cognito = None
    if cognito_identity_id is not None:
        cognito = {
            "amr": ["authenticated", "cognito-idp.eu-west-1.amazonaws.com/eu-west-1_EXAMPLE"],
            "identityId": cognito_identity_id,
            "identityPoolId": "eu-west-1:2f5f5a7c-4b1e-4d6a-9c3b-1e2f3a4b5c6d",
        }
    return {
        "accessKey": "ASIAIOSFODNN7EXAMPLE",
        "accountId": account,
        "callerId": user_id,
        "cognitoIdentity": cognito,
        "principalOrgId": "o-a1b2c3d4e5",
        "userArn": arn,
        "userId": user_id,
    }


def http_event(
    method: str,
    path: str,
    *,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    b64: bool = False,
    stage: str = "$default",
    iam_arn: str | None = None,
    cognito_identity_id: str | None = None,
    jwt_claims: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event; ``iam_arn``/``jwt_claims`` as its authorizer filled them.

    ``iam_arn`` brings every field of the IAM authorizer (``iam_authorizer``), with
    ``cognito_identity_id`` for a Cognito identity pool's user.
    """
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers or {},
        "requestContext": {"http": {"method": method, "path": path}, "requestId": "req-1", "stage": stage},
        "body": body,
        "isBase64Encoded": b64,
    }
    authorizer: dict[str, Any] = {}
    if iam_arn is not None:
        authorizer["iam"] = iam_authorizer(iam_arn, cognito_identity_id=cognito_identity_id)
    if jwt_claims is not None:
        authorizer["jwt"] = {"claims": jwt_claims, "scopes": None}
    if authorizer:
        event["requestContext"]["authorizer"] = authorizer
    return event
