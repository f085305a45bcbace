"""A deployed function's cold start imports neither structlog nor asyncio, nor what only other functions use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import aws_stub, coldstart

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
        f"sys.path.insert(0, {str(ROOT)!r})\n"  # -I leaves out PYTHONPATH and the working directory
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


# What only the other functions use: the ports' records (the API's adapters take none), the SQS
# publisher, and the sweep source (read by the API's first accept, never by a read).
NOT_THE_APIS = ("outbox.ports", "outbox.adapters.publisher", "outbox.adapters.sweep")


def test_the_apis_cold_start_loads_no_module_only_other_functions_use() -> None:
    """The API built, a first GET answered (404, no AWS call): the ports, publisher and sweep source stay unloaded."""
    script = (
        "import json, sys\n"
        "import worker.api\n"
        "worker.api.default_api()\n"
        "answer = worker.api.handler(" + repr(FIRST_CALLS["worker.api"]) + ", None)['statusCode']\n"
        f"print(json.dumps([answer, sorted(m for m in {NOT_THE_APIS!r} if m in sys.modules)]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OUTBOX_TABLE_NAME": "outbox", "OUTBOX_METRICS": "off"}
    env |= {"AWS_REGION": "eu-west-1", "OUTBOX_ID_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:s"}
    result = subprocess.run(  # not -I: the repository's worker/ is on PYTHONPATH
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60, cwd=ROOT, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == [404, []]


@pytest.mark.parametrize(
    ("in_lambda", "expected"), [(True, [False, 404, True, True]), (False, [True, 404, True, False])]
)
def test_in_lambda_the_collector_waits_for_the_first_answer(in_lambda: bool, expected: list[object]) -> None:
    """In a Lambda function's process the collector is off until the first answer, then on, the cold start frozen.

    Elsewhere (a test, the local stack: processes the handlers share) importing a handler leaves it alone.
    """
    script = (
        "import gc, json\n"
        "import worker.api\n"
        "paused = gc.isenabled()\n"
        "answer = worker.api.handler(" + repr(FIRST_CALLS["worker.api"]) + ", None)['statusCode']\n"
        "print(json.dumps([paused, answer, gc.isenabled(), gc.get_freeze_count() > 0]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OUTBOX_TABLE_NAME": "outbox", "OUTBOX_METRICS": "off"}
    env |= {"AWS_REGION": "eu-west-1", "OUTBOX_ID_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:s"}
    env.pop("AWS_LAMBDA_FUNCTION_NAME", None)
    if in_lambda:
        env["AWS_LAMBDA_FUNCTION_NAME"] = "outbox-api"
    result = subprocess.run(  # not -I: the repository's worker/ is on PYTHONPATH
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60, cwd=ROOT, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == expected


# Each function's first request served (bench/coldstart.py's cases, through its loopback AWS stub),
# and what of the outbox it must leave unmade: modules, or classes of a module it loads, that only
# another function or another request uses. Each class a module makes costs a cold start time (a
# dataclass about half a millisecond on Python 3.11: bench/RESULTS.md, "Cold start").
NOT_MADE_BY_A_FIRST_REQUEST: dict[str, tuple[str, ...]] = {
    # The worker: no read of a caller's message, no accept (nor its id secret), no cancelled transaction.
    "worker: first batch (1 INSERT)": (
        "outbox.domain.record",
        "outbox.domain.id_secret",
        "outbox.domain.cancellation",
        "outbox.domain.errors:CancellationReason",
        "outbox.service.accept",
        "outbox.notifications",
    ),
    # The consumer: no port's record (its store and visibility are duck-typed), no send, no write clock.
    "consumer: first copy delivered": (
        "outbox.ports",
        "outbox.domain.id_secret",
        "outbox.domain.cancellation",
        "outbox.domain.errors:CancellationReason",
        "outbox.domain.clock",
        "outbox.service.relay",
        "outbox.adapters.publisher",
        "outbox.adapters.sweep",
        "outbox.service.accept",
    ),
    # The API's read: no write, so no notification to check and no cancellation.
    "api: first GET /messages/{id}": (
        "outbox.ports",
        "outbox.notifications.notification",
        "outbox.notifications.accept",
        "outbox.domain.cancellation",
        "outbox.domain.errors:CancellationReason",
        "outbox.adapters.publisher",
        "outbox.adapters.sweep",
    ),
    # The API's first write: a new message, so no record read either.
    "api: first POST /messages": (
        "outbox.domain.record",
        "outbox.ports",
        "outbox.domain.cancellation",
        "outbox.domain.errors:CancellationReason",
        "outbox.adapters.publisher",
    ),
}


@pytest.fixture(scope="module")
def first_requests() -> Iterator[tuple[dict[str, coldstart.Case], str]]:
    """bench.coldstart's first requests by name, and the endpoint of its loopback stub holding their message."""
    found = coldstart.scenario()
    first, _ = coldstart.cases(found)
    stub = aws_stub.AwsStub()
    for item in found.items:
        stub.seed(item, found.key_names)
    with aws_stub.serve(stub) as endpoint:
        yield {case.name: case for case in first}, endpoint


@pytest.mark.parametrize("name", NOT_MADE_BY_A_FIRST_REQUEST)
def test_a_first_request_makes_nothing_only_others_use(
    name: str, first_requests: tuple[dict[str, coldstart.Case], str]
) -> None:
    """A function's first request served, as deployed: the outbox modules and classes only others use stay unmade."""
    cases, endpoint = first_requests
    case = cases[name]
    module, function = case.handler.rsplit(".", 1)
    script = (
        "import importlib, json, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"  # -I leaves out PYTHONPATH and the working directory
        f"result = getattr(importlib.import_module({module!r}), {function!r})({case.event!r}, None)\n"
        "made = {name for name in sys.modules if name.startswith(('outbox', 'worker'))}\n"
        "made |= {f'{name}:{attr}' for name in made for attr in vars(sys.modules[name])}\n"
        "result = result.get('statusCode', result)\n"
        "print(json.dumps([result, sorted(made)]))\n"
    )
    env = {**coldstart.ENVIRONMENT, "AWS_ENDPOINT_URL": endpoint, "PATH": os.environ.get("PATH", "")}
    result = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, check=False, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer, made = json.loads(result.stdout.splitlines()[-1])
    assert answer == case.expect
    assert sorted(set(NOT_MADE_BY_A_FIRST_REQUEST[name]) & set(made)) == []
