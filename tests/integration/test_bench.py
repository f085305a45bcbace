"""`make bench`'s relay comparisons, small: they run, and their request counts are the floor's (not timed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench import run, sweep
from outbox.local import emulator


@pytest.fixture
def patched_moto() -> Iterator[None]:
    """The bench installs the emulator's proven fixes into moto; put moto back afterwards."""
    yield
    emulator.uninstall_all()


def test_relay_comparison_on_moto_counts_the_floor(patched_moto: None) -> None:
    """Naive pays 2 requests a message; ours 0.1 SQS + 1 flip (plus part-full batches); ceiling only the flip."""
    result = run.relay_benchmark(0, 30, rounds=2)
    naive, ours, ceiling = result["naive"], result["ours"], result["ceiling"]
    assert (naive["requests_per_msg"], naive["sqs_per_msg"], naive["updates_per_msg"]) == (2.0, 1.0, 1.0)
    assert ours["updates_per_msg"] == 1.0
    assert ours["requests_per_msg"] <= 1.2  # 30 messages with sample group keys: batches not all full
    assert (ceiling["requests_per_msg"], ceiling["sqs_per_msg"]) == (1.0, 0.0)
    assert result["flip_wru"] == 1
    for figures in (ours, ceiling):
        assert figures["ratio_min"] <= figures["ratio"] <= figures["ratio_max"]


def test_relay_comparison_on_the_fake_aws_is_at_the_floor() -> None:
    """Full Lambda batches without groups: exactly 0.1 SQS requests and 1 flip per message."""
    result = run.stub_relay_benchmark(0, 200, rounds=2)
    assert result["naive"]["requests_per_msg"] == 2.0
    assert (result["ours"]["sqs_per_msg"], result["ours"]["updates_per_msg"]) == (0.1, 1.0)
    assert result["ours"]["requests_per_msg"] == pytest.approx(1.1)


def test_relay_comparison_on_the_moto_server_has_no_ceiling() -> None:
    """Over HTTP to the emulator's own process the same counts hold; the in-process ceiling is not run there."""
    result = run.relay_benchmark(0, 20, rounds=1, server=True)
    assert result["backend"] == "moto server (own process, HTTP)"
    assert result["naive"]["requests_per_msg"] == 2.0
    assert result["ours"]["updates_per_msg"] == 1.0
    assert "ceiling" not in result


def test_replay_memory_replays_every_seeded_entry_of_each_size() -> None:
    """Both sizes on one table, topped up in between: each replay selects exactly that many entries."""
    rows = run.replay_memory([60, 25])
    assert [(row["entries"], row["scanned"], row["selected"]) for row in rows] == [(25, 25, 25), (60, 60, 60)]
    assert all(0 < row["start_mb"] <= row["peak_mb"] for row in rows)


def test_cost_model_prices_counted_requests_units_and_lambda_time() -> None:
    """Dollars per million: SQS requests, flip write units, one invocation per 100 and 512 MB-seconds."""
    counted = {
        "naive": {"sqs_per_msg": 1.0, "updates_per_msg": 1.0},
        "ours": {"sqs_per_msg": 0.1, "updates_per_msg": 1.0},
        "flip_wru": 1.0,
    }
    timed = {"naive": {"msg_per_s": 100.0}, "ours": {"msg_per_s": 1000.0}}
    rows = {name: figures for name, *figures in run.cost_model(counted, timed)}
    assert rows["naive"] == pytest.approx([0.40, 0.625, 0.002 + 0.01 * 0.5 * 13.3334])
    assert rows["ours"] == pytest.approx([0.04, 0.625, 0.002 + 0.001 * 0.5 * 13.3334])


def test_api_comparison_runs_and_counts_one_request_per_accept(patched_moto: None) -> None:
    """The API benchmark runs both APIs: ours one TransactWriteItems per accept, the seed-style three requests."""
    result = run.api_benchmark(0, 5)
    assert result["ours"]["requests_per_accept"] == 1.0
    assert result["naive"]["requests_per_accept"] == 3.0


def test_a_sweeps_reads_follow_the_backlog_not_the_table() -> None:
    """The sweep benchmark: settled messages cost a sweep nothing; a backlog costs the same at any table size."""
    small, large = (sweep.measure(settled, backlog=10) for settled in (30, 90))
    assert small.backlog_scanned == large.backlog_scanned == small.backlog_relayed == 10
    assert small.backlog_rru == large.backlog_rru > small.empty_rru
    assert small.empty_rru == large.empty_rru == sweep.BUCKETS * 0.5  # one minimal Query per bucket
