"""The deployed consumer's Lambda entry point: ``OUTBOX_DELIVERY``'s function, else the notification API's delivery.

Your own consumer needs none of this: ``outbox.consumer.make_handler(deliver)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from outbox.compose import build_consumer
from outbox.logs import bind_invocation, configure_logging
from outbox.notifications.delivery import deliver_notification
from outbox.service.consume import Consumer
from outbox.settings import Settings, eager_init
from worker import entry_point

if TYPE_CHECKING:  # a type alias: the function's cold start loads no ports for it
    from outbox.ports import BatchResponse


@cache
def default_consumer() -> Consumer:
    """The consumer of this function, built from the ``OUTBOX_*`` environment once per cold start.

    The deployed function owns its process, so it sets up the JSON logging.
    """
    configure_logging()
    settings = Settings.from_env()
    return build_consumer(settings, deliver=None if settings.delivery else deliver_notification)


if eager_init():  # SnapStart (the module sets it): set up in the init phase its snapshot keeps
    default_consumer()


@entry_point
def handler(event: Mapping[str, Any], context: Any) -> BatchResponse:
    """Lambda entry point (the queue's event source mapping): a partial batch response."""
    bind_invocation(getattr(context, "aws_request_id", None), handler="consumer")
    return default_consumer().handle(event, context)
