"""The replay use case on the in-memory fakes: selection, re-drive, dry run, interrupt and resume, group stops."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from outbox.domain.envelope import new_envelope
from outbox.domain.errors import AwsError
from outbox.domain.keys import iso, utc_now
from outbox.domain.message import new_message_id
from outbox.domain.status import Status
from outbox.replay_cli import ReplayUsageError, parse_duration, parse_time, selection_of
from outbox.service.relay import Relay, RelayPolicy
from outbox.service.replay import FLIP_FROM, Checkpoint, Replayer, Selection, Summary, Target
from outbox.testing import FakePublisher, InMemoryMessageStore, InMemoryOutboxReader

NOW = utc_now()
PAST_MIN_AGE = Selection.window(min_age=timedelta(minutes=5), now=NOW)


@pytest.fixture
def reader(store: InMemoryMessageStore) -> InMemoryOutboxReader:
    """The outbox of the store, in 4 buckets, 3 entries a page."""
    return InMemoryOutboxReader(store, buckets=4, page_size=3)


def _relay(store: InMemoryMessageStore, publisher: FakePublisher, status: str = "PENDING") -> Relay:
    return Relay(store, publisher, by="replay", expected=FLIP_FROM[status], policy=RelayPolicy(max_attempts=1_000))


@pytest.fixture
def relay(store: InMemoryMessageStore, publisher: FakePublisher) -> Iterator[Relay]:
    """The replay's relay for PENDING messages."""
    built = _relay(store, publisher)
    yield built
    built.close()


def _seed(
    store: InMemoryMessageStore, age: timedelta, *, status: Status = Status.PENDING, group: str | None = None
) -> str:
    created = iso(NOW - age)
    envelope = new_envelope({"n": len(store.records)}, type="T", message_id=new_message_id(), created_at=created)
    if group is not None:
        envelope = new_envelope(
            envelope.payload, type="T", message_id=envelope.message_id, created_at=created, group_key=group
        )
    store.accept(envelope, idempotency_key=None)
    if status is not Status.PENDING:
        store.transition(envelope.message_id, status, by="test", reason="poison" if status is Status.FAILED else None)
    return envelope.message_id


def _run(reader: InMemoryOutboxReader, relay: Relay | None, selection: Selection, **options: Any) -> Summary:
    return Replayer(reader, relay, **options).run(Checkpoint(selection))


def test_pending_past_the_minimum_age_is_sent_and_flipped_by_replay(
    store: InMemoryMessageStore, reader: InMemoryOutboxReader, relay: Relay, publisher: FakePublisher
) -> None:
    """PENDING by default, the young ones left to the worker; every other status untouched."""
    pending = {_seed(store, timedelta(hours=h)) for h in (1, 2, 30)}
    young = _seed(store, timedelta(minutes=1))
    queued = _seed(store, timedelta(hours=1), status=Status.QUEUED)
    failed = _seed(store, timedelta(hours=1), status=Status.FAILED)

    summary = _run(reader, relay, PAST_MIN_AGE)

    assert (summary.selected, summary.sent, summary.failed, summary.exit_code()) == (3, 3, 0, 0)
    assert set(publisher.sent_ids()) == pending
    assert all(
        store.records[m].status is Status.QUEUED and store.records[m].history[-1].by == "replay" for m in pending
    )
    assert store.records[young].status is Status.PENDING
    assert (store.records[queued].status, store.records[failed].status) == (Status.QUEUED, Status.FAILED)


@pytest.mark.parametrize(
    ("status", "sent", "after"),
    [
        ("FAILED", {"failed"}, {"pending": Status.PENDING, "queued": Status.QUEUED, "failed": Status.QUEUED}),
        ("ANY", {"pending", "queued", "failed"}, dict.fromkeys(("pending", "queued", "failed"), Status.QUEUED)),
    ],
)
def test_failed_and_any_re_drive_their_statuses(
    store: InMemoryMessageStore,
    reader: InMemoryOutboxReader,
    publisher: FakePublisher,
    status: str,
    sent: set[str],
    after: dict[str, Status],
) -> None:
    """FAILED moves FAILED -> QUEUED; ANY also re-sends a QUEUED message, never moving it backwards."""
    ids = {
        name: _seed(store, timedelta(hours=1), status=Status[name.upper()]) for name in ("pending", "queued", "failed")
    }
    relay = _relay(store, publisher, status)

    summary = _run(reader, relay, Selection.window(status=status, min_age=timedelta(minutes=5), now=NOW))
    relay.close()

    assert (summary.sent, summary.failed) == (len(sent), 0)
    assert set(publisher.sent_ids()) == {ids[name] for name in sent}
    assert {name: store.records[m].status for name, m in ids.items()} == after
    # A replay is a deliberate re-send: each copy under a new send generation (its own FIFO dedup id).
    assert {m.generation for m in publisher.sent} == {1}
    assert {name: store.records[m].send_generation for name, m in ids.items()} == {
        name: int(name in sent) for name in ids
    }


def test_each_redrive_sends_under_a_new_generation_and_a_lost_one_is_already_done(
    store: InMemoryMessageStore, reader: InMemoryOutboxReader, publisher: FakePublisher
) -> None:
    """Defect 2 on the fakes: two re-drives, two generations; a record moved on before its re-send is left."""
    message_id = _seed(store, timedelta(hours=1), status=Status.FAILED)
    moved = _seed(store, timedelta(hours=1), status=Status.FAILED)
    selection = Selection.window(status="FAILED", min_age=timedelta(minutes=5), now=NOW)
    for _ in range(2):
        relay = _relay(store, publisher, "FAILED")
        summary = _run(reader, relay, Selection(selection.since, selection.until, "FAILED", (message_id,)))
        relay.close()
        assert summary.sent == 1
        store.transition(message_id, Status.PROCESSING, by="consumer")
        store.transition(message_id, Status.FAILED, by="consumer", reason="again")
    assert [m.generation for m in publisher.sent] == [1, 2]

    class MovesOn(InMemoryOutboxReader):
        def statuses(self, message_ids: Any) -> dict[str, Status]:
            found = super().statuses(message_ids)  # read FAILED; then another replay re-drives it
            store.transition(moved, Status.QUEUED, by="replay")
            return found

    relay = _relay(store, publisher, "FAILED")
    summary = _run(MovesOn(store, buckets=4), relay, Selection(selection.since, selection.until, "FAILED", (moved,)))
    relay.close()
    assert (summary.sent, summary.already_done) == (0, 1)
    assert store.records[moved].send_generation == 0


def test_a_dry_run_reports_what_it_would_send_and_changes_nothing(
    store: InMemoryMessageStore, reader: InMemoryOutboxReader
) -> None:
    """No relay: every selected message is reported as would_send; no record moves."""
    ids = [_seed(store, timedelta(hours=1)) for _ in range(5)]
    lines: list[dict[str, Any]] = []

    summary = _run(reader, None, PAST_MIN_AGE, report=lines.append)

    assert (summary.would_send, summary.sent) == (5, 0)
    assert sorted(line["message_id"] for line in lines) == sorted(ids)
    assert {line["action"] for line in lines} == {"would_send"}
    assert all(store.records[m].status is Status.PENDING for m in ids)


def test_an_interrupted_replay_resumes_where_it_stopped_and_sends_each_message_once(
    store: InMemoryMessageStore, reader: InMemoryOutboxReader, relay: Relay, publisher: FakePublisher
) -> None:
    """Stopped after three batches, the checkpoint (read back from its data) resumes with the rest."""
    ids = [_seed(store, timedelta(hours=1, seconds=i)) for i in range(8)]
    stop = threading.Event()
    checkpoint = Checkpoint(PAST_MIN_AGE, target=Target("outbox", "https://queue", 4))
    saved: list[dict[str, Any]] = []

    def progress(point: Checkpoint) -> None:
        saved.append(point.to_dict())
        if len(saved) == 3:
            stop.set()  # what Ctrl-C does

    first = Replayer(reader, relay, batch_size=1, stop=stop).run(checkpoint, progress)
    assert (first.interrupted, first.sent, first.exit_code()) == (True, 3, 130)

    resumed = Checkpoint.from_dict(saved[-1])
    assert resumed.selection == PAST_MIN_AGE
    assert resumed.target == Target("outbox", "https://queue", 4)
    second = Replayer(reader, relay, batch_size=1).run(resumed)

    assert (second.interrupted, second.sent, second.exit_code()) == (False, 8, 0)  # the summary carries on
    assert sorted(publisher.sent_ids()) == sorted(ids)
    assert len(publisher.sent_ids()) == len(ids)


def test_a_group_blocked_by_a_failure_stays_blocked_for_the_run(
    store: InMemoryMessageStore, reader: InMemoryOutboxReader, relay: Relay, publisher: FakePublisher
) -> None:
    """Invariant 8: after a message of a group fails, nothing later of the group is sent, even in later batches."""
    first, *rest = [_seed(store, timedelta(hours=1, seconds=-i), group="g") for i in range(4)]
    other = _seed(store, timedelta(hours=1), group="h")
    publisher.refuse[first] = ("ServiceUnavailable", False)
    lines: list[dict[str, Any]] = []

    summary = _run(reader, relay, PAST_MIN_AGE, batch_size=1, report=lines.append)

    actions = {line["message_id"]: line["action"] for line in lines}
    assert actions[first] == "failed"
    assert all(actions[m] == "blocked" for m in rest)
    assert actions[other] == "sent"
    assert (summary.failed, summary.exit_code()) == (4, 1)
    assert publisher.sent_ids() == [other]


def test_a_refused_request_stops_the_run_where_a_resume_redoes_it(
    store: InMemoryMessageStore, reader: InMemoryOutboxReader, relay: Relay, publisher: FakePublisher
) -> None:
    """SQS refusing a whole request stops the run (exit 1); the checkpoint stays before the unsent batch."""
    ids = [_seed(store, timedelta(hours=1, seconds=-i)) for i in range(4)]
    publisher.fail_next.append(AwsError("SendMessageBatch failed (ServiceUnavailable)", retryable=True))
    checkpoint = Checkpoint(PAST_MIN_AGE)

    summary = Replayer(reader, relay, batch_size=2).run(checkpoint)

    assert (summary.stopped, summary.sent, summary.exit_code()) == (True, 0, 1)
    assert checkpoint.position is None
    assert Replayer(reader, relay, batch_size=2).run(Checkpoint.from_dict(checkpoint.to_dict())).sent == 4
    assert sorted(publisher.sent_ids()) == sorted(ids)


def test_message_ids_and_group_keys_narrow_the_selection(
    store: InMemoryMessageStore, reader: InMemoryOutboxReader
) -> None:
    """Ids are found through their records (an expired entry is named not found); a group is read from its bucket."""
    wanted, expired, other = (_seed(store, timedelta(hours=1)) for _ in range(3))
    grouped = _seed(store, timedelta(hours=1), group="g")
    del store.envelopes[expired]  # TTL took the outbox entry; the record is still PENDING
    lines: list[dict[str, Any]] = []

    by_id = Selection.window(min_age=timedelta(minutes=5), message_ids=(wanted, expired), now=NOW)
    assert _run(reader, None, by_id, report=lines.append).would_send == 1
    by_group = Selection.window(min_age=timedelta(minutes=5), group_key="g", now=NOW)
    assert _run(reader, None, by_group, report=lines.append).would_send == 1

    assert [(line["message_id"], line["action"]) for line in lines] == [
        (expired, "not_found"),
        (wanted, "would_send"),
        (grouped, "would_send"),
    ]
    assert other not in {line["message_id"] for line in lines}


def test_a_rate_spaces_the_batches(store: InMemoryMessageStore, relay: Relay) -> None:
    """--rate 10 with batches of 5: the second batch waits half a second after the first."""
    for i in range(10):
        _seed(store, timedelta(hours=1, seconds=i), group="g")
    slept: list[float] = []

    reader = InMemoryOutboxReader(store, buckets=4)
    _run(reader, relay, PAST_MIN_AGE, batch_size=5, rate=10, clock=lambda: 100.0, sleep=slept.append)

    assert slept == [pytest.approx(0.5)]


def test_the_command_line_becomes_an_absolute_selection() -> None:
    """Durations and times as an operator types them; a window that cannot be right is a usage error."""
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("0") == timedelta(0)
    assert parse_time("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_time("2026-01-01T00:00:00", NOW).isoformat() == "2026-01-01T00:00:00+00:00"
    selection = selection_of(since="1d", until="2h", min_age="5m", status="FAILED", message_ids=("b", "a"), now=NOW)
    assert selection == Selection(iso(NOW - timedelta(days=1)), iso(NOW - timedelta(hours=2)), "FAILED", ("a", "b"))
    assert selection_of(since=None, until=None, min_age="5m", status="PENDING", now=NOW) == PAST_MIN_AGE
    for wrong, says in (
        ({"status": "SOMETIMES"}, "unknown status 'SOMETIMES'"),
        ({"since": "1h", "until": "2h"}, "--since is after --until"),
        ({"since": "yesterday"}, "not a time: 'yesterday'"),
        ({"min_age": "soon"}, "not a duration: 'soon'"),
    ):
        arguments: dict[str, Any] = {"since": None, "until": None, "min_age": "5m", "status": "PENDING"} | wrong
        with pytest.raises(ReplayUsageError, match=says):
            selection_of(**arguments, now=NOW)
    with pytest.raises(ValueError, match="unknown status"):
        Selection.window(status="SOMETIMES")
