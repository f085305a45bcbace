"""The accept use case on the in-memory store: one message per key and caller, conflicts retried, reads scoped."""

from __future__ import annotations

from typing import Any

import pytest

from outbox.domain.caller import ANONYMOUS, Caller
from outbox.domain.errors import (
    CancellationReason,
    ConfigurationError,
    IdempotencyKeyReusedError,
    ItemPart,
    NotFoundError,
    ThrottledError,
    TransactionCancelledError,
    ValidationError,
)
from outbox.domain.id_secret import IdSecret
from outbox.domain.keys import utc_now
from outbox.domain.message import IdKey
from outbox.domain.status import Status
from outbox.notifications.accept import accept_notification
from outbox.service.accept import CONFLICT_RETRY_PAUSES_S, Acceptor, new_message
from outbox.testing import InMemoryMessageStore

SMS = {"channel": "sms", "recipient": "+14155550100", "body": "hello"}
SECRET = "s" * 32
ALICE, BOB = Caller("iam:alice"), Caller("iam:bob")


@pytest.fixture
def acceptor(store: InMemoryMessageStore) -> Acceptor:
    """An acceptor that never waits."""
    return Acceptor(store, id_secret=SECRET, sleep=lambda _s: None)


def test_a_notification_is_accepted_pending_with_its_envelope(acceptor: Acceptor, store: InMemoryMessageStore) -> None:
    """Invariant 1: one PENDING record and its envelope, written by the API, owned by the caller."""
    result = accept_notification(acceptor, SMS | {"group_key": "g"}, idempotency_key=None, caller=ALICE)

    assert (result.status, result.created) == (Status.PENDING, True)
    record = store.records[result.message_id]
    assert (record.type, record.group_key, record.history[0].by) == ("notification", "g", "api")
    assert store.envelopes[result.message_id].payload == SMS | {"group_key": "g"}  # the notification, as given


def test_the_same_key_is_one_message_per_caller(acceptor: Acceptor, store: InMemoryMessageStore) -> None:
    """Invariant 9: a key replays its caller's message; the same key of another caller is another message."""
    first = accept_notification(acceptor, SMS, idempotency_key="k-1", caller=ALICE)
    again = accept_notification(acceptor, SMS, idempotency_key="k-1", caller=ALICE)
    other = accept_notification(acceptor, SMS, idempotency_key="k-1", caller=BOB)

    assert (again.message_id, again.created) == (first.message_id, False)
    assert other.message_id != first.message_id
    assert len(store.records) == 2
    with pytest.raises(IdempotencyKeyReusedError):
        accept_notification(acceptor, SMS | {"body": "changed"}, idempotency_key="k-1", caller=ALICE)


def test_a_caller_reads_only_its_own_messages(acceptor: Acceptor) -> None:
    """Malformed, unknown and another caller's ids are one NotFoundError, naming no id."""
    mine = accept_notification(acceptor, SMS, idempotency_key=None, caller=ALICE).message_id

    assert acceptor.read(mine, ALICE).message_id == mine
    details = set()
    for message_id, caller in ((mine, BOB), (mine, ANONYMOUS), ("not-an-id", ALICE)):
        with pytest.raises(NotFoundError) as caught:
            acceptor.read(message_id, caller)
        details.add(caught.value.detail)
    assert details == {"no such message"}


def test_a_conflict_is_retried_and_a_lasting_one_is_throttled(store: InMemoryMessageStore) -> None:
    """A TransactionConflict is tried again after short pauses; on every try it ends ThrottledError, nothing written."""
    pauses: list[float] = []
    acceptor = Acceptor(store, id_secret=SECRET, sleep=pauses.append)
    conflict = TransactionCancelledError([CancellationReason(0, ItemPart.RECORD, "TransactionConflict", "", "m")])
    store.fail_next["accept"] = conflict
    assert accept_notification(acceptor, SMS, idempotency_key=None, caller=ANONYMOUS).created

    def always_conflicts(*_: Any, **__: Any) -> Any:
        raise conflict

    store.accept = always_conflicts  # type: ignore[method-assign]
    pauses.clear()
    with pytest.raises(ThrottledError):
        accept_notification(acceptor, SMS, idempotency_key=None, caller=ANONYMOUS)
    assert pauses == [0.0, *CONFLICT_RETRY_PAUSES_S]
    assert len(store.records) == 1


def test_the_check_before_the_first_accept_runs_once(store: InMemoryMessageStore) -> None:
    """The table's bucket check runs before the first accept only, and never for a read."""
    checks: list[int] = []
    acceptor = Acceptor(store, id_secret=SECRET, before_first_accept=lambda: checks.append(1))
    with pytest.raises(NotFoundError):
        acceptor.read("00000000-0000-4000-8000-000000000000", ANONYMOUS)
    assert checks == []
    for _ in range(3):
        accept_notification(acceptor, SMS, idempotency_key=None, caller=ANONYMOUS)
    assert checks == [1]


def test_a_new_message_checks_its_key_and_payload_and_keeps_a_hash_of_its_scope() -> None:
    """The library's messages are made here too: ValidationError for a bad key or payload; the owner hides the scope."""
    keys = IdSecret(SECRET).keys(utc_now())
    message = new_message({"order": 1}, type="OrderPlaced", idempotency_key="k", scope="tenant-1", keys=keys)
    assert message.idempotency_key == "k"
    assert message.owner == IdKey(SECRET).owner("tenant-1")
    assert "tenant-1" not in message.owner
    assert (
        message.envelope.message_id
        == new_message({}, type="T", idempotency_key="k", scope="tenant-1", keys=keys).envelope.message_id
    )
    for without_secret in ({"idempotency_key": "k"}, {"scope": "tenant-1"}):  # nothing unkeyed is ever derived
        with pytest.raises(ConfigurationError, match="id secret"):
            new_message({}, type="T", **without_secret)
    for wrong in ({"idempotency_key": "has space"}, {"payload": ["not", "an", "object"]}):
        arguments: dict[str, Any] = {"payload": {}, "type": "T"} | wrong
        with pytest.raises(ValidationError):
            new_message(**arguments)
