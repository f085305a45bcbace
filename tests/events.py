"""Builders of Lambda events for tests: the shipped ones (``outbox.lambda_events``), under the names our tests use."""

from __future__ import annotations

from outbox.lambda_events import ACCOUNT, iam_authorizer, unique_id
from outbox.lambda_events import http_api_event as http_event

__all__ = ["ACCOUNT", "http_event", "iam_authorizer", "unique_id"]
