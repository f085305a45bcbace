"""Complete API Gateway HTTP API (payload format 2.0) events, as AWS documents them, for the API handler.

``http_api_events/`` holds one whole event per kind of caller: SigV4-signed with the IAM
authorizer (``requestContext.authorizer.iam``: accessKey, accountId, callerId, cognitoIdentity,
principalOrgId, userArn, userId) by an IAM user (``iam``), by an assumed role's session
(``assumed_role``: userId and callerId ``AROA...:<session>``, userArn ``.../assumed-role/<role>/<session>``)
and by a Cognito identity pool's user (``cognito``: the pool role's session
``CognitoIdentityCredentials``, shared by every user of the pool, and ``cognitoIdentity`` with
amr, identityId and identityPoolId); a bearer token checked by the JWT authorizer
(``requestContext.authorizer.jwt``: every claim a string, and the token's scopes); and a route
without authorizer (no ``authorizer`` key at all). ``request`` turns one into another request,
changing only what API Gateway would change.
"""

from __future__ import annotations

import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any, Literal

from tests.events import iam_authorizer

Kind = Literal["iam", "assumed_role", "cognito", "jwt", "no_authorizer"]
FIXTURES = Path(__file__).with_name("http_api_events")
# The route keys of the module's two routes (infra/terraform/api.tf: local.routes).
POST_ROUTE = "POST /messages"
GET_ROUTE = "GET /messages/{id}"


@cache
def _documented(kind: Kind) -> str:
    return (FIXTURES / f"{kind}.json").read_text()


def documented_event(kind: Kind) -> dict[str, Any]:
    """A fresh copy of the documented event of one kind of caller (a POST /messages)."""
    event: dict[str, Any] = json.loads(_documented(kind))
    return event


def request(
    kind: Kind,
    method: Literal["POST", "GET"] = "POST",
    message_id: str | None = None,
    *,
    key: str | None = "order-42",
    body: str | None = None,
    user_arn: str | None = None,
    session: str | None = None,
    identity_id: str | None = None,
    claims: dict[str, str] | None = None,
    scopes: list[str] | None = None,
) -> dict[str, Any]:
    """The documented event as another request: a POST with ``key`` and ``body``, or a GET of ``message_id``.

    ``user_arn`` is another IAM caller (API Gateway fills userId and callerId from the same
    credentials: ``tests.events.iam_authorizer``); ``session`` the same role assumed under another
    session name (new credentials: the role's unique id stays); ``identity_id`` another user of the
    same Cognito identity pool. ``claims`` are merged into the JWT's and ``scopes`` replace the
    token's scopes.
    """
    event = documented_event(kind)
    context = event["requestContext"]
    headers: dict[str, str] = event["headers"]
    context["requestId"] = uuid.uuid4().hex[:16]  # every request has its own
    if method == "GET":
        assert message_id is not None
        path = f"/messages/{message_id}"
        route = GET_ROUTE
        event["pathParameters"] = {"id": message_id}
        del event["body"]  # a request without a body has no body key
        for name in ("content-length", "content-type", "idempotency-key"):
            headers.pop(name, None)
    else:
        path = "/messages"
        route = POST_ROUTE
        if body is not None:
            event["body"] = body
            headers["content-length"] = str(len(body.encode()))
        if key is None:
            headers.pop("idempotency-key")
        else:
            headers["idempotency-key"] = key
    event["rawPath"] = context["http"]["path"] = path
    event["routeKey"] = context["routeKey"] = route
    context["http"]["method"] = method
    authorizer = context.get("authorizer", {})
    if user_arn is not None and user_arn != authorizer["iam"]["userArn"]:  # another caller
        filled = iam_authorizer(user_arn)
        authorizer["iam"] |= {name: filled[name] for name in ("accountId", "callerId", "userArn", "userId")}
    if session is not None:
        iam = authorizer["iam"]
        role_id = iam["userId"].partition(":")[0]
        iam["userId"] = iam["callerId"] = f"{role_id}:{session}"
        iam["userArn"] = f"{iam['userArn'].rsplit('/', 1)[0]}/{session}"
    if identity_id is not None:
        authorizer["iam"]["cognitoIdentity"]["identityId"] = identity_id
    if claims is not None:
        authorizer["jwt"]["claims"] |= claims
    if scopes is not None:
        authorizer["jwt"]["scopes"] = scopes
    return event
