"""Message ids and idempotency keys: the names every copy of a message is known by."""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid

from outbox.domain.errors import FieldError, ValidationError

MAX_GROUP_KEY_CHARS = 128  # SQS MessageGroupId limit
MAX_IDEMPOTENCY_KEY_CHARS = 255
# Printable ASCII without spaces: what SQS accepts as a MessageGroupId.
PRINTABLE_TOKEN = re.compile(r"^[!-~]+$")

# Message ids derived from an Idempotency-Key live in their own UUID namespace.
_IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c3a52-8a57-4b39-9a0e-2f4d1d7c5b10")


def new_message_id(idempotency_key: str | None = None, *, scope: str | None = None, secret: str | None = None) -> str:
    """A random id, or the one id an Idempotency-Key always maps to within its ``scope``.

    With a ``secret`` the id is a keyed hash (HMAC-SHA256) of scope and key, shaped as a UUID:
    nobody without the secret can compute another caller's id from a key. Without one it is a
    UUID 5 of scope and key (unscoped: exactly the ids of before), which anyone can compute;
    reads are scoped to the owner all the same, so a computed id of another's message is a 404.
    """
    if idempotency_key is None:
        return str(uuid.uuid4())
    name = idempotency_key if scope is None else f"{len(scope)}:{scope}:{idempotency_key}"  # unambiguous
    if secret is None:
        return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, name))
    scoped = ("-" if scope is None else "+") + name  # no scope is not the same as an empty one
    digest = hmac.new(secret.encode(), scoped.encode(), hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def owner_of(scope: str | None) -> str | None:
    """What a record keeps of its scope (the principal): a SHA-256, so the table holds no ARN or e-mail."""
    if scope is None:
        return None
    return hashlib.sha256(f"outbox-owner:{scope}".encode()).hexdigest()


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
