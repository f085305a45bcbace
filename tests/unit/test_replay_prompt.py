"""``outbox replay --status ANY`` asks first; a no is a choice, not an error."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest

from outbox.cli import main

WHERE = ["--table-name", "outbox", "--queue-url", "https://sqs.eu-west-1.amazonaws.com/1/q"]


class _Terminal(io.StringIO):
    """A stdin that says it is a terminal, holding what the user types."""

    def isatty(self) -> bool:
        return True


class _Reached(Exception):
    """Replay went on to make its first AWS client."""


def _first_client(_region: str | None = None) -> Any:
    raise _Reached


@pytest.fixture(autouse=True)
def _no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Any AWS client the command makes stops it; no checkpoint of another test is in the way."""
    monkeypatch.setattr("outbox.replay_cli.replay_clients", _first_client)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("answer", ["n\n", "\n", "no\n", "whatever\n"])
def test_answering_no_sends_nothing_and_exits_0(
    answer: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Anything but yes: "nothing sent" on stderr, exit 0, no AWS client made, no error."""
    monkeypatch.setattr(sys, "stdin", _Terminal(answer))

    code = main(["replay", "--status", "ANY", *WHERE])

    out, err = capsys.readouterr()
    assert code == 0
    assert out == ""  # stdout is the report (--json redirected to a file): the question is on stderr
    assert err.startswith("--status ANY sends messages again even if they were delivered. Continue? [y/N] ")
    assert err.endswith("outbox replay: nothing sent\n")
    assert "error" not in err


@pytest.mark.parametrize("answer", ["y\n", "YES\n"])
def test_answering_yes_goes_on(answer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Yes: replay goes on to read the table."""
    monkeypatch.setattr(sys, "stdin", _Terminal(answer))

    with pytest.raises(_Reached):
        main(["replay", "--status", "ANY", *WHERE])


def test_without_a_terminal_to_ask_it_stays_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """No terminal (a script): nobody answered, so --yes is required; one line, exit 2."""
    code = main(["replay", "--status", "ANY", *WHERE])

    assert code == 2
    assert capsys.readouterr().err == (
        "outbox replay: error: --status ANY re-sends delivered messages: confirm, or pass --yes\n"
    )
