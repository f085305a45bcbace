"""The id secret in AWS Secrets Manager: its current and previous values, read once and refreshed every few minutes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from botocore.exceptions import ClientError

from outbox.adapters.aws import AWS_ERRORS, Lazy, SecretsManagerClient, error_code, resolve, translate
from outbox.domain.errors import ConfigurationError, OutboxError
from outbox.domain.message import DEFAULT_ROTATION_WINDOW, IdSecret
from outbox.logs import get_logger

log = get_logger("outbox.secret")

# Every function learns of a rotation within this time, which is what lets the rotation window be
# short: the window must exceed it (Settings checks), so all functions agree which value to write.
DEFAULT_REFRESH = timedelta(minutes=5)
# After a failed refresh the values already read are kept, and the next refresh tried this soon.
RETRY_REFRESH = timedelta(seconds=30)


class SecretsManagerIdSecret:
    """The id secret a Secrets Manager secret holds: ``AWSCURRENT``, ``AWSPREVIOUS`` and the current one's time.

    The values are read by the first call (a function's first request that needs them) and kept;
    a call ``refresh`` or more later reads them again, so a rotation reaches every warm function
    within ``refresh``. A failed refresh keeps the values read before (and is logged); a failed
    first read raises.
    """

    def __init__(
        self,
        secret_id: str,
        *,
        client: SecretsManagerClient | Lazy[SecretsManagerClient],
        window: timedelta = DEFAULT_ROTATION_WINDOW,
        refresh: timedelta = DEFAULT_REFRESH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.secret_id = secret_id
        self._client = client
        self.window = window
        self.refresh = refresh
        self._clock = clock
        self._lock = threading.Lock()
        self._value: IdSecret | None = None
        self._next_read = 0.0

    def id_secret(self) -> IdSecret:
        """The secret's values, as read at most ``refresh`` ago."""
        with self._lock:
            now = self._clock()
            if self._value is not None and now < self._next_read:
                return self._value
            try:
                self._value = self._read()
            except OutboxError as exc:
                if self._value is None:
                    raise
                log.warning("id_secret_refresh_failed", error=exc.code)
                self._next_read = now + RETRY_REFRESH.total_seconds()
                return self._value
            self._next_read = now + self.refresh.total_seconds()
            return self._value

    def _read(self) -> IdSecret:
        current = self._version("AWSCURRENT")
        if current is None:
            raise ConfigurationError(f"the id secret {self.secret_id} has no current value")
        previous = self._version("AWSPREVIOUS")
        current_value, created = current
        return IdSecret(
            current_value,
            previous=previous[0] if previous is not None else None,
            rotated_at=created if previous is not None else None,
            window=self.window,
        )

    def _version(self, stage: str) -> tuple[str, datetime | None] | None:
        """One version's value and creation time; None when no version has that label."""
        client = resolve(self._client)
        try:
            response = client.get_secret_value(SecretId=self.secret_id, VersionStage=stage)
        except AWS_ERRORS as exc:
            missing = isinstance(exc, ClientError) and error_code(exc) == "ResourceNotFoundException"
            if missing and stage != "AWSCURRENT":  # never rotated: no previous value
                return None
            raise translate(exc, "GetSecretValue") from exc
        value = response.get("SecretString")
        if not isinstance(value, str):
            raise ConfigurationError(f"the id secret {self.secret_id} must hold a string (SecretString)")
        created = response.get("CreatedDate")
        return value.strip(), created.astimezone(UTC) if isinstance(created, datetime) else None
