"""Two local stacks in one process: each builds its own functions on its own emulator, and nothing crosses."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from typing import Any

import pytest

from outbox.local.demo import scan
from outbox.local.stack import LocalStack, StackConfig

pytestmark = pytest.mark.e2e

SMS = {"channel": "sms", "recipient": "+14155550100", "body": "hello"}
# How long a step may take before the test gives up: a bound on a condition, never a wait of its own.
PATIENCE_S = 180.0


def _request(url: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json"} if data else {}
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=PATIENCE_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _completed(stack: LocalStack, message_id: str, timeout_s: float = PATIENCE_S) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _, view = _request(f"{stack.api_url}/messages/{message_id}")
        if view.get("status") == "COMPLETED":
            return view
        time.sleep(0.2)
    raise AssertionError(f"{message_id} still {view.get('status')} after {timeout_s}s")


def _aws_and_outbox(environ: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in environ.items() if name.startswith(("AWS_", "OUTBOX_"))}


@pytest.fixture
def environment() -> dict[str, str]:
    """The process's AWS and OUTBOX settings before any stack started."""
    return _aws_and_outbox(os.environ)


@pytest.fixture
def stacks(environment: dict[str, str]) -> Iterator[tuple[LocalStack, LocalStack]]:
    """Two stacks on free ports, with their own tables and queues, started side by side."""
    configs = [
        StackConfig(api_port=0, table_name=name, queue_name=f"{name}-messages", consumers=2, sweep_interval_s=600)
        for name in ("orders-outbox", "billing-outbox")
    ]
    with ExitStack() as running:
        yield (running.enter_context(LocalStack(configs[0])), running.enter_context(LocalStack(configs[1])))


def test_two_stacks_deliver_their_own_messages_without_crossing(
    stacks: tuple[LocalStack, LocalStack], environment: dict[str, str]
) -> None:
    """Each stack accepts, relays and completes its own message; neither sees the other's; no environment is written."""
    ids = []
    for stack in stacks:
        status, body = _request(f"{stack.api_url}/messages", SMS | {"body": stack.config.table_name})
        assert status == 202
        ids.append(body["message_id"])

    for stack, message_id in zip(stacks, ids, strict=True):
        view = _completed(stack, message_id)
        assert [h["status"] for h in view["history"]][-1] == "COMPLETED"
    for stack, other in zip(stacks, reversed(ids), strict=True):
        assert _request(f"{stack.api_url}/messages/{other}")[0] == 404
    for stack, message_id in zip(stacks, ids, strict=True):
        table = stack.require_resources().table_name
        assert [item["message_id"]["S"] for item in scan(table, "MSG#", client=stack.clients.dynamodb)] == [message_id]
        assert stack.functions.settings.table_name == stack.config.table_name
        assert stack.functions.consumer.stats["completed"] == 1
    assert stacks[0].emulator.endpoint_url != stacks[1].emulator.endpoint_url
    assert _aws_and_outbox(os.environ) == environment
    assert not {"AWS_ENDPOINT_URL", "OUTBOX_TABLE_NAME", "OUTBOX_QUEUE_URL"} & set(os.environ)
