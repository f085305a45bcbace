"""The Lambda handlers' import path pulls in nothing of the CLI (rich) or the local emulator (moto, waitress)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HANDLER_MODULES = ("worker.api", "worker.handler", "worker.consumer", "worker.sweeper", "worker.dead_letter")
NOT_IN_LAMBDA = ("rich", "moto", "waitress", "flask", "werkzeug")

# The names of the loaded modules that belong to NOT_IN_LAMBDA.
_LOADED = f"sorted(m for m, v in sys.modules.items() if v is not None and m.split('.')[0] in {NOT_IN_LAMBDA!r})"


def _run(script: str, environment: dict[str, str] | None = None) -> list[Any]:
    """Run ``script`` in a fresh interpreter (as Lambda starts one); each line it prints, parsed as JSON."""
    env = os.environ | {"PYTHONPATH": str(ROOT), "OUTBOX_TABLE_NAME": "outbox", "OUTBOX_METRICS": "off"}
    env |= environment or {}
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


# A first invocation of each handler that needs no AWS call, and what it answers.
FIRST_CALLS = {
    "worker.api": ({"rawPath": "/messages/x", "requestContext": {"http": {"method": "GET"}}}, 404),
    "worker.handler": ({"Records": []}, {"batchItemFailures": []}),
    "worker.consumer": ({"Records": []}, {"batchItemFailures": []}),
    "worker.dead_letter": ({"Records": []}, {"batchItemFailures": []}),
}  # not the sweeper: every run of it reads the table
# What the first client or model made loads: most of a cold start.
CLIENT_MODULES = ("pynamodb", "boto3", "botocore.session", "botocore.client", "botocore.config")


@pytest.mark.parametrize("module", FIRST_CALLS)
def test_a_first_invocation_without_an_aws_call_makes_no_client(module: str) -> None:
    """Import and a first invocation that needs no AWS call load neither PynamoDB nor botocore's client modules."""
    event, expected = FIRST_CALLS[module]
    script = (
        "import importlib, json, sys\n"
        f"loaded = lambda: sorted(n for n in sys.modules if n.startswith({CLIENT_MODULES!r}))\n"
        f"module = importlib.import_module({module!r})\n"
        "after_import = loaded()\n"
        f"result = module.handler({event!r}, None)\n"
        "answer = result.get('statusCode', result)\n"
        "print(json.dumps([after_import, answer, loaded()]))\n"  # the last line: the handler logs before it
    )
    environment = {
        "AWS_REGION": "eu-west-1",
        "OUTBOX_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/q.fifo",
        "OUTBOX_ID_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:outbox-id-secret-AbCdEf",
    }
    after_import, answer, after_call = _run(script, environment)[-1]
    assert answer == expected
    assert after_import == []
    assert after_call == []
