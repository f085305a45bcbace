"""``outbox dev`` tells another terminal how to reach it, stops on SIGTERM, and fails to start in one line."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# What `outbox bootstrap`, `replay` and `sweep` read to reach the stack from another terminal.
EXPORTED = {
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "OUTBOX_TABLE_NAME",
    "OUTBOX_QUEUE_URL",
    "OUTBOX_HASH_KEY",
    "OUTBOX_RANGE_KEY",
}
# How long a step may take before the test gives up: a bound on a condition, never a wait of its own
# (the machine may be slow; a healthy step ends far sooner).
PATIENCE_S = 180.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _group_gone(pgid: int) -> bool:
    """Whether no process is left in the process group (the command and any child it started)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@contextmanager
def _dev(port: int) -> Iterator[subprocess.Popen[str]]:
    """``outbox dev`` in its own process group, stderr piped, logs (stdout) dropped; the group killed at the end."""
    env = os.environ | {"LOG_LEVEL": "WARNING", "OUTBOX_METRICS": "off"}
    process = subprocess.Popen(
        [sys.executable, "-m", "outbox", "dev", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        # A test that failed half-way leaves neither the command nor its emulator running.
        if not _group_gone(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _lines(stream: IO[str]) -> tuple[queue.Queue[str], threading.Thread]:
    """Lines of ``stream`` as they come, read by a thread (so a test can wait with a deadline) that closes it."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        with stream:
            for line in stream:
                lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return lines, reader


def _exports(lines: queue.Queue[str], timeout_s: float) -> dict[str, str]:
    """The ``export NAME=value`` lines, once every EXPORTED name has come."""
    deadline = time.monotonic() + timeout_s
    exports: dict[str, str] = {}
    while not EXPORTED.issubset(exports):
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").strip().partition("=")
            exports[name] = value
    return exports


def test_dev_on_a_port_in_use_says_so_in_one_line_and_leaves_nothing_running() -> None:
    """Port taken: one stderr line naming the port and what to do, exit 1, no traceback, no process left."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with _dev(port) as process:
            _, err = process.communicate(timeout=PATIENCE_S)

    assert process.returncode == 1
    assert err.count("\n") == 1
    assert f"port {port} is already in use" in err
    assert "--port" in err
    assert _group_gone(process.pid)


def test_dev_prints_the_environment_another_terminal_needs_and_stops_on_sigterm(tmp_path: Path) -> None:
    """The pasted exports alone reach the stack; SIGTERM stops it, exit 0, port free, no process left."""
    port = _free_port()
    with _dev(port) as process:
        assert process.stderr is not None
        lines, reader = _lines(process.stderr)
        exports = _exports(lines, timeout_s=PATIENCE_S)
        # Another terminal: no AWS_* variable of its own, an empty home, then the pasted lines.
        other = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"HOME": str(tmp_path)}
        for command in (["bootstrap"], ["replay", "--dry-run"], ["sweep"]):
            done = subprocess.run(
                [sys.executable, "-m", "outbox", *command],
                capture_output=True,
                text=True,
                check=False,
                timeout=PATIENCE_S,
                env=other | exports,
                cwd=tmp_path,
            )
            assert (command, done.returncode, done.stderr) == (command, 0, "")
        process.send_signal(signal.SIGTERM)
        # How soon it stops is the stack's shared stop deadline (tests/unit/test_local_stack_stop.py), not a clock here.
        code = process.wait(timeout=PATIENCE_S)
        reader.join(timeout=PATIENCE_S)
        assert _group_gone(process.pid)  # the emulator's process went with it

    assert code == 0
    rest = "".join(lines.get() for _ in range(lines.qsize()))
    assert "Traceback" not in rest
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))
