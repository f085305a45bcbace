"""Accept latency: our API (one TransactWriteItems) against a seed-style API (PutItem, SendMessage, UpdateItem)."""

from __future__ import annotations

import json
import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench._backend import NOTE, backend
from bench.naive import NaiveApi
from outbox.domain.keys import iso, utc_now
from outbox.domain.message import new_message_id
from outbox.faults import FaultInjector
from outbox.notifications.api import MessagesApi
from outbox.service.accept import Acceptor


@dataclass(frozen=True)
class AcceptFigures:
    """One API's accept latency and the AWS requests of one accept."""

    p50_ms: float
    p99_ms: float
    requests_per_accept: float


@dataclass(frozen=True)
class AcceptComparison:
    """Ours and the seed-style API, ``messages`` accepts each, on one backend."""

    backend: str
    messages: int
    ours: AcceptFigures
    naive: AcceptFigures


def measure(latency_ms: float, n: int) -> AcceptComparison:
    """``n`` accepts through each API, ours first, on moto in process with ``latency_ms`` per request."""
    with backend(latency_ms) as b:
        api = MessagesApi(Acceptor(b.store, id_secret=secrets.token_urlsafe(32)))
        naive = NaiveApi(b.store, b.sqs, b.resources.queue_url)
        body = json.dumps({"channel": "sms", "recipient": "+14155550100", "body": "benchmark"})
        event = {
            "rawPath": "/messages",
            "headers": {"content-type": "application/json"},
            "body": body,
            "requestContext": {"http": {"method": "POST", "path": "/messages"}, "requestId": "r"},
        }
        ours = _accepts(b.counter, lambda: api.handle(event), n)
        theirs = _accepts(
            b.counter, lambda: naive.accept(NOTE.envelope(message_id=new_message_id(), created_at=iso(utc_now()))), n
        )
        return AcceptComparison(b.name, n, ours=ours, naive=theirs)


def _accepts(counter: FaultInjector, accept: Callable[[], object], n: int) -> AcceptFigures:
    counter.calls.clear()
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        accept()
        latencies.append((time.perf_counter() - started) * 1000)
    return AcceptFigures(
        p50_ms=statistics.median(latencies),
        p99_ms=sorted(latencies)[int(len(latencies) * 0.99) - 1],
        requests_per_accept=sum(counter.calls.values()) / n,
    )
