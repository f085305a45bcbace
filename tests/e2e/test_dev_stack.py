"""End to end: ``outbox dev`` in its own process, driven over HTTP like a user with curl would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

SMS = {"channel": "sms", "recipient": "+14155550100", "body": "hello"}
# How long a step may take before the test gives up: a bound on a condition, never a wait of its own
# (a loaded machine is slow; a healthy step ends far sooner).
PATIENCE_S = 180.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(url: str, *, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=PATIENCE_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _post(base: str, body: Any, key: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": "application/json"} | ({"idempotency-key": key} if key else {})
    return _request(f"{base}/messages", body=body, headers=headers)


def _wait_completed(base: str, message_id: str, timeout_s: float = PATIENCE_S) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _, view = _request(f"{base}/messages/{message_id}")
        if view.get("status") in {"COMPLETED", "FAILED"}:
            return view
        time.sleep(0.2)
    raise AssertionError(f"{message_id} still {view.get('status')} after {timeout_s}s")


# ``outbox dev`` as a shell without job control starts ``outbox dev &``: with SIGINT ignored, which
# exec keeps. Ctrl-C must stop it all the same.
AS_A_BACKGROUND_JOB = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])"
)


@pytest.fixture(scope="module")
def dev() -> Iterator[str]:
    """``outbox dev`` on a free port, started as a background job; stopped with SIGINT at the end, killed if need be."""
    port = _free_port()
    env = {**os.environ, "LOG_LEVEL": "WARNING", "OUTBOX_METRICS": "off"}
    env.pop("AWS_ENDPOINT_URL", None)
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", AS_A_BACKGROUND_JOB, sys.executable, "-m", "outbox.cli", "dev", "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: the emulator it starts goes with it
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + PATIENCE_S
            while True:
                try:
                    _request(f"{base}/messages/00000000-0000-4000-8000-000000000000")
                    break
                except OSError:
                    assert process.poll() is None, "outbox dev exited early"
                    assert time.monotonic() < deadline, f"outbox dev not serving within {PATIENCE_S:.0f} s"
                    time.sleep(0.2)  # the poll interval
            yield base
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=PATIENCE_S) == 0
        finally:
            # A start or a test that failed leaves neither outbox dev nor its emulator running.
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        output.seek(0)
        assert "Traceback" not in output.read()


def test_message_reaches_completed_with_full_history_over_http(dev: str) -> None:
    """Invariant 4 (forward only): a message posted over HTTP ends COMPLETED through every status in order."""
    status, body = _post(dev, SMS)

    assert status == 202
    view = _wait_completed(dev, body["message_id"])
    history = [(h["status"], h["by"]) for h in view["history"]]
    # The consumer may hold its copy before the worker's flip lands (a copy in hand proves the send).
    assert history in (
        [("PENDING", "api"), ("QUEUED", "worker"), ("PROCESSING", "consumer"), ("COMPLETED", "consumer")],
        [("PENDING", "api"), ("PROCESSING", "consumer"), ("COMPLETED", "consumer")],
    )


def test_bad_requests_are_problem_json_over_http(dev: str) -> None:
    """Invariant 8 (clear errors): over real HTTP a bad request is a 4xx problem with its code."""
    status, problem = _post(dev, {"channel": "sms", "recipient": "nope", "body": "x"})
    assert (status, problem["code"]) == (400, "VALIDATION_ERROR")
    status, problem = _request(f"{dev}/elsewhere")
    assert (status, problem["code"]) == (404, "NOT_FOUND")


def test_concurrent_load_loses_no_accepted_message(dev: str) -> None:
    """Invariant 2 (nothing lost): 60 concurrent POSTs (10 repeating a key) all end COMPLETED, once each."""
    unique = [(SMS | {"body": f"load {i}"}, f"load-key-{i}" if i < 10 else None) for i in range(50)]

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda r: _post(dev, r[0], r[1]), unique + unique[:10]))

    assert all(status in {200, 202} for status, _ in results)
    accepted = {body["message_id"] for status, body in results if status == 202}
    assert len(accepted) == 50
    assert {body["message_id"] for _, body in results} == accepted
    views = [_wait_completed(dev, message_id) for message_id in accepted]
    assert all(v["status"] == "COMPLETED" for v in views)
    assert all([h["status"] for h in v["history"]].count("QUEUED") <= 1 for v in views)
