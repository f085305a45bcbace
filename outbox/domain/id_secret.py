"""The id secret: its value, its previous one after a rotation, and the keys each moment writes and reads under.

A value of it (``IdKey``) derives the message ids and owners (``domain/message.py``); these say which
value a write uses and which a read recognises, around a rotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from outbox.domain.errors import ConfigurationError
from outbox.domain.message import DEFAULT_ROTATION_WINDOW, IdKey


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
