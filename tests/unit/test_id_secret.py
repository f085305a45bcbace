"""The id secret from Secrets Manager: one GetSecretValue when no rotation is recent, the previous value on demand."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from outbox.adapters.secret import SecretsManagerIdSecret
from outbox.domain.caller import Caller
from outbox.domain.clock import WriteClock
from outbox.domain.errors import NotFoundError, OutboxError
from outbox.domain.id_secret import IdSecret
from outbox.domain.message import IdKey
from outbox.domain.record import MessageRecord
from outbox.domain.status import Status
from outbox.service.accept import Acceptor
from outbox.testing import InMemoryMessageStore

OLD, NEW = "o" * 32, "n" * 32
NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)
WINDOW = timedelta(hours=1)
REFRESH = timedelta(minutes=5)
ALICE, BOB = Caller("iam:alice"), Caller("iam:bob")


class SecretsManager:
    """A Secrets Manager client holding one secret's versions: the stages asked for, in order; failures on demand."""

    def __init__(self, current: str, created: datetime | None, previous: str | None = None) -> None:
        self.current, self.created, self.previous = current, created, previous
        self.asked: list[str] = []
        self.failing: set[str] = set()

    def get_secret_value(self, *, SecretId: str, VersionStage: str) -> dict[str, Any]:
        self.asked.append(VersionStage)
        if VersionStage in self.failing:
            raise ClientError({"Error": {"Code": "InternalServiceError", "Message": "down"}}, "GetSecretValue")
        value = self.current if VersionStage == "AWSCURRENT" else self.previous
        if value is None:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no"}}, "GetSecretValue")
        answer: dict[str, Any] = {"ARN": SecretId, "SecretString": value}
        if VersionStage == "AWSCURRENT" and self.created is not None:
            answer["CreatedDate"] = self.created
        return answer


class Monotonic:
    """A settable monotonic clock, in seconds."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _source(client: SecretsManager, clock: Monotonic | None = None) -> SecretsManagerIdSecret:
    return SecretsManagerIdSecret(
        "arn:secret",
        client=client,  # type: ignore[arg-type]
        window=WINDOW,
        refresh=REFRESH,
        clock=clock or Monotonic(),
        wall_clock=lambda: NOW,
    )


def test_past_both_windows_the_first_read_asks_for_the_current_value_alone() -> None:
    """A rotation older than twice the window: one GetSecretValue, and writes under the current value only."""
    client = SecretsManager(NEW, NOW - 2 * WINDOW, previous=OLD)
    secret = _source(client).id_secret()
    assert client.asked == ["AWSCURRENT"]
    assert secret.previous_unread
    keys = secret.keys(NOW)
    assert keys.write.owner("s") == IdKey(NEW).owner("s")
    assert keys.earlier == ()


@pytest.mark.parametrize(
    ("created", "previous"),
    [
        (NOW - 2 * WINDOW + timedelta(seconds=1), OLD),  # the second window: the previous id still checked
        (NOW - timedelta(minutes=1), OLD),  # the first window: the previous value still written
        (None, OLD),  # no creation time: the windows cannot be told over
        (NOW - timedelta(minutes=1), None),  # a new secret, never rotated: asked once, then known
    ],
)
def test_in_a_rotations_windows_both_values_are_read_at_once(created: datetime | None, previous: str | None) -> None:
    """Within twice the window of the current value (or with no time to tell), the previous value is read too."""
    client = SecretsManager(NEW, created, previous=previous)
    source = _source(client)
    secret = source.id_secret()
    assert client.asked == ["AWSCURRENT", "AWSPREVIOUS"]
    assert not secret.previous_unread
    assert secret.previous == previous
    assert source.id_secret(previous=True) is secret
    assert client.asked == ["AWSCURRENT", "AWSPREVIOUS"]


def test_the_previous_value_is_read_when_asked_for_then_kept_to_the_next_refresh() -> None:
    """Asked for, AWSPREVIOUS is read once; a refresh reads the current value alone again, the previous on demand."""
    client = SecretsManager(NEW, NOW - 3 * WINDOW, previous=OLD)
    clock = Monotonic()
    source = _source(client, clock)
    source.id_secret()
    whole = source.id_secret(previous=True)
    assert (whole.previous, whole.previous_unread, whole.rotated_at) == (OLD, False, NOW - 3 * WINDOW)
    assert source.id_secret(previous=True) is whole
    assert source.id_secret() is whole  # writes take the value read whole, as it is
    assert client.asked == ["AWSCURRENT", "AWSPREVIOUS"]
    clock.now += REFRESH.total_seconds()
    assert source.id_secret().previous_unread
    assert source.id_secret(previous=True).previous == OLD
    assert client.asked == ["AWSCURRENT", "AWSPREVIOUS", "AWSCURRENT", "AWSPREVIOUS"]


def test_a_failed_read_of_the_previous_value_keeps_the_one_read_before_else_raises() -> None:
    """The previous value's refresh: the one read before for the same current value stays; with none, it raises."""
    client = SecretsManager(NEW, NOW - 3 * WINDOW, previous=OLD)
    clock = Monotonic()
    source = _source(client, clock)
    client.failing = {"AWSPREVIOUS"}
    with pytest.raises(OutboxError):
        source.id_secret(previous=True)
    client.failing = set()
    assert source.id_secret(previous=True).previous == OLD
    clock.now += REFRESH.total_seconds()
    client.failing = {"AWSPREVIOUS"}
    assert source.id_secret(previous=True).previous == OLD
    client.current = "c" * 32  # rotated since: the previous value read before belongs to another current one
    clock.now += REFRESH.total_seconds()
    with pytest.raises(OutboxError):
        source.id_secret(previous=True)


class CountingSource:
    """An id secret source whose previous value is left unread until asked for: the calls it was asked."""

    def __init__(self) -> None:
        self.calls: list[bool] = []

    def id_secret(self, *, previous: bool = False) -> IdSecret:
        self.calls.append(previous)
        if previous:
            return IdSecret(NEW, previous=OLD, rotated_at=NOW - 3 * WINDOW, window=WINDOW)
        return IdSecret(NEW, rotated_at=NOW - 3 * WINDOW, window=WINDOW, previous_unread=True)


def _record(owner: str) -> MessageRecord:
    at = "2027-03-01T12:00:00.000Z"
    return MessageRecord(str(uuid.uuid4()), Status.QUEUED, "h", at, at, (), "notification", owner=owner)


def test_a_read_asks_for_the_previous_value_only_when_the_current_one_does_not_match() -> None:
    """One's own record under the current value: no more asked; under the previous value: found, once asked."""
    store = InMemoryMessageStore()
    current, earlier = _record(IdKey(NEW).owner(ALICE.principal)), _record(IdKey(OLD).owner(ALICE.principal))
    store.records |= {current.message_id: current, earlier.message_id: earlier}
    source = CountingSource()
    acceptor = Acceptor(store, id_secret=source, clock=WriteClock(lambda: NOW))
    assert acceptor.read(current.message_id, ALICE).message_id == current.message_id
    assert source.calls == [False]
    assert acceptor.read(earlier.message_id, ALICE).message_id == earlier.message_id
    assert source.calls == [False, False, True]
    for message_id, caller in ((earlier.message_id, BOB), (str(uuid.uuid4()), ALICE)):
        source.calls.clear()
        with pytest.raises(NotFoundError):  # another's record and an unknown id cost the same
            acceptor.read(message_id, caller)
        assert source.calls == [False, True]


def test_an_id_secret_with_its_previous_value_unread_carries_none() -> None:
    """``previous_unread`` means the value holds no previous one: both at once is refused."""
    with pytest.raises(OutboxError):
        IdSecret(NEW, previous=OLD, previous_unread=True)
