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
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers or {},
        "requestContext": {"http": {"method": method, "path": path}, "requestId": "req-1", "stage": stage},
        "body": body,
        "isBase64Encoded": b64,
    }
