"""The accept use case: a caller's message in, its PENDING record and outbox entry written in one transaction.

Ids and idempotency keys are scoped to the caller (invariant 9): the id derived from an
idempotency key is a keyed hash of caller and key (with ``id_secret``; else a UUID 5), and the
record keeps a hash of the caller (its owner), so a caller reads back only its own messages.
The HTTP API (``outbox.api``) and the library (``outbox.Outbox``) both make their messages here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from outbox.domain.envelope import DEFAULT_MAX_MESSAGE_BYTES, NOTIFICATION_TYPE, Envelope, new_envelope
from outbox.domain.errors import NotFoundError, ThrottledError, TransactionCancelledError
from outbox.domain.message import is_message_id, new_message_id, owner_of, validate_idempotency_key
from outbox.domain.notification import parse_notification
from outbox.domain.record import AcceptResult, MessageRecord, iso, utc_now
from outbox.ports import MessageStore

# A TransactionConflict is usually a concurrent accept with the same idempotency key: a moment
# later the other one has committed and this one reads as its idempotent replay.
CONFLICT_RETRY_PAUSES_S = (0.02, 0.1)


@dataclass(frozen=True)
class NewMessage:
    """A checked message, ready to write: its envelope, its idempotency key and its owner."""

    envelope: Envelope
    idempotency_key: str | None
    owner: str | None


def new_message(
    payload: object,
    *,
    type: str,
    idempotency_key: str | None = None,
    scope: str | None = None,
    secret: str | None = None,
    group_key: str | None = None,
    trace_id: str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    key_field: str = "Idempotency-Key",
) -> NewMessage:
    """The key checked, the id derived from it within ``scope`` (or new), the envelope built; ValidationError.

    ``scope`` (a tenant, a caller) keeps keys apart: the same key in two scopes is two messages,
    and the owner kept is a SHA-256 of the scope, never the scope itself. ``key_field`` is what
    a refused key is called (the API's header, or the library's argument).
    """
    key = validate_idempotency_key(idempotency_key, field=key_field)
    envelope = new_envelope(
        payload,
        type=type,
        message_id=new_message_id(key, scope=scope, secret=secret),
        created_at=iso(utc_now()),
        group_key=group_key,
        trace_id=trace_id,
        max_message_bytes=max_message_bytes,
    )
    return NewMessage(envelope, key, owner_of(scope))


class Acceptor:
    """Accepts a caller's messages into a MessageStore, and reads a caller's own messages back.

    ``before_first_accept`` runs once, before the first accept (the table's bucket check): a read
    never waits for it, and a warm accept stays one request.
    """

    def __init__(
        self,
        store: MessageStore,
        *,
        id_secret: str | None = None,
        before_first_accept: Callable[[], None] | None = None,
        by: str = "api",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.id_secret = id_secret
        self.by = by
        self.sleep = sleep
        self._before_first_accept = before_first_accept

    def accept_notification(
        self, data: object, *, idempotency_key: str | None, caller: str | None, trace_id: str | None = None
    ) -> AcceptResult:
        """A notification (the reference application's message) accepted for ``caller``; ValidationError if invalid."""
        notification = parse_notification(data)
        message = new_message(
            notification.to_dict(),
            type=NOTIFICATION_TYPE,
            idempotency_key=idempotency_key,
            scope=caller,
            secret=self.id_secret,
            group_key=notification.group_key,
            trace_id=trace_id,
        )
        return self.accept(message)

    def accept(self, message: NewMessage) -> AcceptResult:
        """Write the PENDING record and its outbox entry at once, or return the owner's message of the same key.

        A transaction conflict (usually a concurrent accept with the same key) is tried again after
        short pauses; if it lasts, ThrottledError. IdempotencyKeyReusedError when the key's message
        holds another payload.
        """
        if self._before_first_accept is not None:
            self._before_first_accept()
            self._before_first_accept = None
        conflict: TransactionCancelledError | None = None
        for pause in (0.0, *CONFLICT_RETRY_PAUSES_S):
            self.sleep(pause)
            try:
                return self.store.accept(
                    message.envelope, idempotency_key=message.idempotency_key, by=self.by, owner=message.owner
                )
            except TransactionCancelledError as exc:
                if not exc.retryable:
                    raise
                conflict = exc
        raise ThrottledError("the message conflicted with a concurrent write; retry") from conflict

    def read(self, message_id: str, caller: str | None) -> MessageRecord:
        """The caller's own message (strongly consistent).

        One NotFoundError, word for word, for an id that is malformed, unknown or another
        caller's: it names no id, so no two of them can be told apart.
        """
        unknown = NotFoundError("no such message")
        if not is_message_id(message_id):
            raise unknown
        try:
            record = self.store.get(message_id)
        except NotFoundError:
            raise unknown from None
        if record.owner != owner_of(caller):
            raise unknown
        return record
