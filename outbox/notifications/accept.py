"""A notification accepted through the library's accept use case: validated, then written like any message."""

from __future__ import annotations

from outbox.domain.caller import Caller
from outbox.domain.envelope import NOTIFICATION_TYPE
from outbox.domain.results import AcceptResult
from outbox.notifications.notification import parse_notification
from outbox.service.accept import Acceptor, new_message


def accept_notification(
    acceptor: Acceptor, data: object, *, idempotency_key: str | None, caller: Caller, trace_id: str | None = None
) -> AcceptResult:
    """A notification accepted for ``caller`` by ``acceptor``; ValidationError if it is not a valid one."""
    notification = parse_notification(data)
    keys = acceptor.keys()
    message = new_message(
        notification.to_dict(),
        type=NOTIFICATION_TYPE,
        idempotency_key=idempotency_key,
        scope=caller.principal,
        keys=keys,
        group_key=notification.group_key,
        trace_id=trace_id,
        clock=acceptor.clock,
    )
    return acceptor.accept(message, owners=keys.owners(caller.principal))
