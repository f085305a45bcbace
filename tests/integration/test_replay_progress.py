"""``outbox replay`` on a terminal shows progress: rich's bar with the cli extra, a plain count without it."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from outbox.cli import main
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


@pytest.mark.parametrize("rich_installed", [True, False], ids=["rich", "no-rich"])
def test_replay_on_a_terminal_works_with_or_without_rich(
    stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rich_installed: bool,
) -> None:
    """Without rich the replay still sends everything; its progress is one stderr line, erased at the end."""
    for _ in range(3):
        assert stack.post(BODY)["statusCode"] == 202
    if not rich_installed:
        _without_rich(monkeypatch)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    where = ["--table-name", stack.resources.table_name, "--queue-url", stack.resources.queue_url, "--buckets", "4"]

    code = main(["replay", *where, "--min-age", "0", "--checkpoint", str(tmp_path / "cp.json")])

    assert code == 0
    assert "sent 3" in capsys.readouterr().out
    assert len(stack.receive_all()) == 3
    if not rich_installed:
        shown = terminal.getvalue()
        assert "replay 3/3" in shown
        assert shown.endswith(" " * len("replay 3/3") + "\r")  # erased, as rich's transient bar is
        assert "rich" not in sys.modules or sys.modules["rich"] is None
