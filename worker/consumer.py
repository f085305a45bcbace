"""The consumer's Lambda entry point: the deployed ``handler``.

The use case (leases, dedup, the FIFO stop, the last-receive rule) is ``outbox.service.consume``.
The deployed ``handler`` calls the function ``OUTBOX_DELIVERY`` names (``package.module:function``),
or the reference notification delivery; ``outbox.consumer.make_handler(deliver)`` makes a handler
around yours (re-exported here for code that imported it from this module).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from outbox.compose import build_consumer, resolve_delivery
from outbox.consumer import SqsHandler, make_handler
from outbox.domain.errors import DeliveryError
from outbox.logs import bind_invocation, configure_logging
from outbox.service.consume import BatchResponse, Consumer, ConsumerPolicy, Deliver, Outcome, log_delivery
from outbox.settings import Settings, eager_init

__all__ = [
    "Consumer",
    "ConsumerPolicy",
    "Deliver",
    "DeliveryError",
    "Outcome",
    "SqsHandler",
    "handler",
    "log_delivery",
    "make_handler",
    "resolve_delivery",
]


@cache
def default_consumer() -> Consumer:
    """The deployed consumer: ``OUTBOX_DELIVERY``'s function (or the reference one), built once per cold start.

    The deployed function owns its process, so it sets up the JSON logging.
    """
    configure_logging()
    return build_consumer(Settings.from_env())


if eager_init():  # SnapStart (the module sets it): set up in the init phase its snapshot keeps
    default_consumer()


def handler(event: Mapping[str, Any], context: Any) -> BatchResponse:
    """Lambda entry point of the deployed consumer."""
    bind_invocation(getattr(context, "aws_request_id", None), handler="consumer")
    return default_consumer().handle(event, context)
