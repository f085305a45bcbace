"""Message ids and idempotency keys, and a value of the id secret that keys them: the names of every copy.

The id secret's values and rotation (``IdSecret``, ``IdKeys``) are ``domain/id_secret.py``'s: only
the API and a library user's accept need them, so a function that never accepts never makes them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from datetime import timedelta

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
