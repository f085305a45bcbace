"""``outbox`` run as a program, as a user's shell runs it: usage, ``python -m outbox``, settings missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import outbox
from outbox.cli import NO_REGION

ROOT = Path(__file__).resolve().parents[2]
# A bound on each program's run, never a wait of its own: a loaded machine starts Python slowly.
PATIENCE_S = 180.0


def _outbox(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m outbox ARGS`` (subprocess.run kills it if it outlives the bound)."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=PATIENCE_S,
        cwd=ROOT,
        env=env,
    )


def test_no_command_from_the_shell_too() -> None:
    """Run as a program (arguments from sys.argv), the same usage and exit 2."""
    result = _outbox("outbox.cli")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("usage: outbox")


def test_python_dash_m_outbox_runs_the_command() -> None:
    """``python -m outbox`` is the ``outbox`` command (and no import cycle stands in its way)."""
    done = _outbox("outbox", "--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"outbox {outbox.__version__}")


def test_as_a_program_without_aws_settings_there_is_no_traceback(tmp_path: Path) -> None:
    """``python -m outbox bootstrap`` with no AWS_* variable and an empty home: one line on stderr, exit 2."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")} | {"HOME": str(tmp_path)}

    done = _outbox("outbox", "bootstrap", env=env)

    assert done.returncode == 2
    assert done.stderr == f"outbox bootstrap: {NO_REGION}\n"
