"""The Lambda handlers' import path pulls in nothing of the CLI (rich) or the local emulator (moto, waitress)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HANDLER_MODULES = ("outbox.api", "worker.handler", "worker.consumer")
NOT_IN_LAMBDA = ("rich", "moto", "waitress", "flask", "werkzeug")

# The names of the loaded modules that belong to NOT_IN_LAMBDA.
_LOADED = f"sorted(m for m, v in sys.modules.items() if v is not None and m.split('.')[0] in {NOT_IN_LAMBDA!r})"


def _run(script: str) -> list[list[str]]:
    """Run ``script`` in a fresh interpreter (as Lambda starts one); each line it prints, parsed as JSON."""
    env = os.environ | {"PYTHONPATH": str(ROOT), "OUTBOX_TABLE_NAME": "outbox", "OUTBOX_METRICS": "off"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60, cwd=ROOT, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("module", HANDLER_MODULES)
def test_a_handler_module_loads_none_of_them(module: str) -> None:
    """Imported alone, a handler module adds none of them to ``sys.modules``.

    structlog imports rich for its console renderer when rich happens to be installed (this
    environment has it; Lambda's does not), so what structlog loads by itself is the baseline, and
    that baseline may hold rich but nothing of the emulator.
    """
    script = (
        "import importlib, json, sys\n"
        "import structlog\n"
        f"print(json.dumps({_LOADED}))\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps({_LOADED}))\n"
    )
    baseline, loaded = _run(script)
    assert {name.split(".")[0] for name in baseline} <= {"rich"}
    assert sorted(set(loaded) - set(baseline)) == []


def test_the_handlers_import_where_none_of_them_is_installed() -> None:
    """With all of them unimportable, as in the Lambda zip, every handler module imports and has its handler."""
    script = (
        "import importlib, json, sys\n"
        f"sys.modules.update(dict.fromkeys({NOT_IN_LAMBDA!r}))  # None: import fails as if not installed\n"
        f"handlers = [importlib.import_module(m).handler for m in {HANDLER_MODULES!r}]\n"
        "assert all(map(callable, handlers))\n"
        f"print(json.dumps({_LOADED}))\n"
    )
    assert _run(script) == [[]]
