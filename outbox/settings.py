"""Settings from the environment, read once per cold start; a missing one fails with one clear line."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from outbox.domain.caller import RoleSessions
from outbox.domain.envelope import DEFAULT_MAX_MESSAGE_BYTES
from outbox.domain.errors import ConfigurationError
from outbox.domain.layout import DEFAULT_BUCKETS, DEFAULT_HASH_KEY, DEFAULT_RANGE_KEY
from outbox.domain.message import DEFAULT_ROTATION_WINDOW, MIN_ID_SECRET_BYTES

_KEY_NAME = re.compile(r"^[^\x00-\x1f]{1,255}$")
_DELIVERY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
MIN_ID_SECRET_CHARS = MIN_ID_SECRET_BYTES
# A rotation window shorter than this could end before every function read the new value (they
# read it again every 5 minutes: adapters/secret.py); 0 switches at once (retries may duplicate).
MIN_ID_SECRET_WINDOW_S = 600


@dataclass(frozen=True)
class Settings:
    """Everything the handlers read from the environment."""

    table_name: str
    queue_url: str | None = None
    hash_key: str = DEFAULT_HASH_KEY
    range_key: str = DEFAULT_RANGE_KEY
    delivery: str | None = None  # "package.module:function" the consumer calls
    region: str | None = None
    buckets: int = DEFAULT_BUCKETS
    retention: timedelta = timedelta(days=7)
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_relay_attempts: int = 5
    max_delivery_attempts: int = 5
    max_receive_count: int | None = None  # the queue's redrive maxReceiveCount, when the consumer must honour it
    deadline_margin_ms: int = 2_000
    flip_concurrency: int = 10
    sweep_min_age: timedelta = timedelta(seconds=300)  # the stream's turn before the sweeper steps in
    clock_skew: timedelta = timedelta(seconds=2)  # the most a writer's clock may be off (the worker's group order)
    # The main queue's message retention and visibility timeout: when a message in flight is stranded.
    queue_retention: timedelta = timedelta(seconds=345_600)
    queue_visibility: timedelta = timedelta(seconds=180)
    record_retention: timedelta = timedelta(days=30)  # a COMPLETED or FAILED record's time to live
    require_principal: bool = False  # the API answers 401 to a request without an IAM caller or JWT subject
    # The id secret keys the ids derived from Idempotency-Keys and the owners: in Secrets Manager
    # (its ARN; the Terraform module's), or given as a value (local use, the library's tests).
    id_secret_arn: str | None = None
    id_secret: str | None = field(default=None, repr=False)
    id_secret_window: timedelta = DEFAULT_ROTATION_WINDOW  # after a rotation: the previous value written, then checked
    role_sessions: RoleSessions = RoleSessions.SHARED  # an assumed role's sessions: one caller, or one each
    eager_init: bool = False  # OUTBOX_EAGER_INIT (SnapStart): clients and models made at import, not on first use

    def require_queue_url(self) -> str:
        """The queue URL, or a ConfigurationError naming the variable."""
        if not self.queue_url:
            raise ConfigurationError("OUTBOX_QUEUE_URL is not set: give the URL of the SQS queue to relay to")
        return self.queue_url

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, require_queue: bool = False) -> Settings:
        """Read ``OUTBOX_*`` variables; ``require_queue`` for the components that send to SQS."""
        env = os.environ if env is None else env
        table_name = env.get("OUTBOX_TABLE_NAME", "").strip()
        if not table_name:
            raise ConfigurationError("OUTBOX_TABLE_NAME is not set: name the DynamoDB table of the outbox")
        queue_url = env.get("OUTBOX_QUEUE_URL", "").strip() or None
        delivery = env.get("OUTBOX_DELIVERY", "").strip() or None
        if delivery is not None and not _DELIVERY.match(delivery):
            raise ConfigurationError(f"OUTBOX_DELIVERY must be package.module:function, not {delivery!r}")
        settings = cls(
            table_name=table_name,
            queue_url=queue_url,
            hash_key=_key_name(env, "OUTBOX_HASH_KEY", DEFAULT_HASH_KEY),
            range_key=_key_name(env, "OUTBOX_RANGE_KEY", DEFAULT_RANGE_KEY),
            delivery=delivery,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            buckets=_positive(env, "OUTBOX_BUCKETS", DEFAULT_BUCKETS),
            retention=timedelta(days=_positive(env, "OUTBOX_RETENTION_DAYS", 7)),
            max_message_bytes=_positive(env, "OUTBOX_MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES),
            max_relay_attempts=_positive(env, "OUTBOX_MAX_RELAY_ATTEMPTS", 5),
            max_delivery_attempts=_positive(env, "OUTBOX_MAX_DELIVERY_ATTEMPTS", 5),
            max_receive_count=_positive(env, "OUTBOX_MAX_RECEIVE_COUNT", 0) or None,
            deadline_margin_ms=_positive(env, "OUTBOX_DEADLINE_MARGIN_MS", 2_000),
            flip_concurrency=_positive(env, "OUTBOX_FLIP_CONCURRENCY", 10),
            sweep_min_age=timedelta(seconds=_positive(env, "OUTBOX_SWEEP_MIN_AGE_SECONDS", 300)),
            clock_skew=timedelta(milliseconds=_not_negative(env, "OUTBOX_MAX_CLOCK_SKEW_MS", 2_000)),
            queue_retention=timedelta(seconds=_positive(env, "OUTBOX_QUEUE_RETENTION_SECONDS", 345_600)),
            queue_visibility=timedelta(seconds=_positive(env, "OUTBOX_QUEUE_VISIBILITY_SECONDS", 180)),
            record_retention=timedelta(days=_positive(env, "OUTBOX_RECORD_RETENTION_DAYS", 30)),
            require_principal=_flag(env, "OUTBOX_REQUIRE_PRINCIPAL"),
            id_secret_arn=env.get("OUTBOX_ID_SECRET_ARN", "").strip() or None,
            id_secret=env.get("OUTBOX_ID_SECRET", "").strip() or None,
            id_secret_window=timedelta(seconds=_not_negative(env, "OUTBOX_ID_SECRET_WINDOW_SECONDS", 86_400)),
            role_sessions=_role_sessions(env),
            eager_init=eager_init(env),
        )
        if settings.id_secret is not None and len(settings.id_secret) < MIN_ID_SECRET_CHARS:
            raise ConfigurationError(f"OUTBOX_ID_SECRET must be at least {MIN_ID_SECRET_CHARS} characters")
        if 0 < settings.id_secret_window.total_seconds() < MIN_ID_SECRET_WINDOW_S:
            raise ConfigurationError(f"OUTBOX_ID_SECRET_WINDOW_SECONDS must be 0 or at least {MIN_ID_SECRET_WINDOW_S}")
        if settings.id_secret is not None and settings.id_secret_arn is not None:
            raise ConfigurationError("set OUTBOX_ID_SECRET_ARN or OUTBOX_ID_SECRET, not both")

        if settings.hash_key == settings.range_key:
            raise ConfigurationError("OUTBOX_HASH_KEY and OUTBOX_RANGE_KEY must name two different attributes")
        if require_queue:
            settings.require_queue_url()
        return settings


def eager_init(env: Mapping[str, str] | None = None) -> bool:
    """Whether a handler does its set-up at import, in Lambda's init phase (``OUTBOX_EAGER_INIT``).

    The Terraform module sets it with SnapStart: the init phase runs once, when a version is
    published, and every new container starts from its snapshot, so what it makes (clients,
    models, the imports behind them) costs no request anything. Without SnapStart the handlers
    make each of those at the first request that needs it.
    """
    return _flag(os.environ if env is None else env, "OUTBOX_EAGER_INIT")


def _key_name(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if not _KEY_NAME.match(value):
        raise ConfigurationError(f"{name} must be a DynamoDB attribute name of 1 to 255 characters")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "false", "0", "no"):
        return False
    if raw in ("true", "1", "yes"):
        return True
    raise ConfigurationError(f"{name} must be true or false, not {raw!r}")


def _role_sessions(env: Mapping[str, str]) -> RoleSessions:
    raw = env.get("OUTBOX_ROLE_SESSIONS", "").strip().lower() or RoleSessions.SHARED.value
    try:
        return RoleSessions(raw)
    except ValueError:
        raise ConfigurationError(f"OUTBOX_ROLE_SESSIONS must be shared or apart, not {raw!r}") from None


def _not_negative(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ConfigurationError(f"{name} must be a whole number of 0 or more, not {raw!r}")
    return int(raw)


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigurationError(f"{name} must be a positive whole number, not {raw!r}")
    return value
