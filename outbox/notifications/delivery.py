"""The notification API's delivery: a notification is checked and logged as sent (a reference, it sends nothing)."""

from __future__ import annotations

from outbox.domain.envelope import NOTIFICATION_TYPE, Envelope
from outbox.domain.errors import DeliveryError, ValidationError
from outbox.logs import get_logger
from outbox.notifications.notification import parse_notification
from outbox.service.consume import log_delivery

log = get_logger("outbox.notifications.delivery")


def deliver_notification(envelope: Envelope) -> None:
    """Check a notification and log it as sent; any other type is logged as delivered (``log_delivery``).

    It writes no personal data: the channel of a notification, never its recipient or body. A
    payload that is not a valid notification can never succeed, so it fails the message for good.
    """
    if envelope.type != NOTIFICATION_TYPE:
        log_delivery(envelope)
        return
    try:
        notification = parse_notification(dict(envelope.payload))
    except ValidationError as exc:
        raise DeliveryError(f"not a valid notification: {exc.detail}", retryable=False) from exc
    log.info("message_delivered", message_id=envelope.message_id, channel=notification.channel.value)
