"""Replay memory: peak RSS of a dry-run replay over N outbox entries, in its own process, on the moto server.

One table for every size, in ascending order, topped up to the next size before each replay; the
replay itself is ``bench.replay_memory``, a child process that reports its own memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bench._backend import NOTE, endpoint
from outbox.adapters.aws import dynamodb_client
from outbox.adapters.models import table_definition
from outbox.adapters.store import DynamoDBMessageStore
from outbox.domain.keys import iso, utc_now
from outbox.domain.layout import TableLayout
from outbox.domain.message import new_message_id
from outbox.local import emulator

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import WriteRequestOutputTypeDef, WriteRequestTypeDef

# moto's Query deep-copies the rest of a partition for every page, so a 100k-entry table spread
# over 16 buckets takes longer per page than the client's 5 s timeout; 64 buckets keep pages fast.
BUCKETS = 64
TABLE = "outbox-replay"
# What a replay reads of a record (its key, then message_id and status): seeding 100k records is fast.
RECORD_ATTRIBUTES = ("message_id", "status")


@dataclass(frozen=True)
class ReplayMemory:
    """One replay's memory, and what it read."""

    entries: int
    start_mb: float  # RSS once the child has started, before the replay
    peak_mb: float
    scanned: int
    selected: int

    @property
    def growth_mb(self) -> float:
        """What the replay added to the child's peak."""
        return self.peak_mb - self.start_mb


def measure(sizes: Iterable[int]) -> list[ReplayMemory]:
    """A dry-run replay over each number of PENDING entries, smallest first."""
    rows = []
    with emulator.EmbeddedEmulator() as server, endpoint(server.endpoint_url):
        # The outbox table without its stream: a replay reads none, and seeding writes 30 % faster.
        definition = table_definition(TableLayout(TABLE, buckets=BUCKETS))
        del definition["StreamSpecification"]
        dynamodb_client().create_table(**definition)
        seeded = 0
        for n in sorted(sizes):
            _bulk_seed(range(seeded, n))
            seeded = n
            out = subprocess.run(  # noqa: S603 - our own script
                [sys.executable, "-m", "bench.replay_memory", TABLE, str(BUCKETS)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            row = ReplayMemory(entries=n, **json.loads(out))
            if row.selected != n:
                raise RuntimeError(f"the replay selected {row.selected} of {n} seeded entries")
            rows.append(row)
    return rows


def _bulk_seed(positions: range) -> None:
    """A PENDING record and its outbox entry per position, created an hour ago, as the store prepares them.

    25 items to a BatchWriteItem, written by four threads while the next are built (the emulator
    stores while the client builds); records keep only their key and what a replay reads of them.
    """
    client = dynamodb_client()
    store = DynamoDBMessageStore(TableLayout(TABLE, buckets=BUCKETS), client)
    attributes = (store.layout.hash_key, store.layout.range_key, *RECORD_ATTRIBUTES)
    created = utc_now() - timedelta(hours=1)
    pending: list[dict[str, Any]] = []
    pool = ThreadPoolExecutor(max_workers=4)
    inflight: deque[Future[None]] = deque()

    def write(items: list[dict[str, Any]]) -> None:
        request: Mapping[str, Sequence[WriteRequestTypeDef | WriteRequestOutputTypeDef]] = {
            TABLE: [{"PutRequest": {"Item": item}} for item in items]
        }
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

    def flush(keep: int) -> None:
        inflight.extend(pool.submit(write, pending[i : i + 25]) for i in range(0, len(pending), 25))
        pending.clear()
        while len(inflight) > keep:
            inflight.popleft().result()

    for i in positions:
        envelope = NOTE.envelope(message_id=new_message_id(), created_at=iso(created + timedelta(microseconds=i)))
        record, entry = (
            put["Put"]["Item"] for put in store.prepare(envelope, idempotency_key=None, by="bench").transact_items
        )
        pending += [{name: record[name] for name in attributes}, entry]
        if len(pending) >= 500:
            flush(keep=40)
    flush(keep=0)
    pool.shutdown()
