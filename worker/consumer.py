"""The SQS consumer: QUEUED -> PROCESSING -> COMPLETED, or FAILED with the reason, around your delivery.

It dedupes by ``message_id`` through the record itself: a COMPLETED message is acknowledged and
skipped. Delivery is a plain function of the envelope: ``make_handler(deliver)`` makes a Lambda
handler around yours; the deployed ``handler`` calls the function ``OUTBOX_DELIVERY`` names
(``package.module:function``), or the reference notification delivery.
"""

from __future__ import annotations

import importlib
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import structlog

from outbox.adapters.store import DynamoDBMessageStore
from outbox.domain.envelope import NOTIFICATION_TYPE, Envelope
from outbox.domain.errors import (
    ConfigurationError,
    DeliveryError,
    InvalidTransitionError,
    MalformedEntryError,
    OutboxError,
    ValidationError,
)
from outbox.domain.notification import parse_notification
from outbox.domain.status import Status
from outbox.logs import bind_invocation, configure_logging
from outbox.metrics import emit_metrics
from outbox.ports import MessageStore
from outbox.settings import Settings

log = structlog.get_logger("worker.consumer")

BY = "consumer"
STARTABLE = frozenset({Status.QUEUED, Status.PROCESSING})


__all__ = ["Consumer", "Deliver", "DeliveryError", "handler", "log_delivery", "make_handler", "resolve_delivery"]

Deliver = Callable[[Envelope], None]
SqsHandler = Callable[[Mapping[str, Any], Any], dict[str, list[dict[str, str]]]]


def log_delivery(envelope: Envelope) -> None:
    """The reference delivery: a notification is checked and logged as sent, any other type logged as delivered.

    It writes no personal data: the channel of a notification, never its recipient or body.
    """
    if envelope.type != NOTIFICATION_TYPE:
        log.info("message_delivered", message_id=envelope.message_id, type=envelope.type)
        return
    try:
        notification = parse_notification(dict(envelope.payload))
    except ValidationError as exc:
        raise DeliveryError(f"not a valid notification: {exc.detail}", retryable=False) from exc
    log.info("message_delivered", message_id=envelope.message_id, channel=notification.channel.value)


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


class Consumer:
    """Processes an SQS batch and returns a partial batch response."""

    def __init__(
        self,
        store: MessageStore,
        deliver: Deliver = log_delivery,
        *,
        max_attempts: int = 5,
        redrive_grace_receives: int = 3,
    ) -> None:
        self.store = store
        self.deliver = deliver
        self.max_attempts = max_attempts
        # A copy may arrive before its record's flip to QUEUED is visible (send, then flip):
        # a FAILED record being re-driven is retried this many receives before it counts as final.
        self.redrive_grace_receives = redrive_grace_receives
        self.stats: Counter[str] = Counter()  # outcomes since start, across invocations
        self._stats_lock = threading.Lock()

    def handle(self, event: Mapping[str, Any]) -> dict[str, list[dict[str, str]]]:
        """Process every SQS record; list the messageIds to redeliver."""
        failures: list[dict[str, str]] = []
        counts = {"completed": 0, "duplicates": 0, "failed": 0, "retried": 0}
        records = event.get("Records") if isinstance(event, Mapping) else None
        for record in records if isinstance(records, list) else []:
            sqs_id = record.get("messageId") if isinstance(record, Mapping) else None
            if not isinstance(sqs_id, str) or not sqs_id:
                log.error("sqs_record_malformed", reason="no messageId")
                continue
            outcome = self._process(record)
            counts[outcome] += 1
            if outcome == "retried":
                failures.append({"itemIdentifier": sqs_id})
        with self._stats_lock:
            self.stats.update(counts)
        emit_metrics({"MessagesCompleted": counts["completed"], "MessagesFailed": counts["failed"]})
        log.info("batch_consumed", **counts)
        return {"batchItemFailures": failures}

    def _process(self, record: Mapping[str, Any]) -> str:
        body = record.get("body")
        try:
            envelope = Envelope.from_json(body if isinstance(body, str) else "")
        except MalformedEntryError as exc:
            return self._reject(exc)
        message_id = envelope.message_id
        try:
            started = self.store.transition(message_id, Status.PROCESSING, by=BY, expected=STARTABLE)
        except InvalidTransitionError as exc:
            return self._not_startable(message_id, exc.current, _receive_count(record))
        except OutboxError as exc:
            log.warning("start_failed", message_id=message_id, error=exc.code)
            return "retried"
        if started.attempts > self.max_attempts:
            return self._fail(message_id, f"gave up after {self.max_attempts} delivery attempts")
        try:
            self.deliver(envelope)
        except Exception as exc:  # noqa: BLE001 - a delivery function may raise anything
            retryable = exc.retryable if isinstance(exc, OutboxError) else True
            log.warning("delivery_failed", message_id=message_id, error=type(exc).__name__, retryable=retryable)
            if retryable:
                return "retried"
            detail = exc.detail if isinstance(exc, OutboxError) else type(exc).__name__
            return self._fail(message_id, f"delivery failed: {detail}")
        try:
            self.store.transition(message_id, Status.COMPLETED, by=BY, expected=frozenset({Status.PROCESSING}))
        except InvalidTransitionError:
            return "duplicates"  # another copy finished it first
        except OutboxError as exc:
            log.warning("complete_failed", message_id=message_id, error=exc.code)
            return "retried"
        return "completed"

    def _reject(self, exc: MalformedEntryError) -> str:
        if exc.message_id is None:
            # No record to mark: let SQS move it to the dead-letter queue after maxReceiveCount.
            log.error("message_rejected", reason=exc.detail)
            return "retried"
        try:
            self.store.transition(exc.message_id, Status.PROCESSING, by=BY, expected=STARTABLE)
        except InvalidTransitionError:
            log.error("message_rejected", message_id=exc.message_id, reason=exc.detail)
            return "failed"
        except OutboxError:
            return "retried"
        return self._fail(exc.message_id, exc.detail)

    def _not_startable(self, message_id: str, current: Status | None, receives: int) -> str:
        if current is Status.COMPLETED:
            log.info("duplicate_dropped", message_id=message_id)
            return "duplicates"
        if current is Status.PENDING or (current is Status.FAILED and receives < self.redrive_grace_receives):
            log.info("message_not_ready", message_id=message_id, status=current.value)
            return "retried"
        log.warning("message_dropped", message_id=message_id, status=current.value if current else "missing")
        return "duplicates"

    def _fail(self, message_id: str, reason: str) -> str:
        try:
            self.store.transition(
                message_id, Status.FAILED, by=BY, reason=reason, expected=frozenset({Status.PROCESSING})
            )
        except InvalidTransitionError:
            return "duplicates"
        except OutboxError:
            return "retried"
        log.warning("message_failed", message_id=message_id)
        return "failed"


def _receive_count(record: Mapping[str, Any]) -> int:
    attributes = record.get("attributes")
    raw = attributes.get("ApproximateReceiveCount") if isinstance(attributes, Mapping) else None
    try:
        return int(raw) if raw is not None else 1
    except (TypeError, ValueError):
        return 1


def _build(deliver: Deliver | None) -> Consumer:
    """A consumer wired to real AWS clients from the environment; ``deliver`` or the one it names."""
    configure_logging()
    settings = Settings.from_env()
    delivery = deliver or resolve_delivery(settings.delivery)
    return Consumer(DynamoDBMessageStore.from_settings(settings), delivery, max_attempts=settings.max_delivery_attempts)


def make_handler(deliver: Deliver) -> SqsHandler:
    """A Lambda SQS handler that runs the lifecycle, dedup and partial batch response around ``deliver``.

    ``deliver(envelope)`` returns when the message is delivered; raising ``DeliveryError``
    with ``retryable=False`` fails the message for good, any other exception retries it. The
    consumer is built on the first invocation (Lambda's cold start) from the ``OUTBOX_*``
    environment.
    """
    consumer = cache(lambda: _build(deliver))

    def handler(event: Mapping[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
        return _invoke(consumer(), event, context)

    return handler


@cache
def default_consumer() -> Consumer:
    """The deployed consumer: ``OUTBOX_DELIVERY``'s function (or the reference one), built once per cold start."""
    return _build(None)


def handler(event: Mapping[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Lambda entry point of the deployed consumer."""
    return _invoke(default_consumer(), event, context)


def _invoke(consumer: Consumer, event: Mapping[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    bind_invocation(getattr(context, "aws_request_id", None), handler="consumer")
    return consumer.handle(event)
