"""The consumer a zip of yours deploys without a handler of its own: ``OUTBOX_DELIVERY``'s function.

A zip from ``outbox package`` holds your code and the library, not the repository's ``worker/``
entry points; the Terraform module runs such a zip's consumer as ``outbox.lambda_consumer.handler``
(its default when ``consumer_package`` is set), which calls the function ``OUTBOX_DELIVERY`` names
(the module's ``delivery``). The function owns its process, so it sets up the JSON logging; in your
own process use ``outbox.consumer.make_handler`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from outbox.compose import build_consumer
from outbox.domain.errors import ConfigurationError
from outbox.logs import bind_invocation, configure_logging
from outbox.service.consume import Consumer
from outbox.settings import Settings, eager_init

if TYPE_CHECKING:  # a type alias: the function's cold start loads no ports for it
    from outbox.ports import BatchResponse


@cache
def default_consumer() -> Consumer:
    """The consumer of this function, built from the ``OUTBOX_*`` environment once per cold start."""
    configure_logging()
    settings = Settings.from_env()
    if not settings.delivery:
        raise ConfigurationError(
            "OUTBOX_DELIVERY is not set: name your delivery function (package.module:function; the module's"
            " `delivery`), or deploy your own handler made with outbox.consumer.make_handler"
        )
    return build_consumer(settings)


if eager_init():  # SnapStart (the module sets it): set up in the init phase its snapshot keeps
    default_consumer()


def handler(event: Mapping[str, Any], context: Any) -> BatchResponse:
    """Lambda entry point (the queue's event source mapping): a partial batch response."""
    bind_invocation(getattr(context, "aws_request_id", None), handler="consumer")
    return default_consumer().handle(event, context)
