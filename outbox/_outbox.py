"""``Outbox``: add a message to your own DynamoDB transaction, so it is published if and only if it commits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from outbox.adapters.aws import dynamodb_client
from outbox.adapters.schema import HASH_KEY, RANGE_KEY
from outbox.adapters.store import DynamoDBMessageStore, OutboxMessage
from outbox.adapters.sweep import DynamoDBSweepSource
from outbox.compose import build_id_secret
from outbox.domain.envelope import DEFAULT_MAX_MESSAGE_BYTES
from outbox.domain.message import IdSecret
from outbox.domain.record import MessageRecord, utc_now
from outbox.service.accept import new_message
from outbox.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from pynamodb.transactions import TransactWrite

    from outbox.ports import IdSecretSource


class Outbox:
    """The outbox of one DynamoDB table: make messages, write them with your items, read their status.

    ``hash_key`` and ``range_key`` name the table's key attributes (``pk``/``sk`` by default);
    ``buckets`` spreads outbox entries over that many partitions (every writer, the worker and
    replay must agree on it); ``retention`` is how long an outbox entry is kept for replay;
    ``max_message_bytes`` is the queue's message size limit; ``by`` names the writer in each
    record's history; ``id_secret`` (a value of 32+ characters, an ``IdSecret`` with a rotation,
    or a source such as the Secrets Manager secret ``from_settings`` reads) keys the ids derived
    from idempotency keys and the owners of scoped messages, so nobody without it can compute
    them. Messages with an idempotency key or a scope need it; others do not.
    """

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        hash_key: str = HASH_KEY,
        range_key: str = RANGE_KEY,
        buckets: int = 16,
        retention: timedelta = timedelta(days=7),
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        region: str | None = None,
        by: str = "service",
        id_secret: str | IdSecret | IdSecretSource | None = None,
    ) -> None:
        self.store = DynamoDBMessageStore(
            table_name,
            client=client or dynamodb_client(region),
            hash_key=hash_key,
            range_key=range_key,
            buckets=buckets,
            retention=retention,
        )
        self.max_message_bytes = max_message_bytes
        self.by = by
        self.id_secret: IdSecretSource | None = IdSecret.of(id_secret) if isinstance(id_secret, str) else id_secret
        self._table = DynamoDBSweepSource(table_name, client=self.store.client, hash_key=hash_key, range_key=range_key)
        self._buckets_checked = False

    @classmethod
    def from_settings(cls, settings: Settings, *, client: DynamoDBClient | None = None, by: str = "service") -> Outbox:
        """The outbox the ``OUTBOX_*`` settings describe (``Settings.from_env()``).

        Its id secret is ``OUTBOX_ID_SECRET_ARN``'s (read from Secrets Manager when first needed,
        as the API reads it) or ``OUTBOX_ID_SECRET``'s, if either is set.
        """
        has_secret = settings.id_secret is not None or settings.id_secret_arn is not None
        return cls(
            settings.table_name,
            client=client,
            hash_key=settings.hash_key,
            range_key=settings.range_key,
            buckets=settings.buckets,
            retention=settings.retention,
            max_message_bytes=settings.max_message_bytes,
            region=settings.region,
            by=by,
            id_secret=build_id_secret(settings) if has_secret else None,
        )

    def message(
        self,
        payload: Mapping[str, Any],
        *,
        type: str,
        group_key: str | None = None,
        idempotency_key: str | None = None,
        trace_id: str | None = None,
        scope: str | None = None,
    ) -> OutboxMessage:
        """A new message, checked and ready for ``transact_write`` (or your own ``TransactWriteItems``).

        ``payload`` is any JSON object and reaches the consumer exactly as given. Messages with
        the same ``group_key`` are delivered in order (on a FIFO queue). With an
        ``idempotency_key`` the message id is derived from it under the id secret, so writing the
        same key twice fails the second transaction instead of publishing twice (during a rotation
        window, the message also checks the key's id under the secret's other value). ``scope``
        (a tenant, a caller) keeps keys apart: the same key in two scopes is two messages, and the
        record keeps a keyed hash of the scope, never the scope itself. Raises ValidationError,
        and ConfigurationError for a key or a scope without an id secret.

        The first call of a process reads the table's bucket count (storing ``buckets`` if it
        has none): ConfigurationError if the table keeps another.
        """
        if not self._buckets_checked:  # once per process: a warm write stays one request
            self._table.buckets(self.store.buckets)
            self._buckets_checked = True
        keys = self.id_secret.id_secret().keys(utc_now()) if self.id_secret is not None else None
        new = new_message(
            payload,
            type=type,
            idempotency_key=idempotency_key,
            scope=scope,
            keys=keys,
            group_key=group_key,
            trace_id=trace_id,
            max_message_bytes=self.max_message_bytes,
        )
        return self.store.prepare(
            new.envelope, idempotency_key=new.idempotency_key, by=self.by, owner=new.owner, earlier_ids=new.earlier_ids
        )

    def transact_write(self, items: Sequence[Mapping[str, Any]], *messages: OutboxMessage) -> None:
        """One ``TransactWriteItems``: your ``items`` (low-level entries such as ``{"Put": {...}}``) and the messages.

        Raises TransactionCancelledError (nothing was written; ``reasons`` in your order, then
        each message's record and entry), ValidationError for more than 100 items in all, or
        another OutboxError for an AWS fault.
        """
        self.store.transact_write(items, messages)

    def add_to(self, transaction: TransactWrite, message: OutboxMessage) -> None:
        """Add ``message`` to a PynamoDB ``TransactWrite``: it commits with your models, or not at all."""
        self.store.add_to(transaction, message)

    def get(self, message_id: str) -> MessageRecord:
        """The message's record (status, history, payload), strongly consistent; NotFoundError when absent."""
        return self.store.get(message_id)
