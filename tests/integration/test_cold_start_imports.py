"""A deployed function's cold start imports neither structlog nor asyncio (its import is a tenth of a cold start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Each handler module and a first invocation of it that needs no AWS call (the sweeper's every run reads the table).
FIRST_CALLS = {
    "worker.api": {"rawPath": "/messages/x", "requestContext": {"http": {"method": "GET"}}},
    "worker.handler": {"Records": []},
    "worker.consumer": {"Records": []},
    "worker.dead_letter": {"Records": []},
    "worker.sweeper": None,
}


@pytest.mark.parametrize("module", FIRST_CALLS)
def test_a_deployed_function_writes_its_lines_without_structlog(module: str) -> None:
    """Import, first invocation and a line logged: JSON on stdout, and neither structlog nor asyncio loaded."""
    event = FIRST_CALLS[module]
    script = (
        "import importlib, json, sys\n"
        f"handler = importlib.import_module({module!r}).handler\n"
        f"if {event!r} is not None: handler({event!r}, None)\n"
        "from outbox.logs import configure_logging, get_logger\n"
        "configure_logging()\n"  # the sweeper's is made by its first run; the others made theirs already
        "get_logger('outbox.test').info('written', recipient='ada@example.com')\n"
        "print(json.dumps(sorted(m for m in ('structlog', 'asyncio') if m in sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OUTBOX_TABLE_NAME": "outbox", "OUTBOX_QUEUE_URL": "q"}
    env |= {"OUTBOX_METRICS": "off", "OUTBOX_ID_SECRET": "cold-start-imports-secret-0123456789"}
    result = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, check=False, timeout=60, cwd=ROOT, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    *lines, loaded = result.stdout.splitlines()
    assert json.loads(loaded) == []
    written = json.loads(lines[-1])
    assert (written["event"], written["level"], written["recipient"]) == ("written", "info", "[redacted]")
