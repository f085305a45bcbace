"""The chaos run's human summary: ``duplicates`` explained, and the verdict is the last thing printed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# bench.chaos as ``python -m bench.chaos`` runs it, with the run itself replaced by a made-up tally
# and a thread that, like a consumer of the stopped stack still retrying, fails after the verdict
# (once main() has given it, however long that takes: no clock decides the order).
PROGRAM = textwrap.dedent(
    """
    import sys, threading
    import bench.chaos as chaos

    verdict_given = threading.Event()

    def late_failure():
        verdict_given.wait()
        print("Traceback (most recent call last): EndpointConnectionError", file=sys.stderr, flush=True)
        print('{"event": "sqs_poll_failed", "level": "warning"}', flush=True)

    def run(args):
        threading.Thread(target=late_failure).start()
        return {key: 0 for key in chaos.VIOLATIONS} | {"messages": 3, "duplicates": 1, "faults_by_kind": {}}

    chaos.run = run
    try:
        code = chaos.main(sys.argv[1:])
    finally:
        verdict_given.set()
    raise SystemExit(code)
    """
)
# A bound on the program's run, never a wait of its own: a loaded machine starts Python slowly.
PATIENCE_S = 180.0


def _chaos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROGRAM, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=PATIENCE_S,
        cwd=ROOT,
    )


def test_duplicates_are_explained_as_expected_extra_copies() -> None:
    """The duplicates line says what they are: extra copies, dropped or retried, expected, no violation."""
    done = _chaos()

    line = next(line for line in done.stdout.splitlines() if line.startswith("duplicates"))
    assert "extra copies the consumer dropped" in line
    assert "expected under redelivery" in line
    assert "not a violation" in line


def test_nothing_is_printed_after_ok() -> None:
    """OK is the last line: a thread still winding down prints no error after it, on either stream."""
    done = _chaos()

    assert done.returncode == 0
    assert done.stdout.splitlines()[-1] == "OK"
    assert done.stderr == ""


def test_nothing_is_printed_after_the_json_tally_either() -> None:
    """With --json the tally is the only line."""
    done = _chaos("--json")

    assert done.returncode == 0
    assert len(done.stdout.splitlines()) == 1
    assert done.stderr == ""
