"""How many messages per second one deployment carries, and what to set for a rate (docs/capacity.md).

Each stage of the pipeline has a ceiling; a deployment carries the lowest of them:

- accept, per outbox bucket: every message writes its outbox entry under ``OUTBOX#<bucket>`` (in a
  transaction: 2 write units per KB) and puts, then removes, its keys in the pending index under
  the same bucket (1 unit each). One partition key takes at most 1,000 write units a second, on
  the table and on the index alike, so a bucket carries 500 messages of up to 1 KB a second;
- relay: the stream has a shard per table partition, Lambda runs up to
  ``stream_parallelization_factor`` batches of a shard at once (each bucket's still in order), and
  one worker invocation relays ``WORKER_MSG_PER_S`` (bench/capacity.py, 5 ms per AWS request);
  the worker's reserved concurrency caps the batches in flight;
- SQS: a FIFO queue without high throughput takes 300 SendMessageBatch calls a second, so 3,000
  messages; a standard queue has no practical limit;
- consume: one consumer invocation completes ``CONSUMER_MSG_PER_S`` plus your delivery's own time,
  and the mapping runs at most ``consumer_maximum_concurrency`` of them (on FIFO, at most one per
  message group at a time).

The model plans with headroom (``HEADROOM``): a stage is sized to run at most at that share of its
ceiling. The shard count is not in your hands (DynamoDB splits partitions as the table grows); the
model assumes the worst, one shard, unless told otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

PARTITION_WRITE_UNITS = 1_000  # per partition key value a second, on a table and on an index
ENTRY_WRITE_UNITS_PER_KB = 2  # the outbox entry is written in a transaction
INDEX_WRITE_UNITS = 2  # its record's pending-index keys: one write in, one out
FIFO_API_CALLS = 300  # a FIFO queue without high throughput: per second, per API action
SEND_BATCH = 10  # messages per SendMessageBatch
# Planning figures of one invocation on the 5 ms latency model, below every round bench/capacity.py
# measured (it exits 1 if a measurement falls below one): the relay at 100 records a batch with 10
# groups in it (1,375 msg/s without groups), the consumer at 10 copies a batch with a delivery that
# takes no time, the API one request at a time (docs/capacity.md has the measured figures).
WORKER_MSG_PER_S = 500
CONSUMER_MSG_PER_S = 70
API_MSG_PER_S = 120
HEADROOM = 0.5  # plan each stage at half its ceiling: bursts, retries, a hot bucket
# Table write units per message of up to 1 KB: entry 2 and record 2 (the accept's transaction), index
# in 1 and out 1, the flip 1, the consumer's lease 1 and completion 1 (TTL deletes are free).
TABLE_WRITE_UNITS_PER_MESSAGE = 9


@dataclass(frozen=True)
class Deployment:
    """What a deployment is set to: the module's variables (and the CLI's options) the model reads.

    A stage whose setting is None is not assessed (``outbox bootstrap`` knows the buckets and the
    queue, not the Lambda settings). ``stream_shards`` None: estimated from the rate (``shards``).
    """

    buckets: int = 16
    fifo: bool = False
    stream_parallelization_factor: int | None = 1
    worker_concurrency: int | None = 20  # the worker's reserved concurrency (the module's default)
    consumer_concurrency: int | None = 10  # the SQS mapping's maximum concurrency (the module's default)
    stream_shards: int | None = None
    message_kb: float = 1.0  # the outbox entry's size (the envelope)
    delivery_ms: float = 0.0  # your delivery function's own time per message


@dataclass(frozen=True)
class Stage:
    """One stage's ceiling in messages a second, and the setting that raises it."""

    name: str
    msg_per_s: float
    setting: str


@dataclass(frozen=True)
class Assessment:
    """A deployment against a rate: each stage's ceiling, and the stages that cannot carry it with headroom."""

    rate: float
    stages: tuple[Stage, ...]
    short: tuple[Stage, ...] = field(default=())

    @property
    def carries(self) -> bool:
        """Whether every stage carries the rate within its headroom."""
        return not self.short

    def warning(self) -> str:
        """One line naming what to change ('' when the deployment carries the rate)."""
        if self.carries:
            return ""
        parts = "; ".join(
            f"{s.name} carries {s.msg_per_s * HEADROOM:,.0f} msg/s (raise {s.setting})" for s in self.short
        )
        return f"warning: {self.rate:,.0f} messages/s is more than this configuration carries with headroom: {parts}"


def bucket_msg_per_s(message_kb: float = 1.0) -> float:
    """Messages a second one outbox bucket takes before its partition key throttles."""
    units = max(ENTRY_WRITE_UNITS_PER_KB * math.ceil(max(message_kb, 0.001)), INDEX_WRITE_UNITS)
    return PARTITION_WRITE_UNITS / units


def consumer_msg_per_s(delivery_ms: float = 0.0) -> float:
    """Messages a second one consumer invocation completes, with a delivery taking ``delivery_ms``."""
    return 1 / (1 / CONSUMER_MSG_PER_S + delivery_ms / 1000)


def shards(rate: float, message_kb: float = 1.0) -> int:
    """The stream shards a table writing ``rate`` messages a second settles on: one per 1,000 write units.

    Every message costs the table about ``TABLE_WRITE_UNITS_PER_MESSAGE`` (accept, index, flip,
    lease, completion); DynamoDB splits a partition that runs hot, and each partition is a shard.
    A new table may hold every bucket on fewer partitions until it splits: plan with a margin.
    """
    units = rate * TABLE_WRITE_UNITS_PER_MESSAGE * math.ceil(max(message_kb, 0.001))
    return max(1, math.ceil(units / PARTITION_WRITE_UNITS))


def stages(deployment: Deployment, rate: float) -> tuple[Stage, ...]:
    """Each assessable stage's ceiling for ``deployment`` (the shard count estimated at ``rate``)."""
    d = deployment
    found = [Stage("accept", d.buckets * bucket_msg_per_s(d.message_kb), "buckets")]
    if d.stream_parallelization_factor is not None and d.worker_concurrency is not None:
        streams = d.stream_shards or shards(rate, d.message_kb)
        # A bucket's records go one batch at a time (in order), so no more batches run than buckets.
        slots = min(streams * d.stream_parallelization_factor, d.worker_concurrency, d.buckets)
        found.append(
            Stage("relay", slots * WORKER_MSG_PER_S, "stream_parallelization_factor, worker concurrency, buckets")
        )
    if d.consumer_concurrency is not None:
        ceiling = d.consumer_concurrency * consumer_msg_per_s(d.delivery_ms)
        found.append(Stage("consume", ceiling, "consumer_maximum_concurrency and the consumer's concurrency"))
    if d.fifo:
        found.append(Stage("SQS FIFO queue", FIFO_API_CALLS * SEND_BATCH, "throughput: a standard queue, fifo = false"))
    return tuple(found)


def assess(deployment: Deployment, rate: float) -> Assessment:
    """``deployment`` against ``rate`` messages a second."""
    found = stages(deployment, rate)
    return Assessment(rate, found, tuple(s for s in found if s.msg_per_s * HEADROOM < rate))


def recommend(rate: float, *, fifo: bool = False, message_kb: float = 1.0, delivery_ms: float = 0.0) -> Deployment:
    """The smallest settings that carry ``rate`` with headroom (buckets a power of two, at least the default 16)."""
    needed = rate / HEADROOM
    slots = max(1, math.ceil(needed / WORKER_MSG_PER_S))
    by_writes = needed / bucket_msg_per_s(message_kb)
    buckets = max(16, 2 ** math.ceil(math.log2(max(by_writes, slots, 1))))
    streams = shards(rate, message_kb)
    return Deployment(
        buckets=buckets,
        fifo=fifo,
        stream_parallelization_factor=min(10, max(1, math.ceil(slots / streams))),
        worker_concurrency=max(20, slots),
        consumer_concurrency=max(2, math.ceil(needed / consumer_msg_per_s(delivery_ms))),
        message_kb=message_kb,
        delivery_ms=delivery_ms,
    )
