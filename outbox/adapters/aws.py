"""AWS clients and the translation of botocore errors into the outbox's own errors.

Clients come from botocore's session, which is what ``boto3.client`` wraps: the same client
classes and handlers, without importing boto3 itself, whose ``s3transfer`` import is a third of
a handler's cold start and serves only S3. Clients made together (a handler's DynamoDB and SQS
clients) share one session, so botocore reads its endpoint and partition data once.

botocore's session, client and config modules are imported by the first client made, not with
this module: a handler whose first invocation makes no AWS call (an empty batch, a 404) never
loads them. Its exceptions are imported here: they are small, and every adapter catches them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
)

from outbox.domain.errors import AwsError, OutboxError, ThrottledError

if TYPE_CHECKING:
    import botocore.session
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_sqs import SQSClient

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottlingError",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "TransactionConflict",
        "TransactionConflictException",
        "RequestThrottled",
    }
)
TRANSIENT_CODES = frozenset(
    {"InternalServerError", "InternalError", "ServiceUnavailable", "InternalFailure", "RequestTimeout"}
)


def client_config(**overrides: Any) -> Config:
    """Standard retries (3 attempts) and short timeouts: a Lambda must not hang on one call.

    botocore's client-side parameter validation stays on, its default: a malformed request fails
    here, naming the field, before it is sent. Turning it off saves CPU that no user would notice
    beside the time each request waits on AWS; the measurement and the decision are in
    bench/RESULTS.md ("Parameter validation"), ``python -m bench.param_validation`` repeats it.
    """
    from botocore.config import Config  # noqa: PLC0415 - botocore's client modules load with the first client

    return Config(
        **overrides,
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=2,
        read_timeout=5,
        max_pool_connections=32,
    )


def _session(region: str | None) -> botocore.session.Session:
    """A botocore session in ``region``, else botocore's own (AWS_DEFAULT_REGION, the profile's).

    ``outbox.compose.Clients`` passes the region a deployment sets (its settings, else AWS_REGION).
    """
    import botocore.session  # noqa: PLC0415 - botocore's client modules load with the first client

    session = botocore.session.get_session()
    if region is not None:
        session.set_config_variable("region", region)
    return session


def new_session(region: str | None = None) -> botocore.session.Session:
    """A fresh botocore session (credentials and settings from the environment), in ``region`` if given."""
    return _session(region)


def dynamodb_client(
    region: str | None = None, *, session: botocore.session.Session | None = None, endpoint_url: str | None = None
) -> DynamoDBClient:
    """A DynamoDB client, on ``session`` or a new one, at ``endpoint_url`` (else botocore honours AWS_ENDPOINT_URL)."""
    client = (session or _session(region)).create_client(
        "dynamodb", region_name=region, endpoint_url=endpoint_url, config=client_config()
    )
    return cast("DynamoDBClient", client)


def sqs_client(
    region: str | None = None, *, session: botocore.session.Session | None = None, endpoint_url: str | None = None
) -> SQSClient:
    """An SQS client, on ``session`` or a new one, at ``endpoint_url`` (else botocore honours AWS_ENDPOINT_URL)."""
    client = (session or _session(region)).create_client(
        "sqs", region_name=region, endpoint_url=endpoint_url, config=client_config()
    )
    return cast("SQSClient", client)


def secretsmanager_client(
    region: str | None = None, *, session: botocore.session.Session | None = None, endpoint_url: str | None = None
) -> SecretsManagerClient:
    """A Secrets Manager client (the id secret's), on ``session`` or a new one, at ``endpoint_url`` if given."""
    client = (session or _session(region)).create_client(
        "secretsmanager", region_name=region, endpoint_url=endpoint_url, config=client_config()
    )
    return cast("SecretsManagerClient", client)


class SecretsManagerClient(Protocol):
    """The calls of Secrets Manager the outbox makes (its typed stubs are not a dependency)."""

    def create_secret(self, *, Name: str, SecretString: str) -> Mapping[str, Any]:
        """A new secret (the local stack's id secret, in its emulator)."""
        ...

    def get_secret_value(self, *, SecretId: str, VersionStage: str) -> Mapping[str, Any]:
        """One version of a secret, by staging label."""
        ...


def streams_client(
    region: str | None = None, *, session: botocore.session.Session | None = None, endpoint_url: str | None = None
) -> DynamoDBStreamsClient:
    """A DynamoDB Streams client, on ``session`` or a new one, at ``endpoint_url`` (else AWS_ENDPOINT_URL).

    Account-id endpoints are off: botocore would route a StreamArn call to
    ``<account>.streams-ddb.<region>.amazonaws.com``, which emulators do not serve.
    """
    config = client_config(account_id_endpoint_mode="disabled")
    client = (session or _session(region)).create_client("dynamodbstreams", endpoint_url=endpoint_url, config=config)
    return cast("DynamoDBStreamsClient", client)


T = TypeVar("T")


class Lazy(Generic[T]):
    """A value made by ``make`` when first asked for, once, whichever thread asks first."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._made: tuple[T] | None = None  # a tuple: the value may itself be falsy or None
        self._lock = threading.Lock()

    @property
    def made(self) -> bool:
        """Whether the value exists yet."""
        return self._made is not None

    def get(self) -> T:
        """The value, made now if this is the first call."""
        made = self._made
        if made is None:
            with self._lock:
                made = self._made
                if made is None:
                    made = self._made = (self._make(),)
        return made[0]


def resolve(value: T | Lazy[T]) -> T:
    """``value`` itself, or the value a ``Lazy`` makes."""
    return value.get() if isinstance(value, Lazy) else value


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ClientError."""
    error: dict[str, Any] = dict(exc.response.get("Error") or {})
    return str(error.get("Code", ""))


def translate(exc: Exception, operation: str) -> OutboxError:
    """Map a botocore error to ThrottledError or AwsError with the right ``retryable`` flag."""
    if isinstance(exc, OutboxError):
        return exc
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in THROTTLING_CODES:
            return ThrottledError(f"{operation} throttled ({code})")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        retryable = code in TRANSIENT_CODES or status >= 500
        return AwsError(f"{operation} failed ({code or status})", retryable=retryable)
    if isinstance(exc, (ConnectionError, HTTPClientError)):
        return AwsError(f"{operation} failed ({type(exc).__name__})", retryable=True)
    if isinstance(exc, BotoCoreError):
        return AwsError(f"{operation} failed ({type(exc).__name__})", retryable=False)
    return AwsError(f"{operation} failed ({type(exc).__name__})", retryable=False)


AWS_ERRORS = (ClientError, BotoCoreError)
