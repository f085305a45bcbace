"""``outbox`` with no command prints its usage and the commands, not argparse's one-line complaint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import outbox
from outbox.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_no_command_prints_the_usage_and_commands_on_stderr_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """``outbox`` alone is a usage error: the full help on stderr, nothing on stdout, exit 2."""
    assert main([]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("usage: outbox")
    for command in ("bootstrap", "dev", "demo", "replay"):
        assert command in err
    assert "required" not in err


def test_no_command_from_the_shell_too() -> None:
    """Run as a program (arguments from sys.argv), the same usage and exit 2."""
    result = subprocess.run(
        [sys.executable, "-m", "outbox.cli"], capture_output=True, text=True, check=False, timeout=60, cwd=ROOT
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("usage: outbox")


def test_python_dash_m_outbox_runs_the_command() -> None:
    """``python -m outbox`` is the ``outbox`` command (and no import cycle stands in its way)."""
    done = subprocess.run([sys.executable, "-m", "outbox", "--version"], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, f"outbox {outbox.__version__}")
