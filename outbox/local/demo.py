"""``outbox demo``: N messages over HTTP through the whole local pipeline, then the invariants checked.

It sends valid messages (some with a repeated Idempotency-Key), a share of invalid requests,
waits until every accepted message is COMPLETED, prints a summary and exits non-zero if any
invariant of docs/design.md was violated (lost, stuck, duplicated record, backward transition,
changed payload, rejected request that wrote).
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from outbox.domain.keys import OUTBOX_PREFIX, RECORD_PREFIX
from outbox.domain.status import Status, is_allowed
from outbox.local.stack import LocalStack, StackConfig
from outbox.notifications.notification import parse_notification
from outbox.service.consume import Consumer

RECIPIENTS = {
    "email": "someone@example.com",
    "sms": "+14155550100",
    "push": "device-token-0123456789abcdef",
    "webhook": "https://hooks.example.com/outbox",
}


@dataclass(frozen=True)
class Request:
    """One HTTP request of the demo and what it is meant to show."""

    kind: str  # "new", "replay" or "invalid"
    body: bytes
    headers: dict[str, str]
    payload: dict[str, Any] | None = None


@dataclass
class Tally:
    """What the requests did, filled in from many threads."""

    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # message_id -> payload sent
    replays: int = 0
    replay_mismatches: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def sample_payload(i: int, *, groups: int = 7) -> dict[str, Any]:
    """The i-th of a varied set of valid messages: every channel, every 5th in one of ``groups`` groups."""
    channels = list(RECIPIENTS)
    channel = channels[i % len(channels)]
    payload: dict[str, Any] = {"channel": channel, "recipient": RECIPIENTS[channel], "body": f"message {i}"}
    if channel == "email":
        payload["subject"] = f"Message {i}"
    if i % 5 == 0:
        payload["group_key"] = f"customer-{i % groups}"
    return payload


def build_requests(n: int, run_id: str) -> tuple[list[Request], list[Request]]:
    """N new messages (every 10th with an Idempotency-Key) plus about N/20 invalid ones; then the replays."""
    first: list[Request] = []
    replays: list[Request] = []
    for i in range(n):
        payload = sample_payload(i)
        headers = {"content-type": "application/json"}
        if i % 10 == 0:
            headers["idempotency-key"] = f"demo-{run_id}-{i}"
        request = Request("new", json.dumps(payload).encode(), headers, payload)
        first.append(request)
        if i % 10 == 0:
            replays.append(Request("replay", request.body, headers, payload))
    invalid = [
        Request(
            "invalid", b'{"channel": "sms", "recipient": "12345", "body": "x"}', {"content-type": "application/json"}
        ),
        Request(
            "invalid",
            b'{"channel": "sms", "recipient": "+14155550100", "body": "x", "colour": "red"}',
            {"content-type": "application/json"},
        ),
        Request("invalid", b"channel=sms", {"content-type": "application/x-www-form-urlencoded"}),
        Request("invalid", b'{"channel": "sms"' + b" " * 70_000 + b"}", {"content-type": "application/json"}),
        Request("invalid", b"{not json", {"content-type": "application/json"}),
    ]
    for i in range(max(1, n // 20)):
        first.insert((i * 21) % (len(first) + 1), invalid[i % len(invalid)])
    return first, replays


class Client:
    """One keep-alive HTTP connection per thread."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._local = threading.local()

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """POST /messages; returns the status and the decoded JSON body."""
        for attempt in range(2):
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = self._local.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                connection.request("POST", "/messages", body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                return response.status, json.loads(data) if data else {}
            except (http.client.HTTPException, OSError):
                connection.close()
                self._local.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close this thread's connection; a later post opens a new one."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def send(client: Client, request: Request, tally: Tally) -> None:
    """Send one request and record what came back."""
    status, body = client.post(request.body, request.headers)
    with tally.lock:
        if request.kind == "invalid" and 400 <= status < 500:
            tally.rejected[str(body.get("code"))] += 1
        elif request.kind == "new" and status == 202:
            tally.accepted[str(body["message_id"])] = request.payload or {}
        elif request.kind == "replay" and status == 200:
            tally.replays += 1
            if body.get("message_id") not in tally.accepted:
                tally.replay_mismatches += 1
        else:
            tally.unexpected[f"{request.kind}:{status}:{body.get('code')}"] += 1


def scan(table_name: str, prefix: str, *, client: Any, status_only: bool = False) -> Iterator[dict[str, Any]]:
    """Every item whose pk starts with ``prefix``, page by page, read with ``client`` (a DynamoDB client)."""
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "FilterExpression": "begins_with(pk, :p)",
        "ExpressionAttributeValues": {":p": {"S": prefix}},
        "ConsistentRead": True,
    }
    if status_only:
        kwargs["ProjectionExpression"] = "#s"
        kwargs["ExpressionAttributeNames"] = {"#s": "status"}
    while True:
        page = client.scan(**kwargs)
        yield from page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _ms_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def check_invariants(table_name: str, tally: Tally, client: Any) -> tuple[dict[str, Any], list[str]]:
    """Read the whole table back with ``client`` and check the invariants of docs/design.md: figures, violations."""
    records = {item["message_id"]["S"]: item for item in scan(table_name, RECORD_PREFIX, client=client)}
    entries = Counter(item["message_id"]["S"] for item in scan(table_name, OUTBOX_PREFIX, client=client))
    violations: list[str] = []
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    for message_id, sent in tally.accepted.items():
        record = records.get(message_id)
        if record is None:
            violations.append(f"lost: {message_id} was accepted but has no record")
            continue
        if entries[message_id] != 1:
            violations.append(f"atomic accept: {message_id} has {entries[message_id]} outbox entries")
        status = record["status"]["S"]
        statuses[status] += 1
        if status != Status.COMPLETED:
            violations.append(f"stuck: {message_id} is {status}")
        history = [(h["M"]["status"]["S"], h["M"]["at"]["S"]) for h in record["history"]["L"]]
        if history[0][0] != Status.PENDING:
            violations.append(f"forward only: {message_id} did not start PENDING")
        for (before, _), (after, _) in itertools.pairwise(history):
            if not is_allowed(Status(before), Status(after)):
                violations.append(f"forward only: {message_id} moved {before} -> {after}")
        queued = next((at for s, at in history if s == Status.QUEUED), None)
        if queued is not None:
            latencies.append(_ms_between(history[0][1], queued))
        if record["payload"]["S"] != parse_notification(sent).canonical_json():
            violations.append(f"metadata preserved: {message_id} payload changed")
    extra = set(records) - set(tally.accepted)
    if extra:
        violations.append(f"atomic accept: {len(extra)} records that no accepted request created")
    figures = {
        "records": len(records),
        "statuses": statuses,
        "latency_ms": {q: _percentile(latencies, q) for q in (50, 95, 99)},
    }
    return figures, violations


def wait_until_done(consumer: Consumer, expected: int, timeout_s: float, progress: Progress, task: Any) -> int:
    """Wait until the consumer has finished every accepted message (its own count, no table scans)."""
    deadline = time.monotonic() + timeout_s
    finished = 0
    while time.monotonic() < deadline:
        stats = consumer.stats
        finished = stats["completed"] + stats["failed"]
        progress.update(task, completed=finished)
        if finished >= expected:
            break
        time.sleep(0.2)
    return finished


def run_demo(n: int, *, concurrency: int = 16, timeout_s: float = 120.0, fifo: bool = False) -> int:
    """Start the stack, run the demo, print the summary; 0 when every invariant held."""
    console = Console()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("OUTBOX_METRICS", "off")
    started = time.monotonic()
    with LocalStack(StackConfig(api_port=0, fifo=fifo)) as stack:
        table = stack.require_resources().table_name
        first, replays = build_requests(n, run_id=str(int(time.time())))
        tally = Tally()
        client = Client(stack.api_url)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            sending = progress.add_task("sending  ", total=len(first) + len(replays))
            completing = progress.add_task("completed", total=n)
            send_started = time.monotonic()
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                for batch in (first, replays):
                    for _ in pool.map(lambda r: send(client, r, tally), batch):
                        progress.advance(sending)
            send_s = time.monotonic() - send_started
            progress.update(completing, total=len(tally.accepted))
            wait_until_done(stack.functions.consumer, len(tally.accepted), timeout_s, progress, completing)
        total_s = time.monotonic() - started
        figures, violations = check_invariants(table, tally, stack.clients.dynamodb)
        received = sum(r.stats["received"] for r in stack.consumer_runners)
        dropped = stack.functions.consumer.stats["duplicates"]
    violations += [f"unexpected response {k} x{v}" for k, v in tally.unexpected.items()]
    if tally.replay_mismatches:
        violations.append(f"idempotency: {tally.replay_mismatches} replays returned another message_id")
    _print_summary(console, n, tally, figures, received, dropped, send_s, total_s, violations)
    return 1 if violations else 0


def _print_summary(  # noqa: PLR0917 - one call site, every figure named
    console: Console,
    n: int,
    tally: Tally,
    figures: dict[str, Any],
    received: int,
    dropped: int,
    send_s: float,
    total_s: float,
    violations: list[str],
) -> None:
    table = Table(title=f"outbox demo: {n} messages", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    accepted = len(tally.accepted)
    table.add_row("accepted (202)", str(accepted))
    for code, count in sorted(tally.rejected.items()):
        table.add_row(f"rejected {code}", str(count))
    table.add_row("idempotent replays (200)", str(tally.replays))
    statuses: Counter[str] = figures["statuses"]
    table.add_row("records QUEUED or later", str(accepted - statuses[Status.PENDING]))
    table.add_row("records COMPLETED", str(statuses[Status.COMPLETED]))
    table.add_row("SQS messages received", str(received))
    table.add_row("duplicates the consumer dropped", str(dropped))
    latency = figures["latency_ms"]
    table.add_row("accept→QUEUED p50 / p95 / p99", f"{latency[50]:.0f} / {latency[95]:.0f} / {latency[99]:.0f} ms")
    table.add_row("accept throughput", f"{accepted / send_s:.0f} msg/s" if send_s else "-")
    table.add_row("end-to-end throughput", f"{accepted / total_s:.0f} msg/s ({total_s:.1f} s wall)")
    table.add_row("invariant violations", str(len(violations)))
    console.print(table)
    for violation in violations[:20]:
        console.print(f"[red]violation[/red] {violation}")
