"""One composition: each use case built from ``Settings`` and a set of AWS ``Clients``.

A Lambda entry point builds its use case once per cold start, ``build_...(Settings.from_env())``,
and keeps it; ``outbox sweep`` and the local stack call the same functions with their own
settings and clients (the stack: one set per function, as Lambda runs each function in its own
process). AWS clients are made in ``Clients``, nowhere else on these paths.

Each ``build_*`` imports its use case and adapters when called, not with this module: a Lambda
function runs one use case, and importing the others' modules (their dataclasses, enums and
patterns) was a tenth of a handler's cold start (bench/RESULTS.md, "Cold start").
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING

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
from outbox.domain.status import Status
from outbox.logs import configure_structlog_if_imported
from outbox.settings import Settings

if TYPE_CHECKING:
    import botocore.session
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_sqs import SQSClient

    from outbox.adapters.store import DynamoDBMessageStore
    from outbox.adapters.sweep import DynamoDBSweepSource
    from outbox.ports import IdSecretSource
    from outbox.service.accept import Acceptor
    from outbox.service.consume import Consumer, Deliver
    from outbox.service.dead_letter import DeadLetters
    from outbox.service.relay import RecentSends, Relay
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
        self.region = region
        self.endpoint_url = endpoint_url
        self.credentials = credentials
        self._session: botocore.session.Session | None = None
        self._lock = threading.Lock()  # a botocore session makes one client at a time
        self.lazy_dynamodb: Lazy[DynamoDBClient] = Lazy(self._dynamodb)
        self.lazy_sqs: Lazy[SQSClient] = Lazy(self._sqs)
        self.lazy_streams: Lazy[DynamoDBStreamsClient] = Lazy(self._streams)
        self.lazy_secretsmanager: Lazy[SecretsManagerClient] = Lazy(self._secretsmanager)

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
    clients = clients or Clients.of(settings)
    table = _sweep_source(settings, clients)

    def check_buckets() -> None:  # refuse to write beside writers that spread groups over other buckets
        table.buckets(settings.buckets)

    store = _store(settings, clients)
    if settings.eager_init:  # SnapStart: the first accept finds PynamoDB imported and its models bound
        store.bind_models()
    return Acceptor(store, id_secret=id_secret, before_first_accept=check_buckets)


def build_id_secret(settings: Settings, clients: Clients | None = None) -> IdSecretSource:
    """The settings' id secret: the Secrets Manager secret ``id_secret_arn`` names, or the value ``id_secret``."""
    if settings.id_secret is not None:
        from outbox.domain.message import IdSecret  # noqa: PLC0415 - the API's alone

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
    pending = _sweep_source(settings, clients)
    return StreamWorker(
        relay,
        hash_key=settings.hash_key,
        range_key=settings.range_key,
        pending=pending,
        swept_after=settings.sweep_min_age,  # older entries may have been relayed by the sweeper
        clock_skew=settings.clock_skew,
    )


def build_consumer(settings: Settings, clients: Clients | None = None, *, deliver: Deliver | None = None) -> Consumer:
    """The consume use case around ``deliver``, else the function ``settings.delivery`` names, else ``log_delivery``."""
    from outbox.adapters.visibility import SqsVisibility  # noqa: PLC0415 - each use case's modules load with it
    from outbox.service.consume import Consumer, ConsumerPolicy  # noqa: PLC0415

    delivery = deliver or resolve_delivery(settings.delivery)  # a wrong OUTBOX_DELIVERY fails before any client
    clients = clients or Clients.of(settings)
    return Consumer(
        _store(settings, clients),
        delivery,
        policy=ConsumerPolicy.from_settings(settings),
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
        _store(settings, clients), visibility=SqsVisibility(clients.lazy_sqs), main_queue_url=main_queue_url
    )


def build_sweeper(settings: Settings, clients: Clients | None = None) -> Sweeper:
    """The sweep use case, over the bucket count the table keeps (read now: at the cold start)."""
    from outbox.service.sweep import StrandedBounds, Sweeper  # noqa: PLC0415 - each use case's modules load with it

    clients = clients or Clients.of(settings)
    source = _sweep_source(settings, clients)
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


def _store(settings: Settings, clients: Clients) -> DynamoDBMessageStore:
    from outbox.adapters.store import DynamoDBMessageStore  # noqa: PLC0415 - each use case's modules load with it

    return DynamoDBMessageStore.from_settings(settings, client=clients.lazy_dynamodb)


def _sweep_source(settings: Settings, clients: Clients) -> DynamoDBSweepSource:
    from outbox.adapters.sweep import DynamoDBSweepSource  # noqa: PLC0415 - each use case's modules load with it

    return DynamoDBSweepSource(
        settings.table_name, client=clients.lazy_dynamodb, hash_key=settings.hash_key, range_key=settings.range_key
    )


def _relay(
    settings: Settings,
    clients: Clients,
    *,
    by: str,
    recent: RecentSends | None = None,
    expected: frozenset[Status] = frozenset({Status.PENDING}),
) -> Relay:
    from outbox.adapters.publisher import SqsPublisher  # noqa: PLC0415 - each use case's modules load with it
    from outbox.service.relay import Relay, RelayPolicy  # noqa: PLC0415

    publisher = SqsPublisher.from_settings(settings, client=clients.lazy_sqs)
    policy = RelayPolicy.from_settings(settings)
    return Relay(_store(settings, clients), publisher, policy=policy, by=by, recent=recent, expected=expected)
