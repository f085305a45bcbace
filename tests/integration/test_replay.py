"""``outbox replay`` on moto: selection, dry run, interrupt and resume, bad usage."""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from outbox.adapters.reader import DynamoDBOutboxReader
from outbox.cli import main
from outbox.compose import Clients
from outbox.domain.keys import iso, utc_now
from outbox.domain.message import new_message_id
from outbox.domain.status import Status
from outbox.notifications.notification import parse_notification
from outbox.replay_cli import save_checkpoint
from outbox.service.relay import Relay
from outbox.service.replay import FLIP_FROM, Checkpoint, Replayer, Selection, Target
from tests.integration.conftest import Stack


def _seed(stack: Stack, age: timedelta, *, status: Status = Status.PENDING, group: str | None = None) -> str:
    data = {"channel": "sms", "recipient": "+14155550100", "body": "seeded"}
    notification = parse_notification(data | ({"group_key": group} if group else {}))
    envelope = notification.envelope(message_id=new_message_id(), created_at=iso(utc_now() - age))
    stack.store.accept(envelope, idempotency_key=None)
    if status is Status.QUEUED:
        stack.store.transition(envelope.message_id, Status.QUEUED, by="test")
    if status is Status.FAILED:
        stack.store.transition(envelope.message_id, Status.FAILED, by="test", reason="poison")
    return envelope.message_id


@pytest.fixture
def seeded(stack: Stack) -> dict[str, str]:
    """a/b PENDING 2h old (groups g1/g2), c QUEUED, d FAILED, e PENDING but 1 minute old, f PENDING 3 days old."""
    return {
        "a": _seed(stack, timedelta(hours=2), group="g1"),
        "b": _seed(stack, timedelta(hours=2), group="g2"),
        "c": _seed(stack, timedelta(hours=2), status=Status.QUEUED),
        "d": _seed(stack, timedelta(hours=2), status=Status.FAILED),
        "e": _seed(stack, timedelta(minutes=1)),
        "f": _seed(stack, timedelta(days=3)),
    }


@pytest.fixture(autouse=True)
def cli_on_the_stacks_clients(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command builds its own clients: give it the stack's, so its calls are counted and faults reach it."""
    clients = Clients.given(dynamodb=stack.dynamodb, sqs=stack.sqs)
    monkeypatch.setattr("outbox.replay_cli.replay_clients", lambda _region=None: clients)


def _replay(stack: Stack, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]]]:
    resources = stack.resources
    where = ["--table-name", resources.table_name, "--queue-url", resources.queue_url, "--buckets", "4"]
    code = main(["replay", "--json", *where, *args])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return code, lines


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), {"a", "b", "f"}),
        (("--since", "1d"), {"a", "b"}),
        (("--until", "2d"), {"f"}),
        (("--status", "FAILED"), {"d"}),
        (("--status", "any", "--yes"), {"a", "b", "c", "d", "f"}),
        (("--group-key", "g1"), {"a"}),
        (("--message-id", "B", "--message-id", "C"), {"b"}),
        (("--min-age", "0"), {"a", "b", "e", "f"}),
    ],
)
def test_each_selection_selects_exactly_its_entries(
    stack: Stack,
    seeded: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    expected: set[str],
) -> None:
    """Time window, status, group, ids and minimum age each select exactly what they should (dry run)."""
    names = {v: k for k, v in seeded.items()}
    resolved = [seeded[a.lower()] if a in {"B", "C"} else a for a in args]

    code, lines = _replay(stack, "--dry-run", *resolved, capsys=capsys)

    assert code == 0
    assert {names[line["message_id"]] for line in lines if line.get("action") == "would_send"} == expected
    assert lines[-1]["summary"]["would_send"] == len(expected)


def test_dry_run_sends_nothing_and_writes_nothing(
    stack: Stack, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run only reads: Query and BatchGetItem, no SQS request, no write."""
    before = stack.all_items()
    stack.faults.calls.clear()

    code, _ = _replay(stack, "--dry-run", capsys=capsys)

    assert code == 0
    assert set(stack.faults.calls) <= {"Query", "BatchGetItem", "GetItem"}
    assert stack.all_items() == before
    assert stack.receive_all() == []


def test_replay_sends_and_flips_with_history_by_replay(
    stack: Stack, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Replay re-drives through the relay: same envelope, conditional flip, history line by 'replay'."""
    code, lines = _replay(stack, capsys=capsys)

    assert code == 0
    assert lines[-1]["summary"] | {"scanned": 0} == {
        "scanned": 0,
        "selected": 3,
        "sent": 3,
        "already_done": 0,
        "failed": 0,
        "would_send": 0,
        "not_found": 0,
        "interrupted": False,
        "stopped": False,
    }
    bodies = [json.loads(m["Body"]) for m in stack.receive_all()]
    assert sorted(b["message_id"] for b in bodies) == sorted([seeded["a"], seeded["b"], seeded["f"]])
    record = stack.store.get(seeded["a"])
    assert record.status is Status.QUEUED
    assert record.history[-1].by == "replay"


def test_failed_redrive_moves_failed_to_queued(
    stack: Stack, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """--status FAILED re-drives quarantined messages: FAILED -> QUEUED."""
    code, _ = _replay(stack, "--status", "FAILED", capsys=capsys)

    assert code == 0
    assert stack.store.get(seeded["d"]).status is Status.QUEUED


def test_interrupt_then_resume_sends_nothing_twice(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Interrupted after k messages, a resumed replay sends only the rest: every message exactly once."""
    ids = [_seed(stack, timedelta(hours=1)) for _ in range(7)]
    path = tmp_path / "checkpoint.json"
    selection = Selection.window(min_age=timedelta(minutes=5))
    checkpoint = Checkpoint(selection)
    stop = threading.Event()
    sent: list[str] = []

    def report(line: dict[str, Any]) -> None:
        sent.append(line["message_id"])
        if len(sent) == 3:
            stop.set()  # what Ctrl-C does

    reader = DynamoDBOutboxReader(stack.layout, stack.dynamodb)
    relay = Relay(stack.store, stack.publisher, by="replay", expected=FLIP_FROM["PENDING"])
    summary = Replayer(reader, relay, batch_size=1, report=report, stop=stop).run(
        checkpoint, lambda c: save_checkpoint(c, path)
    )
    relay.close()
    assert summary.interrupted
    assert summary.exit_code() == 130
    save_checkpoint(checkpoint, path)

    code, lines = _replay(stack, "--resume", str(path), capsys=capsys)

    assert code == 0
    resumed = [line["message_id"] for line in lines if line.get("action") == "sent"]
    assert sorted(sent + resumed) == sorted(ids)
    received = [json.loads(m["Body"])["message_id"] for m in stack.receive_all()]
    assert sorted(received) == sorted(ids)
    assert not path.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--status", "SOMETIMES"), "unknown status 'SOMETIMES'"),
        (("--since", "1h", "--until", "2h"), "--since is after --until"),
        (("--ids-file", "/nonexistent/ids.txt"), "cannot read --ids-file /nonexistent/ids.txt"),
        (("--since", "yesterday"), "not a time: 'yesterday'"),
        (("--resume", "/nonexistent/cp.json"), "cannot read checkpoint"),
        (("--status", "ANY"), "confirm, or pass --yes"),
    ],
)
def test_bad_usage_is_one_line_exit_2_and_sends_nothing(
    stack: Stack, seeded: dict[str, str], capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    """Bad arguments give one line on stderr, exit 2, and no SQS request or write."""
    stack.faults.calls.clear()

    code = main(["replay", "--table-name", "outbox", "--queue-url", stack.resources.queue_url, *args])

    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert message in err
    assert not {"SendMessageBatch", "UpdateItem", "TransactWriteItems"} & set(stack.faults.calls)


def test_argparse_errors_are_one_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown flag or a bad number is one line and exit 2, not the whole usage text."""
    with pytest.raises(SystemExit) as caught:
        main(["replay", "--batch-size", "zero"])
    assert caught.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_an_existing_checkpoint_is_never_overwritten(
    stack: Stack, seeded: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new replay refuses to start over an interrupted one's checkpoint (exit 2, nothing sent)."""
    path = tmp_path / "cp.json"
    path.write_text("{}")
    stack.faults.calls.clear()

    code, _ = _replay(stack, "--checkpoint", str(path), capsys=capsys)

    assert code == 2
    assert path.read_text() == "{}"
    assert "SendMessageBatch" not in stack.faults.calls


def test_a_dry_run_lists_what_it_would_send_and_never_writes_a_checkpoint(
    stack: Stack, seeded: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Human output names each message a dry run would send; an error mid-run leaves no checkpoint behind."""
    resources = stack.resources
    path = tmp_path / "cp.json"
    where = ["--table-name", resources.table_name, "--buckets", "4", "--checkpoint", str(path)]
    assert main(["replay", "--dry-run", *where]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sorted(line.removeprefix("would send ") for line in out if line.startswith("would send ")) == sorted(
        [seeded["a"], seeded["b"], seeded["f"]]
    )
    stack.faults.fail("Query", "InternalServerError", status=500, times=-1)
    assert main(["replay", "--dry-run", *where]) == 1
    assert not path.exists()


def test_a_failed_send_request_stops_the_run_and_resume_finishes_it(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQS refusing a whole request stops replay there (as in the worker); --resume sends the rest once."""
    ids = [_seed(stack, timedelta(hours=1)) for _ in range(5)]
    path = tmp_path / "cp.json"
    requests = itertools.count()
    stack.faults.fail("SendMessageBatch", "InternalError", status=500, times=-1, when=lambda _p: next(requests) >= 2)

    code, lines = _replay(stack, "--batch-size", "1", "--checkpoint", str(path), capsys=capsys)

    assert code == 1
    assert lines[-1]["summary"]["stopped"] is True
    assert path.exists()
    assert len(stack.receive_all()) == 2  # two batches went out, then the run stopped
    stack.faults.clear()
    code, _ = _replay(stack, "--resume", str(path), capsys=capsys)
    assert code == 0
    assert all(stack.store.get(m).status is Status.QUEUED for m in ids)


def test_resume_refuses_another_table_queue_or_bucket_count(
    stack: Stack, seeded: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint records where it sends from and to; resuming it elsewhere is one line, exit 2."""
    path = tmp_path / "cp.json"
    selection = Selection.window(min_age=timedelta(minutes=5))
    save_checkpoint(Checkpoint(selection, target=Target("outbox", "https://elsewhere/q", 4)), path)
    stack.faults.calls.clear()
    code = main(["replay", "--table-name", "outbox", "--queue-url", stack.resources.queue_url, "--resume", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "queue 'https://elsewhere/q'" in err
    assert "SendMessageBatch" not in stack.faults.calls


def test_a_group_blocked_by_a_failure_stays_blocked_for_the_run(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Invariant 8: after its first message fails, nothing later of that group is sent, even in later batches."""
    first, *rest = [_seed(stack, timedelta(hours=1, seconds=-i), group="g") for i in range(4)]
    other = _seed(stack, timedelta(hours=1), group="h")
    stack.faults.refuse({first})

    code, lines = _replay(stack, "--batch-size", "1", capsys=capsys)

    assert code == 1
    actions = {line["message_id"]: line["action"] for line in lines if "action" in line}
    assert actions[first] == "failed"
    assert all(actions[m] == "blocked" for m in rest)
    assert actions[other] == "sent"
    assert [json.loads(m["Body"])["message_id"] for m in stack.receive_all()] == [other]


def test_sigterm_writes_the_checkpoint_and_the_summary_as_ctrl_c_does(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGTERM mid-run: the batch in flight finishes, checkpoint and summary are written, exit 130; resume ends it."""
    ids = [_seed(stack, timedelta(hours=1)) for _ in range(4)]
    path = tmp_path / "cp.json"
    received: list[int] = []
    # Before the fix SIGTERM killed the process; here it would only be recorded, and the run would go on.
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: received.append(signum))
    sends = itertools.count()

    def sigterm_during_the_first_send(_params: Any) -> bool:
        if next(sends) == 0:
            os.kill(os.getpid(), signal.SIGTERM)
        return False  # no fault: the send goes through

    try:
        stack.faults.fail("SendMessageBatch", times=-1, when=sigterm_during_the_first_send)
        code, lines = _replay(stack, "--batch-size", "1", "--checkpoint", str(path), capsys=capsys)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert received == []  # the command's own handler took it
    assert code == 130
    assert lines[-1]["summary"]["interrupted"] is True
    assert lines[-1]["summary"]["sent"] == 1
    assert path.exists()
    stack.faults.clear()
    code, lines = _replay(stack, "--resume", str(path), capsys=capsys)
    assert code == 0
    assert lines[-1]["summary"]["sent"] == 4  # each message counted once over both runs
    assert all(stack.store.get(m).status is Status.QUEUED for m in ids)


def test_a_stopped_run_and_its_resume_count_each_message_once(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQS refuses a request mid-page: the resumed run's summary counts every message once, scanned included."""
    for _ in range(5):
        _seed(stack, timedelta(hours=1))
    path = tmp_path / "cp.json"
    requests = itertools.count()
    stack.faults.fail("SendMessageBatch", "InternalError", status=500, times=-1, when=lambda _p: next(requests) == 2)
    code, _ = _replay(stack, "--batch-size", "2", "--checkpoint", str(path), capsys=capsys)
    assert code == 1
    stack.faults.clear()
    code, lines = _replay(stack, "--resume", str(path), capsys=capsys)
    assert code == 0
    summary = lines[-1]["summary"]
    assert (summary["scanned"], summary["selected"], summary["sent"], summary["already_done"]) == (5, 5, 5, 0)


def test_resuming_an_any_replay_needs_no_second_confirmation(
    stack: Stack, seeded: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The printed hint `outbox replay --resume PATH` works as printed, without a terminal, after --status ANY --yes."""
    path = tmp_path / "cp.json"
    selection = Selection.window(min_age=timedelta(minutes=5), status="ANY")
    save_checkpoint(Checkpoint(selection, target=Target("outbox", stack.resources.queue_url, 4)), path)
    code, lines = _replay(stack, "--resume", str(path), capsys=capsys)
    assert code == 0
    assert lines[-1]["summary"]["sent"] == 5


def test_resume_against_another_table_is_refused_before_any_request(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint of table 'outbox' resumed with --table-name orders (which does not exist): the refusal, one line."""
    path = tmp_path / "cp.json"
    selection = Selection.window(min_age=timedelta(minutes=5))
    save_checkpoint(Checkpoint(selection, target=Target("outbox", stack.resources.queue_url, 4)), path)
    stack.faults.calls.clear()
    code = main(["replay", "--table-name", "orders", "--queue-url", stack.resources.queue_url, "--resume", str(path)])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert line == f"outbox replay: error: {path} is a replay of table 'outbox', not 'orders'"
    assert not stack.faults.calls


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "is not JSON (line 1): not a file outbox replay wrote"),
        ('{"version": 1}', "has no 'selection': not a file outbox replay wrote"),
        ("[]", "is malformed (not a version 1 replay checkpoint): not a file outbox replay wrote"),
    ],
)
def test_a_malformed_checkpoint_is_one_line_saying_what_is_wrong(
    stack: Stack, tmp_path: Path, content: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not `KeyError` or `JSONDecodeError`: what is wrong with the file, exit 2."""
    path = tmp_path / "cp.json"
    path.write_text(content)
    code = main(["replay", "--table-name", "outbox", "--queue-url", stack.resources.queue_url, "--resume", str(path)])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert line == f"outbox replay: error: checkpoint {path} {expected}"


def test_a_message_id_naming_nothing_says_so(
    stack: Stack, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """--message-id of no message: a not_found line, a line on stderr, exit 1; the others are sent."""
    unknown = new_message_id()
    where = ["--table-name", "outbox", "--queue-url", stack.resources.queue_url, "--buckets", "4"]
    code = main(["replay", "--json", *where, "--message-id", seeded["a"], "--message-id", unknown])
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert {"message_id": unknown, "action": "not_found"} in lines
    assert lines[-1]["summary"]["sent"] == 1
    assert err.strip() == "outbox replay: 1 of the message ids asked for have no outbox entry"
