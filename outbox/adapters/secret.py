"""The id secret in AWS Secrets Manager: its current value, the previous one when needed, refreshed every 5 minutes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from botocore.exceptions import ClientError

from outbox.adapters.aws import AWS_ERRORS, Lazy, SecretsManagerClient, error_code, resolve, translate
from outbox.domain.errors import ConfigurationError, OutboxError
from outbox.domain.id_secret import IdSecret
from outbox.domain.keys import utc_now
from outbox.domain.message import DEFAULT_ROTATION_WINDOW
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
    within ``refresh``. ``AWSCURRENT`` is read first: when its ``CreatedDate`` is older than both
    rotation windows, writes need no other value, and ``AWSPREVIOUS`` is left unread until a read
    asks for it (``previous=True``, an owner the current value does not match), then kept to the
    same refresh. A failed refresh keeps the values read before (and is logged); a failed first
    read raises.
    """

    def __init__(
        self,
        secret_id: str,
        *,
        client: SecretsManagerClient | Lazy[SecretsManagerClient],
        window: timedelta = DEFAULT_ROTATION_WINDOW,
        refresh: timedelta = DEFAULT_REFRESH,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.secret_id = secret_id
        self._client = client
        self.window = window
        self.refresh = refresh
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._value: IdSecret | None = None
        self._next_read = 0.0
        self._whole: IdSecret | None = None  # the last value read with its previous one: kept if a read fails

    def id_secret(self, *, previous: bool = False) -> IdSecret:
        """The secret's values, as read at most ``refresh`` ago; ``previous``: with ``AWSPREVIOUS`` read too."""
        with self._lock:
            now = self._clock()
            value = self._value
            if value is None or now >= self._next_read:
                value = self._refreshed(now)
            if previous and value.previous_unread:
                value = self._with_previous(value)
            self._value = value
            return value

    def _refreshed(self, now: float) -> IdSecret:
        try:
            value = self._read()
        except OutboxError as exc:
            if self._value is None:
                raise
            log.warning("id_secret_refresh_failed", error=exc.code)
            self._next_read = now + RETRY_REFRESH.total_seconds()
            return self._value
        self._next_read = now + self.refresh.total_seconds()
        return value

    def _read(self) -> IdSecret:
        current = self._version("AWSCURRENT")
        if current is None:
            raise ConfigurationError(f"the id secret {self.secret_id} has no current value")
        value, created = current
        unread = IdSecret(value, rotated_at=created, window=self.window, previous_unread=True)
        if unread.past_windows(self._wall_clock()):  # steady state: the first request makes one call
            return unread
        return self._with_previous(unread)

    def _with_previous(self, value: IdSecret) -> IdSecret:
        """``value`` with ``AWSPREVIOUS`` read (and its rotation time, when it has one)."""
        try:
            previous = self._version("AWSPREVIOUS")
        except OutboxError as exc:
            kept = self._whole
            if kept is None or kept.current != value.current:
                raise
            log.warning("id_secret_refresh_failed", error=exc.code)
            return kept
        self._whole = IdSecret(
            value.current,
            previous=previous[0] if previous is not None else None,
            rotated_at=value.rotated_at if previous is not None else None,
            window=self.window,
        )
        return self._whole

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
