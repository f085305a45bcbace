"""The accept use case: a caller's message in, its PENDING record and outbox entry written in one transaction.

Ids and idempotency keys are scoped to the caller (invariant 9): the id derived from an
idempotency key is a keyed hash (HMAC, under the id secret) of caller and key, and the record
keeps a keyed hash of the caller (its owner), so a caller reads back only its own messages and
nobody without the secret computes an id. The library (``outbox.Outbox``) and the notification
API (``outbox.notifications``) both make their messages here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from outbox.domain.caller import Caller
from outbox.domain.clock import WRITE_CLOCK, WriteClock
from outbox.domain.envelope import DEFAULT_MAX_MESSAGE_BYTES, Envelope, new_envelope
from outbox.domain.errors import ConfigurationError, NotFoundError, ThrottledError, TransactionCancelledError
from outbox.domain.id_secret import IdKeys, IdSecret
from outbox.domain.message import (
    is_message_id,
    legacy_owner,
    new_message_id,
    validate_idempotency_key,
)
from outbox.domain.results import AcceptResult
from outbox.domain.trace import trace_header
from outbox.logs import warn_once

if TYPE_CHECKING:  # the ports' records and protocols: the API's cold start needs none of them
    from outbox.domain.record import MessageRecord  # made by the store's read: a new message's POST reads none
    from outbox.ports import IdSecretSource, MessageStore

# A TransactionConflict is usually a concurrent accept with the same idempotency key: a moment
# later the other one has committed and this one reads as its idempotent replay.
CONFLICT_RETRY_PAUSES_S = (0.02, 0.1)


@dataclass(frozen=True)
class NewMessage:
    """A checked message, ready to write: envelope, idempotency key, owner, the key's earlier ids, write sequence."""

    envelope: Envelope
    idempotency_key: str | None
    owner: str | None
    earlier_ids: tuple[str, ...] = ()  # the same key's ids under the id secret's other value (rotation)
    sequence: str | None = None  # its place in its writer's order (``domain/clock.py``)


def new_message(
    payload: object,
    *,
    type: str,
    idempotency_key: str | None = None,
    scope: str | None = None,
    keys: IdKeys | None = None,
    group_key: str | None = None,
    trace_id: str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    key_field: str = "Idempotency-Key",
    clock: WriteClock = WRITE_CLOCK,
) -> NewMessage:
    """The key checked, the id derived from it within ``scope`` under ``keys`` (or new), the envelope built.

    ``scope`` (a tenant, a caller) keeps keys apart: the same key in two scopes is two messages,
    and the owner kept is a keyed hash of the scope, never the scope itself. ``key_field`` is what a
    refused key is called (the API's header, or the library's argument). ``clock`` stamps its
    ``created_at`` and write sequence (the process's own write clock by default). ``trace_id`` (an
    X-Ray trace header or a W3C traceparent) is kept as an X-Ray header; any other value is dropped.
    ValidationError for bad input; ConfigurationError for an Idempotency-Key or a scope without ``keys``.
    """
    key = validate_idempotency_key(idempotency_key, field=key_field)
    write = keys.write if keys is not None else None
    if scope is not None and write is None:  # an owner is always keyed, never a plain hash of the scope
        raise ConfigurationError("a scope needs the id secret: give id_secret (OUTBOX_ID_SECRET_ARN)")
    trace = trace_header(trace_id)
    if trace_id is not None and trace is None:  # a hint, never a reason to refuse: dropped, and said once
        warn_once("trace_header_dropped", reason="neither an X-Ray trace header nor a W3C traceparent")
    stamp = clock.stamp()
    envelope = new_envelope(
        payload,
        type=type,
        message_id=new_message_id(key, scope=scope, key=write),
        created_at=stamp.created_at,
        group_key=group_key,
        trace_id=trace,
        max_message_bytes=max_message_bytes,
    )
    owner = write.owner(scope) if scope is not None and write is not None else None
    earlier = tuple(other.message_id(key, scope) for other in keys.earlier) if key and keys else ()
    return NewMessage(envelope, key, owner, earlier, stamp.sequence)


class Acceptor:
    """Accepts a caller's messages into a MessageStore, and reads a caller's own messages back.

    ``before_first_accept`` runs once, before the first accept (the table's bucket check): a read
    never waits for it, and a warm accept stays one request. ``clock`` stamps each message's
    ``created_at`` and write sequence, and tells the id secret's keys the time (the process's
    write clock by default).
    """

    def __init__(
        self,
        store: MessageStore,
        *,
        id_secret: str | IdSecret | IdSecretSource,
        before_first_accept: Callable[[], None] | None = None,
        by: str = "api",
        sleep: Callable[[float], None] = time.sleep,
        clock: WriteClock = WRITE_CLOCK,
    ) -> None:
        self.store = store
        self.id_secret: IdSecretSource = IdSecret.of(id_secret) if isinstance(id_secret, str) else id_secret
        self.by = by
        self.sleep = sleep
        self.clock = clock
        self._before_first_accept = before_first_accept

    def keys(self) -> IdKeys:
        """The id secret's keys now: the one to write under, and the others still recognised."""
        return self.id_secret.id_secret().keys(self.clock.now())

    def accept(self, message: NewMessage, *, owners: frozenset[str] | None = None) -> AcceptResult:
        """Write the PENDING record and its outbox entry at once, or return the owner's message of the same key.

        The owner's message may have been written under the id secret's other value (a retry across
        a rotation): ``message.earlier_ids`` are checked in the same transaction, and ``owners``
        are the owners the caller's records may hold.

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
                    message.envelope,
                    idempotency_key=message.idempotency_key,
                    by=self.by,
                    owner=message.owner,
                    earlier_ids=message.earlier_ids,
                    owners=owners,
                    sequence=message.sequence,
                )
            except TransactionCancelledError as exc:
                if not exc.retryable:
                    raise
                conflict = exc
        raise ThrottledError("the message conflicted with a concurrent write; retry") from conflict

    def read(self, message_id: str, caller: Caller) -> MessageRecord:
        """The caller's own message (strongly consistent).

        One NotFoundError, word for word, for an id that is malformed, unknown or another
        caller's: it names no id, so no two of them can be told apart. An unknown id and another
        caller's cost the same: one read of the owner alone, compared with the caller's owners;
        only the caller's own record is read further (the view).
        """
        unknown = NotFoundError("no such message")
        if not is_message_id(message_id):
            raise unknown
        secret = self.id_secret.id_secret()
        stored = self.store.stored_owner(message_id)
        if stored not in self._owners(secret, caller) and secret.previous_unread:
            # An owner written before the last rotation: the previous value, left unread past the
            # rotation's windows, is read now (an unknown id pays the same).
            secret = self.id_secret.id_secret(previous=True)
        if stored not in self._owners(secret, caller):  # None (no record) and "" (unscoped) never are
            raise unknown
        try:
            return self.store.view(message_id)
        except NotFoundError:  # deleted between the two reads (its TTL)
            raise unknown from None

    def _owners(self, secret: IdSecret, caller: Caller) -> frozenset[str]:
        """Every owner the caller's records may hold under ``secret``."""
        owners = secret.keys(self.clock.now()).owners(caller.principal)
        if caller.legacy is not None:  # a record 0.1.0 wrote for the same caller (its unkeyed owner)
            owners |= {legacy_owner(caller.legacy)}
        return owners
