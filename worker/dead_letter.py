"""The dead-letter function's Lambda entry point, fed by the dead-letter queue: each copy's record ends FAILED.

The use case is ``outbox.service.dead_letter.DeadLetters``; it is built once per cold start by ``outbox.compose``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from outbox.compose import build_dead_letters
from outbox.logs import bind_invocation, configure_logging
from outbox.service.dead_letter import DeadLetters
from outbox.settings import Settings, eager_init
from worker import entry_point

if TYPE_CHECKING:  # a type alias: the function's cold start loads no ports for it
    from outbox.ports import BatchResponse


@cache
def default_dead_letters() -> DeadLetters:
    """The dead-letter use case of this function, built from the ``OUTBOX_*`` environment once per cold start."""
    configure_logging()
    return build_dead_letters(Settings.from_env())


if eager_init():  # SnapStart (the module sets it): set up in the init phase its snapshot keeps
    default_dead_letters()


@entry_point
def handler(event: Mapping[str, Any], context: Any) -> BatchResponse:
    """Lambda entry point (the dead-letter queue's event source mapping): a partial batch response."""
    dead_letters = default_dead_letters()
    bind_invocation(getattr(context, "aws_request_id", None), handler="dead-letter")
    return dead_letters.handle(event, context)
