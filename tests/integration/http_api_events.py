"""Complete API Gateway HTTP API (payload format 2.0) events, as AWS documents them, for the API handler.

``http_api_events/`` holds one whole event per kind of caller: SigV4-signed with the IAM
authorizer (``requestContext.authorizer.iam``: accessKey, accountId, callerId, cognitoIdentity,
principalOrgId, userArn, userId), a bearer token checked by the JWT authorizer
(``requestContext.authorizer.jwt``: every claim a string, and the token's scopes), and a route
without authorizer (no ``authorizer`` key at all). ``request`` turns one into another request of
the same caller, changing only what API Gateway would change.
"""

from __future__ import annotations

import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any, Literal

Kind = Literal["iam", "jwt", "no_authorizer"]
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
    claims: dict[str, str] | None = None,
    scopes: list[str] | None = None,
) -> dict[str, Any]:
    """The documented event as another request: a POST with ``key`` and ``body``, or a GET of ``message_id``.

    ``user_arn`` is the IAM caller (its userArn; API Gateway fills the rest from the same
    credentials), ``claims`` are merged into the JWT's and ``scopes`` replace the token's scopes.
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
    if user_arn is not None:
        authorizer["iam"]["userArn"] = user_arn
    if claims is not None:
        authorizer["jwt"]["claims"] |= claims
    if scopes is not None:
        authorizer["jwt"]["scopes"] = scopes
    return event
