"""Builders of Lambda events for tests."""

from __future__ import annotations

from typing import Any


def http_event(
    method: str,
    path: str,
    *,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    b64: bool = False,
    stage: str = "$default",
    iam_arn: str | None = None,
    jwt_claims: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event; ``iam_arn``/``jwt_claims`` as its authorizer filled them."""
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
        authorizer["iam"] = {"userArn": iam_arn, "accountId": "123456789012"}
    if jwt_claims is not None:
        authorizer["jwt"] = {"claims": jwt_claims, "scopes": None}
    if authorizer:
        event["requestContext"]["authorizer"] = authorizer
    return event
