"""The notification API's Lambda entry point: ``outbox.notifications.api`` built once per cold start."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from outbox.logs import bind_invocation, configure_logging
from outbox.notifications.api import MessagesApi, Response, build_api
from outbox.settings import Settings, eager_init


@cache
def default_api() -> MessagesApi:
    """The API of this function, built from the ``OUTBOX_*`` environment once per cold start."""
    configure_logging()
    return build_api(Settings.from_env())


if eager_init():  # SnapStart (the module sets it): set up in the init phase its snapshot keeps
    default_api()


def handler(event: Mapping[str, Any], context: Any) -> Response:
    """Lambda entry point (API Gateway HTTP API, payload format 2.0)."""
    api = default_api()
    bind_invocation(getattr(context, "aws_request_id", None), handler="api")
    return api.handle(event)
