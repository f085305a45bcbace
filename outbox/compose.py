"""One composition: each use case built from ``Settings`` and a set of AWS ``Clients``.

A Lambda entry point builds its use case once per cold start, ``build_...(Settings.from_env())``,
and keeps it; ``outbox sweep`` and the local stack call the same functions with their own
settings and clients (the stack: one set per function, as Lambda runs each function in its own
process). ``Outbox`` and ``outbox replay`` are built here too. This is the one module that reads
``Settings`` and makes AWS clients (in ``Clients``); the table's ``TableLayout`` is built here
once (``table_layout``) and handed to every adapter, which takes it and a client, nothing else
(tests/unit/test_composition.py holds adapters and use cases to that).

Each ``build_*`` imports its use case and adapters when called, not with this module: a Lambda
function runs one use case, and importing the others' modules (their dataclasses, enums and
patterns) was a tenth of a handler's cold start (bench/RESULTS.md, "Cold start").
"""

from __future__ import annotations

import importlib
import os
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, TypedDict

from outbox.adapters.aws import (
    Lazy,
    SecretsManagerClient,
    dynamodb_client,
    new_session,
    secretsmanager_client,
    sqs_client,
    streams_client,
)
from outbox.domain.errors import ConfigurationError
from outbox.domain.layout import TableLayout
from outbox.domain.status import Status
from outbox.logs import configure_structlog_if_imported
from outbox.settings import Settings

if TYPE_CHECKING:
    import botocore.session
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_sqs import SQSClient

    from outbox.adapters.reader import DynamoDBOutboxReader
    from outbox.adapters.store import DynamoDBMessageStore
    from outbox.adapters.sweep import DynamoDBSweepSource
    from outbox.ports import IdSecretSource
    from outbox.service.accept import Acceptor
    from outbox.service.consume import Consumer, ConsumerPolicy, Deliver
    from outbox.service.dead_letter import DeadLetters
    from outbox.service.relay import RecentSends, Relay, RelayPolicy
    from outbox.service.stream import StreamWorker
    from outbox.service.sweep import Sweeper

# Messages a warm worker remembers sending: a redelivered stream batch is not sent again.
RECENT_SENDS = 10_000

Credentials = tuple[str, str, str | None]  # access key, secret key, session token


class Clients:
    """The AWS clients of one process (a Lambda function, or one function of the local stack): one botocore session.

    Each client is made on its first use: the use cases get ``Lazy`` handles, so a function makes
    only the clients its requests need, when the first such request comes (an invocation that
    calls no AWS API, such as an empty batch or a 404, makes none), and botocore reads its endpoint
    data once per session. ``endpoint_url`` and ``credentials`` point them elsewhere than the
    environment says (the local stack's emulator).
    """

    def __init__(
        self,
        region: str | None = None,
        *,
        endpoint_url: str | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        # The region given, else AWS_REGION as Lambda and the CLI set it, else botocore's own.
        self.region = region or os.environ.get("AWS_REGION") or None
        self.endpoint_url = endpoint_url
        self.credentials = credentials
        self._session: botocore.session.Session | None = None
        self._lock = threading.Lock()  # a botocore session makes one client at a time
        self.lazy_dynamodb: Lazy[DynamoDBClient] = Lazy(self._dynamodb)
        self.lazy_sqs: Lazy[SQSClient] = Lazy(self._sqs)
        self.lazy_streams: Lazy[DynamoDBStreamsClient] = Lazy(self._streams)
        self.lazy_secretsmanager: Lazy[SecretsManagerClient] = Lazy(self._secretsmanager)

    @classmethod
    def given(cls, *, dynamodb: DynamoDBClient | None = None, sqs: SQSClient | None = None) -> Clients:
        """Clients that hand out the ones given (a caller's own, a test's); any other is made as usual, on first use."""
        clients = cls()
        if dynamodb is not None:
            clients.lazy_dynamodb = Lazy(lambda: dynamodb)
        if sqs is not None:
            clients.lazy_sqs = Lazy(lambda: sqs)
        return clients

    @classmethod
    def of(cls, settings: Settings) -> Clients:
        """The clients of the settings' region, credentials and endpoint from the environment.

        With ``settings.eager_init`` (SnapStart) the DynamoDB and SQS clients are made now, in the
        init phase the snapshot keeps, rather than by the first request.
        """
        clients = cls(settings.region)
        if settings.eager_init:
            clients.lazy_dynamodb.get()
            clients.lazy_sqs.get()
        return clients

    @property
    def dynamodb(self) -> DynamoDBClient:
        """The DynamoDB client (made now, if no request made it yet)."""
        return self.lazy_dynamodb.get()

    @property
    def sqs(self) -> SQSClient:
        """The SQS client (made now, if no request made it yet)."""
        return self.lazy_sqs.get()

    @property
    def secretsmanager(self) -> SecretsManagerClient:
        """The Secrets Manager client (the API's id secret; the local stack creates it with this one)."""
        return self.lazy_secretsmanager.get()

    @property
    def streams(self) -> DynamoDBStreamsClient:
        """The DynamoDB Streams client (the local stream runner's; on AWS, Lambda reads the stream)."""
        return self.lazy_streams.get()

    def _dynamodb(self) -> DynamoDBClient:
        with self._lock:
            return dynamodb_client(self.region, session=self._shared_session(), endpoint_url=self.endpoint_url)

    def _sqs(self) -> SQSClient:
        with self._lock:
            return sqs_client(self.region, session=self._shared_session(), endpoint_url=self.endpoint_url)

    def _secretsmanager(self) -> SecretsManagerClient:
        with self._lock:
            return secretsmanager_client(self.region, session=self._shared_session(), endpoint_url=self.endpoint_url)

    def _streams(self) -> DynamoDBStreamsClient:
        with self._lock:
            return streams_client(self.region, session=self._shared_session(), endpoint_url=self.endpoint_url)

    def _shared_session(self) -> botocore.session.Session:
        if self._session is None:
            self._session = new_session(self.region)
            if self.credentials is not None:
                self._session.set_credentials(*self.credentials)
        return self._session


def build_acceptor(settings: Settings, clients: Clients | None = None) -> Acceptor:
    """The accept use case on the settings' table; its first accept checks the table's bucket count.

    Its id secret is the settings' (ConfigurationError without one): read from Secrets Manager by
    the first request that needs it, then again every few minutes (a rotation).
    """
    from outbox.service.accept import Acceptor  # noqa: PLC0415 - each use case's modules load with it

    clients = clients or Clients.of(settings)
    id_secret = build_id_secret(settings, clients)
    layout = table_layout(settings)

    def check_buckets() -> None:  # refuse to write beside writers that spread groups over other buckets
        _sweep_source(layout, clients).buckets(layout.buckets)  # made here: a read never loads it

    return Acceptor(message_store(settings, clients), id_secret=id_secret, before_first_accept=check_buckets)


def build_id_secret(settings: Settings, clients: Clients | None = None) -> IdSecretSource:
    """The settings' id secret: the Secrets Manager secret ``id_secret_arn`` names, or the value ``id_secret``."""
    if settings.id_secret is not None:
        from outbox.domain.id_secret import IdSecret  # noqa: PLC0415 - the API's alone

        return IdSecret(settings.id_secret, window=settings.id_secret_window)
    if settings.id_secret_arn is None:
        raise ConfigurationError(
            "OUTBOX_ID_SECRET_ARN is not set: name the Secrets Manager secret that keys message ids "
            "(the Terraform module's id_secret_arn output), or give OUTBOX_ID_SECRET for local use"
        )
    from outbox.adapters.secret import SecretsManagerIdSecret  # noqa: PLC0415 - the API's alone

    clients = clients or Clients.of(settings)
    if settings.eager_init:  # SnapStart: the client in the snapshot; the value itself is read per container
        clients.lazy_secretsmanager.get()
    return SecretsManagerIdSecret(
        settings.id_secret_arn, client=clients.lazy_secretsmanager, window=settings.id_secret_window
    )


def build_stream_worker(settings: Settings, clients: Clients | None = None) -> StreamWorker:
    """The stream use case: the relay to the settings' queue, a memory of recent sends, the pending index."""
    from outbox.service.relay import RecentSends  # noqa: PLC0415 - each use case's modules load with it
    from outbox.service.stream import StreamWorker  # noqa: PLC0415

    clients = clients or Clients.of(settings)
    relay = _relay(settings, clients, by="worker", recent=RecentSends(RECENT_SENDS))
    layout = table_layout(settings)
    return StreamWorker(
        relay,
        layout=layout,
        pending=_sweep_source(layout, clients),
        swept_after=settings.sweep_min_age,  # older entries may have been relayed by the sweeper
        clock_skew=settings.clock_skew,
    )


def build_consumer(settings: Settings, clients: Clients | None = None, *, deliver: Deliver | None = None) -> Consumer:
    """The consume use case around ``deliver``, else the function ``settings.delivery`` names, else ``log_delivery``."""
    from outbox.adapters.visibility import SqsVisibility  # noqa: PLC0415 - each use case's modules load with it
    from outbox.service.consume import Consumer  # noqa: PLC0415

    delivery = deliver or resolve_delivery(settings.delivery)  # a wrong OUTBOX_DELIVERY fails before any client
    clients = clients or Clients.of(settings)
    return Consumer(
        message_store(settings, clients),
        delivery,
        policy=consumer_policy(settings),
        visibility=SqsVisibility(clients.lazy_sqs),
    )


def build_dead_letters(settings: Settings, clients: Clients | None = None) -> DeadLetters:
    """The dead-letter use case: each copy in the dead-letter queue ends its record FAILED."""
    from outbox.adapters.visibility import SqsVisibility  # noqa: PLC0415 - each use case's modules load with it
    from outbox.service.dead_letter import DeadLetters  # noqa: PLC0415

    # Only copies SQS moved here from the main queue end records: the function must know that queue.
    main_queue_url = settings.require_queue_url()
    clients = clients or Clients.of(settings)
    return DeadLetters(
        message_store(settings, clients), visibility=SqsVisibility(clients.lazy_sqs), main_queue_url=main_queue_url
    )


def build_sweeper(settings: Settings, clients: Clients | None = None) -> Sweeper:
    """The sweep use case, over the bucket count the table keeps (read now: at the cold start)."""
    from outbox.service.sweep import StrandedBounds, Sweeper  # noqa: PLC0415 - each use case's modules load with it

    clients = clients or Clients.of(settings)
    source = _sweep_source(table_layout(settings), clients)
    relay = _relay(settings, clients, by="sweeper")
    resender = _relay(settings, clients, by="sweeper", expected=frozenset())  # in flight: nothing to flip
    buckets = source.stored_buckets() or settings.buckets
    bounds = StrandedBounds(retention=settings.queue_retention, visibility=settings.queue_visibility)
    return Sweeper(source, relay, buckets=buckets, min_age=settings.sweep_min_age, resender=resender, bounds=bounds)


def resolve_delivery(reference: str | None) -> Deliver:
    """The function ``package.module:function`` names (``OUTBOX_DELIVERY``), or ``log_delivery`` without one."""
    if not reference:
        from outbox.service.consume import log_delivery  # noqa: PLC0415 - the consumer's module

        return log_delivery
    module_name, _, name = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"OUTBOX_DELIVERY={reference}: {_import_problem(module_name, exc)}") from exc
    configure_structlog_if_imported()  # your module's structlog lines as the function's own, from the first
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigurationError(f"OUTBOX_DELIVERY={reference}: {module_name} has no function {name}")
    delivery: Deliver = function
    return delivery


def _import_problem(module_name: str, exc: ImportError) -> str:
    """Why ``module_name`` did not import: itself missing, or something it imports (named, so it can be added)."""
    missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
    if missing is not None and (module_name == missing or module_name.startswith(f"{missing}.")):
        return f"there is no module {module_name} (is its folder in the package, at the zip's root?)"
    if missing is not None:
        return f"{module_name} imports {missing}, which is not installed: add it to the function's requirements"
    return f"{module_name} did not import: {exc}"


def table_layout(settings: Settings) -> TableLayout:
    """The table the settings name: its name, key names and bucket count."""
    return TableLayout(settings.table_name, settings.hash_key, settings.range_key, settings.buckets)


def relay_policy(settings: Settings) -> RelayPolicy:
    """The relay's limits the settings describe."""
    from outbox.service.relay import RelayPolicy  # noqa: PLC0415 - each use case's modules load with it

    return RelayPolicy(
        max_batch_bytes=settings.max_message_bytes,
        max_attempts=settings.max_relay_attempts,
        deadline_margin_ms=settings.deadline_margin_ms,
        flip_concurrency=settings.flip_concurrency,
    )


def consumer_policy(settings: Settings) -> ConsumerPolicy:
    """The consumer's limits the settings describe."""
    from outbox.service.consume import ConsumerPolicy  # noqa: PLC0415 - each use case's modules load with it

    return ConsumerPolicy(max_attempts=settings.max_delivery_attempts, max_receive_count=settings.max_receive_count)


class OutboxArguments(TypedDict):
    """What ``Outbox(...)`` takes from the settings (``Outbox.from_settings``)."""

    table_name: str
    hash_key: str
    range_key: str
    buckets: int
    retention: timedelta
    max_message_bytes: int
    region: str | None
    id_secret: IdSecretSource | None


def outbox_arguments(settings: Settings) -> OutboxArguments:
    """``Outbox``'s arguments from the settings: their table, its layout and limits, and their id secret.

    The id secret is ``OUTBOX_ID_SECRET_ARN``'s (read from Secrets Manager when first needed, as
    the API reads it) or ``OUTBOX_ID_SECRET``'s, if either is set.
    """
    has_secret = settings.id_secret is not None or settings.id_secret_arn is not None
    return OutboxArguments(
        table_name=settings.table_name,
        hash_key=settings.hash_key,
        range_key=settings.range_key,
        buckets=settings.buckets,
        retention=settings.retention,
        max_message_bytes=settings.max_message_bytes,
        region=settings.region,
        id_secret=build_id_secret(settings) if has_secret else None,
    )


def outbox_adapters(
    layout: TableLayout, *, client: DynamoDBClient | None, region: str | None, retention: timedelta
) -> tuple[DynamoDBMessageStore, DynamoDBSweepSource]:
    """What an ``Outbox`` writes and checks its table with, on ``client`` or a new one in ``region``.

    Without ``region``: ``AWS_REGION``, else ``AWS_DEFAULT_REGION`` or the profile's; a
    ConfigurationError in one line if none is set.
    """
    from botocore.exceptions import NoRegionError  # noqa: PLC0415 - botocore loads with the first client

    from outbox.adapters.store import DynamoDBMessageStore  # noqa: PLC0415 - each use case's modules load with it
    from outbox.adapters.sweep import DynamoDBSweepSource  # noqa: PLC0415

    if client is None:
        try:
            client = Clients(region).dynamodb
        except NoRegionError as exc:
            raise ConfigurationError("no AWS region: pass region=, or set AWS_REGION (or AWS_DEFAULT_REGION)") from exc
    return DynamoDBMessageStore(layout, client, retention=retention), DynamoDBSweepSource(layout, client)


def replay_clients(region: str | None) -> Clients:
    """The clients of ``outbox replay``: its region, the endpoint from the environment (``--endpoint-url``)."""
    return Clients(region)


def replay_source(layout: TableLayout, clients: Clients) -> DynamoDBSweepSource:
    """Where ``outbox replay`` reads the table's bucket count and a group's older PENDING messages."""
    return _sweep_source(layout, clients)


def replay_reader(layout: TableLayout, clients: Clients) -> DynamoDBOutboxReader:
    """What ``outbox replay`` reads the outbox entries and the statuses with."""
    from outbox.adapters.reader import DynamoDBOutboxReader  # noqa: PLC0415 - replay's alone

    return DynamoDBOutboxReader(layout, clients.dynamodb)


def replay_relay(
    layout: TableLayout, clients: Clients, *, queue_url: str, batch_entries: int, expected: frozenset[Status]
) -> Relay:
    """``outbox replay``'s relay: to ``queue_url``, ``batch_entries`` a batch, flipping records from ``expected``.

    It never gives a message up as poison (an operator's replay reports each failure instead).
    """
    from outbox.adapters.publisher import SqsPublisher  # noqa: PLC0415 - each use case's modules load with it
    from outbox.adapters.store import DynamoDBMessageStore  # noqa: PLC0415
    from outbox.service.relay import Relay, RelayPolicy  # noqa: PLC0415

    store = DynamoDBMessageStore(layout, clients.lazy_dynamodb)
    publisher = SqsPublisher(queue_url, client=clients.lazy_sqs)
    policy = RelayPolicy(batch_entries=batch_entries, max_attempts=1_000_000)
    return Relay(store, publisher, policy=policy, by="replay", expected=expected)


def message_store(settings: Settings, clients: Clients) -> DynamoDBMessageStore:
    """The message store of the settings' table, with their retentions."""
    from outbox.adapters.store import DynamoDBMessageStore  # noqa: PLC0415 - each use case's modules load with it

    return DynamoDBMessageStore(
        table_layout(settings),
        clients.lazy_dynamodb,
        retention=settings.retention,
        record_retention=settings.record_retention,
    )


def _sweep_source(layout: TableLayout, clients: Clients) -> DynamoDBSweepSource:
    from outbox.adapters.sweep import DynamoDBSweepSource  # noqa: PLC0415 - each use case's modules load with it

    return DynamoDBSweepSource(layout, clients.lazy_dynamodb)


def _relay(
    settings: Settings,
    clients: Clients,
    *,
    by: str,
    recent: RecentSends | None = None,
    expected: frozenset[Status] = frozenset({Status.PENDING}),
) -> Relay:
    from outbox.adapters.publisher import SqsPublisher  # noqa: PLC0415 - each use case's modules load with it
    from outbox.service.relay import Relay  # noqa: PLC0415

    publisher = SqsPublisher(settings.require_queue_url(), client=clients.lazy_sqs)
    return Relay(
        message_store(settings, clients),
        publisher,
        policy=relay_policy(settings),
        by=by,
        recent=recent,
        expected=expected,
    )
