"""The consumer's Lambda entry point: the deployed ``handler``, and ``make_handler(deliver)`` around yours.

The use case (leases, dedup, the FIFO stop, the last-receive rule) is ``outbox.service.consume``.
Delivery is a plain function of the envelope: ``make_handler(deliver)`` makes a Lambda handler
around yours; the deployed ``handler`` calls the function ``OUTBOX_DELIVERY`` names
(``package.module:function``), or the reference notification delivery.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from outbox.adapters.aws import dynamodb_client, new_session, sqs_client
from outbox.adapters.store import DynamoDBMessageStore
from outbox.adapters.visibility import SqsVisibility
from outbox.domain.errors import ConfigurationError, DeliveryError
from outbox.logs import bind_invocation, configure_logging
from outbox.service.consume import BatchResponse, Consumer, ConsumerPolicy, Deliver, Outcome, log_delivery
from outbox.settings import Settings

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


def resolve_delivery(reference: str | None) -> Deliver:
    """The function ``package.module:function`` names (``OUTBOX_DELIVERY``), or the reference delivery."""
    if not reference:
        return log_delivery
    module_name, _, name = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"OUTBOX_DELIVERY={reference}: cannot import {module_name} ({type(exc).__name__})"
        ) from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigurationError(f"OUTBOX_DELIVERY={reference}: {module_name} has no function {name}")
    delivery: Deliver = function
    return delivery


def _build(deliver: Deliver | None) -> Consumer:
    """A consumer wired to real AWS clients from the environment; ``deliver`` or the one it names."""
    configure_logging()
    settings = Settings.from_env()
    delivery = deliver or resolve_delivery(settings.delivery)
    session = new_session(settings.region)  # one session: botocore loads its endpoint data once
    return Consumer(
        DynamoDBMessageStore.from_settings(settings, client=dynamodb_client(settings.region, session=session)),
        delivery,
        policy=ConsumerPolicy.from_settings(settings),
        visibility=SqsVisibility(sqs_client(settings.region, session=session)),
    )


def make_handler(deliver: Deliver) -> SqsHandler:
    """A Lambda SQS handler that runs the lifecycle, dedup and partial batch response around ``deliver``.

    ``deliver(envelope)`` returns when the message is delivered; raising ``DeliveryError``
    with ``retryable=False`` fails the message for good, any other exception retries it. The
    consumer is built on the first invocation (Lambda's cold start) from the ``OUTBOX_*``
    environment.
    """
    consumer = cache(lambda: _build(deliver))

    def handler(event: Mapping[str, Any], context: Any) -> BatchResponse:
        return _invoke(consumer(), event, context)

    return handler


@cache
def default_consumer() -> Consumer:
    """The deployed consumer: ``OUTBOX_DELIVERY``'s function (or the reference one), built once per cold start."""
    return _build(None)


def handler(event: Mapping[str, Any], context: Any) -> BatchResponse:
    """Lambda entry point of the deployed consumer."""
    return _invoke(default_consumer(), event, context)


def _invoke(consumer: Consumer, event: Mapping[str, Any], context: Any) -> BatchResponse:
    bind_invocation(getattr(context, "aws_request_id", None), handler="consumer")
    return consumer.handle(event, context)
