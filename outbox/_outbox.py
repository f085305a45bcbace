"""``Outbox``: add a message to your own DynamoDB transaction, so it is published if and only if it commits."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from outbox.adapters.store import OutboxMessage
from outbox.adapters.table import check_table
from outbox.compose import outbox_adapters, outbox_arguments
from outbox.domain.clock import WRITE_CLOCK, WriteClock
from outbox.domain.envelope import DEFAULT_MAX_MESSAGE_BYTES
from outbox.domain.errors import ConfigurationError
from outbox.domain.id_secret import IdSecret
from outbox.domain.layout import DEFAULT_BUCKETS, DEFAULT_HASH_KEY, DEFAULT_RANGE_KEY, TableLayout
from outbox.domain.record import MessageRecord
from outbox.domain.trace import current_trace_header
from outbox.service.accept import new_message

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from pynamodb.connection import Connection
    from pynamodb.transactions import TransactWrite

    from outbox.ports import IdSecretSource
    from outbox.settings import Settings


def _low_level(client: Any) -> Any:
    """``client`` if it sends the outbox's items as they are; ConfigurationError for a resource's client or a Table.

    boto3's resource API converts Python values to DynamoDB's and back on its client
    (``boto3.resource("dynamodb").meta.client``): the outbox's items are already DynamoDB values,
    so that client would wrap them again. It is told apart by what it does to a request (a probe of
    its parameter-building event, which sends nothing), not by private attributes.
    """
    fix = "pass boto3.client('dynamodb') (a low-level client) and the table's name"
    if getattr(getattr(client, "meta", None), "resource_model", None) is not None:
        raise ConfigurationError(f"client: a boto3 resource ({type(client).__name__}) is not a client: {fix}")
    events = getattr(getattr(client, "meta", None), "events", None)
    if events is not None:
        params: dict[str, Any] = {"TableName": "probe", "Key": {"k": {"S": "v"}}}
        model = client.meta.service_model.operation_model("GetItem")
        events.emit("before-parameter-build.dynamodb.GetItem", params=params, model=model, context={})
        if params["Key"]["k"] != {"S": "v"}:
            raise ConfigurationError(
                f"client: a boto3 resource's client converts values the outbox has already converted: {fix}"
            )
    return client


class Outbox:
    """The outbox of one DynamoDB table: make messages, write them with your items, read their status.

    ``hash_key`` and ``range_key`` name the table's key attributes (``pk``/``sk`` by default);
    ``buckets`` spreads outbox entries over that many partitions (every writer, the worker and
    replay must agree on it); together with the table's name they are the outbox's ``layout``
    (a ``TableLayout``), made once here and handed to what reads and writes the table. ``client``
    is a low-level DynamoDB client (made for ``region`` when not given); ``retention`` is how
    long an outbox entry is kept for replay; ``max_message_bytes`` is the queue's message size
    limit; ``by`` names the writer in each record's history; ``id_secret`` (a value of 32+
    characters, an ``IdSecret`` with a rotation, or a source such as the Secrets Manager secret
    ``from_settings`` reads) keys the ids derived from idempotency keys and the owners of scoped
    messages, so nobody without it can compute them. Messages with an idempotency key or a scope need it; others do not.
    ``clock`` stamps each message's ``created_at`` and its place in the write order: the
    process's own clock, shared by every ``Outbox`` of the process (pass another only to play a
    second process, as a test does).
    """

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        hash_key: str = DEFAULT_HASH_KEY,
        range_key: str = DEFAULT_RANGE_KEY,
        buckets: int = DEFAULT_BUCKETS,
        retention: timedelta = timedelta(days=7),
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        region: str | None = None,
        by: str = "service",
        id_secret: str | IdSecret | IdSecretSource | None = None,
        clock: WriteClock = WRITE_CLOCK,
    ) -> None:
        if not isinstance(table_name, str):
            raise ConfigurationError(f"table_name must be the table's name (a str), not a {type(table_name).__name__}")
        self.clock = clock
        self.layout = TableLayout(table_name, hash_key, range_key, buckets)
        given = _low_level(client) if client is not None else None
        self.store, self._table = outbox_adapters(self.layout, client=given, region=region, retention=retention)
        self.max_message_bytes = max_message_bytes
        self.by = by
        self.id_secret: IdSecretSource | None = IdSecret.of(id_secret) if isinstance(id_secret, str) else id_secret
        self._buckets_checked = False

    @classmethod
    def from_settings(cls, settings: Settings, *, client: DynamoDBClient | None = None, by: str = "service") -> Outbox:
        """The outbox the ``OUTBOX_*`` settings describe (``Settings.from_env()``), as ``outbox.compose`` reads them.

        Its id secret is ``OUTBOX_ID_SECRET_ARN``'s (read from Secrets Manager when first needed,
        as the API reads it) or ``OUTBOX_ID_SECRET``'s, if either is set.
        """
        return cls(**outbox_arguments(settings), client=client, by=by)

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

        Messages of one group are delivered in the order this process made them (same
        millisecond and same transaction included), so make each one when you write it.

        ``trace_id`` is the trace context the message carries to its consumer (the copy's
        ``AWSTraceHeader``, the envelope's ``trace_id``, the consumer's log lines): an X-Ray trace
        header or a W3C ``traceparent``, by default this Lambda invocation's (``_X_AMZN_TRACE_ID``).
        A malformed one is dropped (and logged once), never a reason to refuse the message.

        The first call of a process checks the table (DescribeTable: its keys, its stream and the
        record index, so no message is written where it would not be relayed) and reads its bucket
        count (storing ``buckets`` if it has none): ConfigurationError, one line naming the table
        and the setting to change, if the table cannot hold the outbox or keeps another count.
        """
        if not self._buckets_checked:  # once per process: a warm write stays one request
            check_table(self.layout, self.store.client)
            self._table.buckets(self.layout.buckets)
            self._buckets_checked = True
        keys = self.id_secret.id_secret().keys(self.clock.now()) if self.id_secret is not None else None
        new = new_message(
            payload,
            type=type,
            idempotency_key=idempotency_key,
            scope=scope,
            keys=keys,
            group_key=group_key,
            trace_id=trace_id if trace_id is not None else current_trace_header(),
            max_message_bytes=self.max_message_bytes,
            key_field="idempotency_key",
            clock=self.clock,
        )
        return self.store.prepare(
            new.envelope,
            idempotency_key=new.idempotency_key,
            by=self.by,
            owner=new.owner,
            earlier_ids=new.earlier_ids,
            sequence=new.sequence,
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

    @contextmanager
    def transaction(self, connection: Connection | None = None, **options: Any) -> Iterator[TransactWrite]:
        """A PynamoDB ``TransactWrite`` for your models and ``add_to``'s messages, committed on leaving the block.

        A cancellation comes out as TransactionCancelledError naming each failed item (yours, or
        a message's record or entry) without its content, as ``transact_write`` raises it, instead
        of PynamoDB's TransactWriteError. ``connection`` defaults to one in this outbox's region;
        ``options`` go to ``TransactWrite`` (``client_request_token``, ...).
        """
        from pynamodb.connection import Connection  # noqa: PLC0415 - PynamoDB loads with its first use
        from pynamodb.exceptions import TransactWriteError  # noqa: PLC0415
        from pynamodb.transactions import TransactWrite  # noqa: PLC0415

        connection = connection or Connection(region=self.store.client.meta.region_name)
        sent: list[Mapping[str, Any]] = []

        def keep_items(params: dict[str, Any], **_: Any) -> None:  # what was sent, to name each failed item
            sent[:] = params.get("TransactItems", [])

        events = connection.client.meta.events
        event = "before-parameter-build.dynamodb.TransactWriteItems"
        events.register(event, keep_items)
        try:
            with TransactWrite(connection=connection, **options) as transaction:
                yield transaction
        except TransactWriteError as exc:
            cause = exc.cause or exc  # botocore's error: its text names the reasons' codes, never an item
            reasons = [
                {"Code": reason.code, "Message": reason.message or ""} if reason else {"Code": "None"}
                for reason in exc.cancellation_reasons
            ]
            cancelled = exc.cause_response_code == "TransactionCanceledException"
            raise self.store.cancelled(cause, sent, reasons if cancelled else None) from cause
        finally:
            events.unregister(event, keep_items)

    def get(self, message_id: str) -> MessageRecord:
        """The message's record (status, history, payload), strongly consistent; NotFoundError when absent."""
        return self.store.get(message_id)
