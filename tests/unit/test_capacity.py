"""The capacity model (docs/capacity.md): each stage's ceiling, and what to set for a rate (no AWS)."""

from __future__ import annotations

import pytest

from outbox import capacity
from outbox.capacity import Deployment, assess, bucket_msg_per_s, recommend, shards

RATES = (100, 1_000, 10_000)  # the rates docs/capacity.md answers


def test_a_bucket_carries_half_a_partitions_write_units_in_messages_of_up_to_1_kb() -> None:
    """An entry is written in a transaction (2 units per KB): 500 messages a second per bucket, fewer when larger."""
    assert bucket_msg_per_s(1.0) == 500
    assert bucket_msg_per_s(0.2) == 500
    assert bucket_msg_per_s(3.5) == 125


def test_the_defaults_carry_100_messages_a_second_and_name_what_stops_1000() -> None:
    """The module's defaults: 100 msg/s fits; 1,000 is short of consumers, and the warning says which setting."""
    assert assess(Deployment(), 100).carries
    short = assess(Deployment(), 1_000)
    assert [stage.name for stage in short.short] == ["consume"]
    assert short.warning().startswith("warning: 1,000 messages/s is more than this configuration carries")
    assert "consumer_maximum_concurrency" in short.warning()
    assert "\n" not in short.warning()


def test_relay_concurrency_is_bounded_by_shards_factor_worker_concurrency_and_buckets() -> None:
    """No more batches run than shards × parallelization factor, the worker's concurrency, or buckets."""
    one_shard = Deployment(stream_shards=1, stream_parallelization_factor=4, worker_concurrency=20, buckets=16)
    relay = {stage.name: stage.msg_per_s for stage in capacity.stages(one_shard, 100)}["relay"]
    assert relay == 4 * capacity.WORKER_MSG_PER_S
    few_buckets = Deployment(stream_shards=50, stream_parallelization_factor=10, worker_concurrency=100, buckets=8)
    relay = {stage.name: stage.msg_per_s for stage in capacity.stages(few_buckets, 100)}["relay"]
    assert relay == 8 * capacity.WORKER_MSG_PER_S


def test_a_fifo_queue_without_high_throughput_stops_at_3000() -> None:
    """300 SendMessageBatch calls a second of 10: a FIFO deployment never carries 10,000."""
    assert not assess(recommend(10_000, fifo=True), 10_000).carries
    assert assess(recommend(10_000, fifo=False), 10_000).carries


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("delivery_ms", [0.0, 20.0])
def test_what_the_model_recommends_carries_the_rate(rate: int, delivery_ms: float) -> None:
    """For each documented rate, the recommended settings carry it with headroom (a standard queue)."""
    settings = recommend(rate, delivery_ms=delivery_ms)
    assert assess(settings, rate).carries
    assert settings.buckets >= 16
    assert settings.buckets & (settings.buckets - 1) == 0
    assert 1 <= (settings.stream_parallelization_factor or 0) <= 10


def test_shards_follow_the_tables_write_units() -> None:
    """One shard per 1,000 write units the table takes: about 9 per message of up to 1 KB."""
    assert shards(100) == 1
    assert shards(1_000) == 9
    assert shards(10_000) == 90


def test_unknown_settings_are_not_assessed() -> None:
    """What bootstrap knows (buckets, queue) is assessed; the Lambda settings, left None, are not."""
    known = Deployment(stream_parallelization_factor=None, worker_concurrency=None, consumer_concurrency=None)
    assert [stage.name for stage in capacity.stages(known, 1_000)] == ["accept"]
    assert assess(known, 1_000).carries
