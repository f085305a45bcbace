"""End to end: accept→QUEUED on the local stack at a steady rate, the stream runner polling 4 times a second."""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass
from datetime import datetime

from outbox.adapters.store import DynamoDBMessageStore
from outbox.compose import table_layout
from outbox.domain.status import Status
from outbox.local.demo import Client, sample_payload
from outbox.local.stack import LocalStack, StackConfig


@dataclass(frozen=True)
class EndToEnd:
    """How long accepted messages took to be QUEUED (from their records' history)."""

    messages: int
    rate: float  # messages a second
    queued: int  # of ``messages``, QUEUED 3 s after the last was accepted
    p50_ms: float
    p99_ms: float


def measure(n: int, rate: float) -> EndToEnd:
    """POST ``n`` messages at ``rate`` a second, wait 3 s, read each record's PENDING and QUEUED times."""
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ["OUTBOX_METRICS"] = "off"
    with LocalStack(StackConfig(api_port=0, poll_interval_s=0.25)) as stack:
        client = Client(stack.api_url)
        ids = []
        started = time.perf_counter()
        for i in range(n):
            _, body = client.post(json.dumps(sample_payload(i)).encode(), {"content-type": "application/json"})
            ids.append(str(body["message_id"]))
            time.sleep(max(0.0, started + (i + 1) / rate - time.perf_counter()))
        client.close()
        time.sleep(3.0)
        store = DynamoDBMessageStore(table_layout(stack.functions.settings), stack.clients.dynamodb)
        latencies = []
        for message_id in ids:
            history = {line.status: line.at for line in store.get(message_id).history}
            if Status.QUEUED in history:
                latencies.append(_ms(history[Status.PENDING], history[Status.QUEUED]))
    latencies.sort()
    return EndToEnd(
        messages=n,
        rate=rate,
        queued=len(latencies),
        p50_ms=statistics.median(latencies),
        p99_ms=latencies[int(len(latencies) * 0.99) - 1],
    )


def _ms(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000
