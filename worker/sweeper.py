"""The sweeper's Lambda entry point, on a schedule: relay every message PENDING past ``OUTBOX_SWEEP_MIN_AGE_SECONDS``.

The use case is ``outbox.service.sweep.Sweeper``; it is built once per cold start by ``outbox.compose``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from outbox.compose import build_sweeper
from outbox.logs import bind_invocation, configure_logging
from outbox.service.sweep import Sweeper
from outbox.settings import Settings
from worker import entry_point


@cache
def default_sweeper() -> Sweeper:
    """The sweeper of this function, built from the ``OUTBOX_*`` environment once per cold start."""
    configure_logging()
    return build_sweeper(Settings.from_env(require_queue=True))


@entry_point
def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (EventBridge Scheduler): one sweep; its report is the result."""
    sweeper = default_sweeper()
    bind_invocation(getattr(context, "aws_request_id", None), handler="sweeper")
    time_left: Callable[[], int] | None = getattr(context, "get_remaining_time_in_millis", None)
    return sweeper.sweep(time_left_ms=time_left).figures()
