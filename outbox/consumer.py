"""Your consumer: ``make_handler(deliver)`` makes the Lambda SQS handler that runs the outbox's lifecycle around it.

Delivery is a plain function of the envelope (``Deliver``): it returns when the message is
delivered; ``DeliveryError(retryable=False)`` fails the message for good, any other exception
retries it. The use case underneath (leases, dedup, the FIFO stop, the last-receive rule) is
``outbox.service.consume``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from outbox.compose import build_consumer
from outbox.domain.envelope import Envelope
from outbox.domain.errors import DeliveryError
from outbox.logs import invocation_context
from outbox.ports import BatchResponse
from outbox.service.consume import Deliver
from outbox.settings import Settings, eager_init

__all__ = ["BatchResponse", "Deliver", "DeliveryError", "Envelope", "SqsHandler", "make_handler"]

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
