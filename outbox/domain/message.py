"""Message ids and idempotency keys, and the id secret that keys them: the names every copy of a message is known by."""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from outbox.domain.errors import ConfigurationError, FieldError, ValidationError

MAX_GROUP_KEY_CHARS = 128  # SQS MessageGroupId limit
MAX_IDEMPOTENCY_KEY_CHARS = 255
# Printable ASCII without spaces: what SQS accepts as a MessageGroupId.
PRINTABLE_TOKEN = re.compile(r"^[!-~]+$")
MIN_ID_SECRET_BYTES = 32

# How long after a rotation the previous value of the id secret keeps being written, then checked.
DEFAULT_ROTATION_WINDOW = timedelta(days=1)


class IdKey:
    """One value of the id secret: the message ids and owners it derives, keyed hashes nobody without it can compute.

    Ids and owners are HMAC-SHA256 of the scope (and the key), each with its own label, so an
    owner never equals an id nor another secret's anything. The value never appears in a repr.
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: str | bytes) -> None:
        value = secret.encode() if isinstance(secret, str) else secret
        if len(value) < MIN_ID_SECRET_BYTES:
            raise ConfigurationError(f"the id secret must be at least {MIN_ID_SECRET_BYTES} characters")
        self._secret = value

    def __repr__(self) -> str:
        return "IdKey(...)"

    def message_id(self, idempotency_key: str, scope: str | None) -> str:
        """The one id ``idempotency_key`` maps to within ``scope`` (None: the library's unscoped messages)."""
        name = "-" if scope is None else f"+{len(scope)}:{scope}"  # no scope is not the same as an empty one
        digest = self._mac(b"outbox-message-id", f"{name}:{idempotency_key}")
        return str(uuid.UUID(bytes=digest[:16], version=4))

    def owner(self, scope: str) -> str:
        """What a record keeps of its scope (the caller's principal): a keyed hash, never the principal."""
        return self._mac(b"outbox-owner", scope).hex()

    def _mac(self, label: bytes, text: str) -> bytes:
        return hmac.new(self._secret, label + b"\x00" + text.encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class IdKeys:
    """The keys of one moment: the one new messages are written under, and the others still recognised.

    ``earlier`` are keys whose id of the same Idempotency-Key is checked in the accept's own
    transaction (the rotation window: a retry of a message written under the other key finds it);
    ``readable`` every key whose owners are recognised on reads.
    """

    write: IdKey
    earlier: tuple[IdKey, ...] = ()
    readable: tuple[IdKey, ...] = ()

    def owners(self, scope: str) -> frozenset[str]:
        """Every owner a record of ``scope`` may hold under these keys."""
        return frozenset(key.owner(scope) for key in (self.write, *self.readable))


@dataclass(frozen=True, repr=False)
class IdSecret:
    """The id secret's values: the current one, and after a rotation the previous one, with the rotation's time.

    For ``window`` after a rotation new messages are still written under the previous value (every
    function that has not yet read the new one writes the same ids), with the new value's id
    checked; for another ``window`` under the new one, with the previous value's id checked. So a
    retry finds its message whichever function, before or after the rotation, wrote it. Owners
    under either value are recognised until the next rotation.

    Past both windows writes need the current value alone, so a source may leave the previous one
    unread (``previous_unread``): a read that must recognise an older owner asks its source for it
    (``IdSecretSource.id_secret(previous=True)``).
    """

    current: str
    previous: str | None = None
    rotated_at: datetime | None = None  # when ``current`` was made; None: no rotation to honour
    window: timedelta = DEFAULT_ROTATION_WINDOW
    previous_unread: bool = False  # a previous value may exist that this one does not carry

    def __post_init__(self) -> None:
        IdKey(self.current)  # refuses a short value now, not at the first message
        if self.window < timedelta(0):
            raise ConfigurationError("the id secret's rotation window cannot be negative")
        if self.previous_unread and self.previous is not None:
            raise ConfigurationError("an id secret whose previous value is unread cannot carry one")

    @classmethod
    def of(cls, secret: str | IdSecret) -> IdSecret:
        """``secret`` as an IdSecret: a single value never rotated, or the IdSecret itself."""
        return secret if isinstance(secret, IdSecret) else cls(secret)

    def id_secret(self, *, previous: bool = False) -> IdSecret:
        """Itself: a value given is its own source (``ports.IdSecretSource``)."""
        return self

    def past_windows(self, now: datetime) -> bool:
        """Whether writes at ``now`` need the current value alone: both windows of its rotation are over."""
        return self.rotated_at is not None and now - self.rotated_at >= self.window * 2

    def keys(self, now: datetime) -> IdKeys:
        """The keys to write, check and read under at ``now``."""
        current = IdKey(self.current)
        if self.previous is None or self.previous == self.current:
            return IdKeys(current, (), (current,))
        previous = IdKey(self.previous)
        age = now - self.rotated_at if self.rotated_at is not None else self.window * 2
        if age < self.window:
            return IdKeys(previous, (current,), (previous, current))
        if age < self.window * 2:
            return IdKeys(current, (previous,), (current, previous))
        return IdKeys(current, (), (current, previous))


def new_message_id(idempotency_key: str | None = None, *, scope: str | None = None, key: IdKey | None = None) -> str:
    """A random id, or the one id an Idempotency-Key maps to within its ``scope`` under ``key``.

    An id derived from a key is always keyed (ConfigurationError without one): nobody without the
    id secret can compute another caller's id from a key it guessed.
    """
    if idempotency_key is None:
        return str(uuid.uuid4())
    if key is None:
        raise ConfigurationError(
            "an idempotency_key needs the id secret: give Outbox(id_secret=...), or set OUTBOX_ID_SECRET_ARN"
        )
    return key.message_id(idempotency_key, scope)


def legacy_owner(principal: str) -> str:
    """The owner 0.1.0 kept for ``principal`` (an unkeyed SHA-256): only compared, to read 0.1.0's records."""
    return hashlib.sha256(f"outbox-owner:{principal}".encode()).hexdigest()


def is_message_id(value: str) -> bool:
    """Whether ``value`` has the shape of a message id (a canonical UUID string)."""
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def validate_idempotency_key(value: str | None, *, field: str = "Idempotency-Key") -> str | None:
    """Check an idempotency key (``field``: the API's header, or an argument): printable ASCII, 1 to 255 characters."""
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_IDEMPOTENCY_KEY_CHARS
        or not PRINTABLE_TOKEN.match(value)
    ):
        raise ValidationError(
            [FieldError(field, f"must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters")]
        )
    return value
