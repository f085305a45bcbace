"""The consumer's Lambda entry point: the deployed ``handler``, and ``make_handler(deliver)`` around yours.

The use case (leases, dedup, the FIFO stop, the last-receive rule) is ``outbox.service.consume``.
Delivery is a plain function of the envelope: ``make_handler(deliver)`` makes a Lambda handler
around yours; the deployed ``handler`` calls the function ``OUTBOX_DELIVERY`` names
(``package.module:function``), or the reference notification delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from outbox.compose import build_consumer, resolve_delivery
from outbox.domain.errors import DeliveryError
from outbox.logs import bind_invocation, configure_logging, invocation_context
from outbox.service.consume import BatchResponse, Consumer, ConsumerPolicy, Deliver, Outcome, log_delivery
from outbox.settings import Settings, eager_init

__all__ = [
    "Consumer",
    "ConsumerPolicy",
    "Deliver",
    "DeliveryError",
    "Outcome",
    "handler",
    "log_delivery",
    "make_handler",
    "resolve_delivery",
]

SqsHandler = Callable[[Mapping[str, Any], Any], BatchResponse]


def make_handler(deliver: Deliver) -> SqsHandler:
    """A Lambda SQS handler that runs the lifecycle, dedup and partial batch response around ``deliver``.

    ``deliver(envelope)`` returns when the message is delivered; raising ``DeliveryError``
    with ``retryable=False`` fails the message for good, any other exception retries it. The
    consumer is built on the first invocation (Lambda's cold start) from the ``OUTBOX_*``
    environment, or here with ``OUTBOX_EAGER_INIT`` (SnapStart's init phase). It runs in your
    process as a guest: your logging setup and your bound log context stay as they are (each
    invocation's ``aws_request_id`` is bound only while it runs).
    """
    consumer = cache(lambda: build_consumer(Settings.from_env(), deliver=deliver))
    if eager_init():  # SnapStart: made in the init phase, as your module calls this at its import
        consumer()

    def handler(event: Mapping[str, Any], context: Any) -> BatchResponse:
        with invocation_context(getattr(context, "aws_request_id", None), handler="consumer"):
            return consumer().handle(event, context)

    return handler


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
