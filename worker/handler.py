"""The stream worker's Lambda entry point: a DynamoDB Streams batch to ``outbox.service.stream``'s worker.

The use case (outbox INSERTs relayed, malformed entries quarantined, a group's older PENDING
message first, the partial batch response) is ``outbox.service.stream.StreamWorker``; it is
built once per cold start by ``outbox.compose``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from outbox.compose import build_stream_worker
from outbox.logs import bind_invocation, configure_logging
from outbox.service.stream import StreamWorker
from outbox.settings import Settings, eager_init
from worker import entry_point

if TYPE_CHECKING:  # a type alias: the function's cold start loads no ports for it
    from outbox.ports import BatchResponse


@cache
def default_worker() -> StreamWorker:
    """The worker of this function, built from the ``OUTBOX_*`` environment once per cold start."""
    configure_logging()
    return build_stream_worker(Settings.from_env(require_queue=True))


if eager_init():  # SnapStart (the module sets it): set up in the init phase its snapshot keeps
    default_worker()


@entry_point
def handler(event: Mapping[str, Any], context: Any) -> BatchResponse:
    """Lambda entry point."""
    worker = default_worker()
    bind_invocation(getattr(context, "aws_request_id", None), handler="worker")
    return worker.handle(event, context)
