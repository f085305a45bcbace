"""``outbox replay`` on a terminal shows progress (rich's bar, or a plain count without it), untorn by log lines."""

from __future__ import annotations

import importlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import outbox
from outbox.adapters.aws import sqs_client
from outbox.cli import main
from outbox.compose import Clients
from outbox.faults import FaultInjector
from tests.integration.conftest import Stack

BODY = '{"channel": "sms", "recipient": "+14155550100", "body": "hello"}'


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, so replay shows its progress."""

    def isatty(self) -> bool:
        return True


def _without_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import rich`` fail as it does where the cli extra is not installed; replay_cli imports anew."""
    for name in [m for m in sys.modules if m == "rich" or m.startswith("rich.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.delitem(sys.modules, "outbox.replay_cli", raising=False)
    monkeypatch.delattr(outbox, "replay_cli", raising=False)  # the import anew sets it: put the old one back after


def _three_messages_on_a_terminal(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, *, rich_installed: bool
) -> tuple[_Terminal, list[str]]:
    """Three accepted messages, stderr a terminal (rich hidden if asked); returns it and replay's target options."""
    for _ in range(3):
        assert stack.post(BODY)["statusCode"] == 202
    if not rich_installed:
        _without_rich(monkeypatch)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    resources = stack.resources
    return terminal, ["--table-name", resources.table_name, "--queue-url", resources.queue_url, "--buckets", "4"]


@pytest.mark.parametrize("rich_installed", [True, False], ids=["rich", "no-rich"])
def test_replay_on_a_terminal_works_with_or_without_rich(
    stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rich_installed: bool,
) -> None:
    """Without rich the replay still sends everything; its progress is one stderr line, erased at the end."""
    terminal, where = _three_messages_on_a_terminal(stack, monkeypatch, rich_installed=rich_installed)

    code = main(["replay", *where, "--min-age", "0", "--checkpoint", str(tmp_path / "cp.json")])

    assert code == 0
    assert "sent 3" in capsys.readouterr().out
    assert len(stack.receive_all()) == 3
    if not rich_installed:
        shown = terminal.getvalue()
        assert "replay 3/3" in shown
        assert shown.endswith(" " * len("replay 3/3") + "\r")  # erased, as rich's transient bar is
        assert "rich" not in sys.modules or sys.modules["rich"] is None


def _refusing_sqs() -> Any:
    """An SQS client that refuses every entry: the relay logs a ``send_refused`` warning per message."""
    client = sqs_client()
    FaultInjector(client).refuse()
    return client


@pytest.mark.parametrize("rich_installed", [True, False], ids=["rich", "no-rich"])
def test_on_a_terminal_log_lines_never_tear_the_progress_bar(
    stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rich_installed: bool,
) -> None:
    """At the default level the bar shows and no log line does, on either stream; stdout is the summary alone."""
    terminal, where = _three_messages_on_a_terminal(stack, monkeypatch, rich_installed=rich_installed)
    # The module main() imports (anew without rich), not the package attribute a dotted path would find.
    clients = Clients.given(dynamodb=stack.dynamodb, sqs=_refusing_sqs())
    monkeypatch.setattr(importlib.import_module("outbox.replay_cli"), "replay_clients", lambda _r=None: clients)

    code = main(["replay", *where, "--min-age", "0", "--checkpoint", str(tmp_path / "cp.json")])

    out = capsys.readouterr().out
    assert code == 1  # the three refused messages failed
    assert out.splitlines() == ["scanned 3, selected 3, sent 0, already done 0, failed 3"]
    assert "send_refused" not in terminal.getvalue()
    assert "replay" in terminal.getvalue()  # the bar, drawn on the terminal (stderr)


def test_verbose_shows_the_log_lines_instead_of_the_progress_bar(
    stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--verbose: whole JSON log lines on stderr and no bar between them; stdout is still the summary alone."""
    for _ in range(3):
        assert stack.post(BODY)["statusCode"] == 202
    _without_rich(monkeypatch)
    # The module main() imports (anew without rich), not the package attribute a dotted path would find.
    clients = Clients.given(dynamodb=stack.dynamodb, sqs=_refusing_sqs())
    monkeypatch.setattr(importlib.import_module("outbox.replay_cli"), "replay_clients", lambda _r=None: clients)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    where = ["--table-name", stack.resources.table_name, "--queue-url", stack.resources.queue_url, "--buckets", "4"]

    code = main(["replay", *where, "--min-age", "0", "--checkpoint", str(tmp_path / "cp.json"), "--verbose"])

    out = capsys.readouterr().out
    lines = terminal.getvalue().splitlines()
    assert code == 1
    assert out.splitlines() == ["scanned 3, selected 3, sent 0, already done 0, failed 3"]
    assert "\r" not in terminal.getvalue()  # no bar rewriting its line
    events = [json.loads(line)["event"] for line in lines if line.startswith("{")]
    assert events.count("send_refused") == 3
