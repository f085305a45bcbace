"""`make bench`, small: each benchmark module runs, counts the requests it should, reports every figure (untimed)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bench import accept, cost, end_to_end, overhead, relay, replay, report, run, sweep, sweep_backlog
from bench.relay import Contender, RelayComparison, RelayFigures
from outbox.local import emulator
from tests.conftest import FAKE_CREDENTIALS
from worker import api, consumer, handler, sweeper


@contextmanager
def _environment_restored() -> Iterator[None]:
    """Whatever the benchmarks set in the environment (the local stack sets a dozen names) is undone after."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def isolated() -> Iterator[None]:
    """The module's benchmarks run before each test's own isolation: the same fake AWS environment for them.

    Afterwards the environment, moto (the bench installs the emulator's fixes into it) and the
    handlers' clients (the local stack builds them) are put back.
    """
    with _environment_restored():
        os.environ.update(FAKE_CREDENTIALS)
        os.environ.update({"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"})
        os.environ["OUTBOX_METRICS"] = "off"  # as `python -m bench.run` runs them
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "OUTBOX_TABLE_NAME", "OUTBOX_QUEUE_URL"):
            os.environ.pop(name, None)
        try:
            yield
        finally:
            emulator.uninstall_all()
            for built_once in (api.default_api, handler.default_worker, consumer.default_consumer):
                built_once.cache_clear()
            sweeper.default_sweeper.cache_clear()


@pytest.fixture(scope="module")
def relay_on_moto(isolated: None) -> RelayComparison:
    """Two rounds of 30 messages per contender on moto in process."""
    return relay.on_moto(0, 30, rounds=2)


@pytest.fixture(scope="module")
def relay_on_fake_aws(isolated: None) -> RelayComparison:
    """Two rounds of 200 messages (two full Lambda batches) on the fake AWS."""
    return relay.on_fake_aws(0, 200, rounds=2)


@pytest.fixture(scope="module")
def backlog(isolated: None) -> sweep_backlog.BacklogComparison:
    """The issue's case: 600 messages of 60 KB, a deadline too short to read them all before the first send."""
    return sweep_backlog.measure([600], deadline_s=2.5)


@pytest.fixture(scope="module")
def results(
    relay_on_moto: RelayComparison, relay_on_fake_aws: RelayComparison, backlog: sweep_backlog.BacklogComparison
) -> report.Results:
    """Every benchmark once, at smoke sizes, as one run's results."""
    return report.Results(
        date="2026-01-01",
        wall_s=1.0,
        calibration_s=0.5,
        relay_moto=relay_on_moto,
        relay_server=relay.on_moto(0, 20, rounds=1, server=True),
        relay_fake_aws=relay_on_fake_aws,
        overhead=overhead.measure(100, rounds=2),
        accept_moto=accept.measure(0, 5),
        accept_latency=accept.measure(1, 3),
        end_to_end=end_to_end.measure(20, rate=20),
        replay_memory=tuple(replay.measure([60, 25])),
        sweeps=(sweep.measure(30, backlog=10), sweep.measure(90, backlog=10)),
        sweep_backlog=backlog,
        costs=tuple(cost.relay_cost(relay_on_moto, relay_on_fake_aws)),
    )


def _numbers(figures: Any, prefix: str = "") -> dict[str, float]:
    """Every number of a benchmark's dataclass and of the dataclasses in it, by dotted name."""
    found: dict[str, float] = {}
    for name, value in (dataclasses.asdict(figures) if dataclasses.is_dataclass(figures) else figures).items():
        if isinstance(value, dict):
            found |= _numbers(value, f"{prefix}{name}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found[f"{prefix}{name}"] = value
    return found


def test_relay_comparison_on_moto_counts_the_floor(relay_on_moto: RelayComparison) -> None:
    """Naive pays 2 requests a message; ours 0.1 SQS + 1 flip (plus part-full batches); ceiling only the flip."""
    naive, ours, ceiling = relay_on_moto.naive, relay_on_moto.ours, relay_on_moto.ceiling
    assert ceiling is not None
    assert (naive.requests_per_msg, naive.sqs_per_msg, naive.updates_per_msg) == (2.0, 1.0, 1.0)
    assert ours.updates_per_msg == 1.0
    assert ours.requests_per_msg <= 1.2  # 30 messages with sample group keys: batches not all full
    assert (ceiling.requests_per_msg, ceiling.sqs_per_msg) == (1.0, 0.0)
    assert relay_on_moto.flip_wru == 1
    assert naive.vs_naive is None
    for figures in (ours, ceiling):
        assert figures.vs_naive is not None
        assert figures.vs_naive.low <= figures.vs_naive.median <= figures.vs_naive.high
    assert [name for name, _ in relay_on_moto.contenders()] == [Contender.NAIVE, Contender.OURS, Contender.CEILING]


def test_relay_comparison_on_the_fake_aws_is_at_the_floor(relay_on_fake_aws: RelayComparison) -> None:
    """Full Lambda batches without groups: exactly 0.1 SQS requests and 1 flip per message."""
    assert relay_on_fake_aws.naive.requests_per_msg == 2.0
    assert (relay_on_fake_aws.ours.sqs_per_msg, relay_on_fake_aws.ours.updates_per_msg) == (0.1, 1.0)
    assert relay_on_fake_aws.ours.requests_per_msg == pytest.approx(1.1)
    assert (relay_on_fake_aws.ceiling, relay_on_fake_aws.flip_wru) == (None, None)


def test_relay_comparison_on_the_moto_server_has_no_ceiling(results: report.Results) -> None:
    """Over HTTP to the emulator's own process the same counts hold; the in-process ceiling is not run there."""
    server = results.relay_server
    assert server.backend == "moto server (own process, HTTP)"
    assert server.naive.requests_per_msg == 2.0
    assert server.ours.updates_per_msg == 1.0
    assert server.ceiling is None


def test_own_overhead_relays_every_message_of_every_round(results: report.Results) -> None:
    """Own CPU: every round relays all its messages (the null clients count them); the median within the range."""
    own = results.overhead
    assert (own.messages, own.rounds) == (100, 2)
    assert 0 < own.low <= own.cpu_us_per_msg <= own.high


def test_api_comparison_counts_one_request_per_accept_for_ours_and_three_for_naive(results: report.Results) -> None:
    """The API benchmark runs both APIs: ours one TransactWriteItems per accept, the seed-style three requests."""
    for comparison, backend in ((results.accept_moto, "moto in process"), (results.accept_latency, "moto + 1 ms")):
        assert comparison.backend.startswith(backend)
        assert comparison.ours.requests_per_accept == 1.0
        assert comparison.naive.requests_per_accept == 3.0
        for figures in (comparison.ours, comparison.naive):
            assert 0 < figures.p50_ms <= figures.p99_ms


def test_end_to_end_reads_the_queued_time_of_messages_through_the_local_stack(results: report.Results) -> None:
    """Messages posted to the local stack's API reach QUEUED; the latencies come from their records' history."""
    e2e = results.end_to_end
    assert (e2e.messages, e2e.rate) == (20, 20)
    assert 0 < e2e.queued <= e2e.messages  # a consumer may take a message from PENDING before the worker's flip
    assert 0 < e2e.p50_ms <= e2e.p99_ms


def test_replay_memory_replays_every_seeded_entry_of_each_size(results: report.Results) -> None:
    """Both sizes on one table, topped up in between: each replay selects exactly that many entries."""
    rows = results.replay_memory
    assert [(row.entries, row.scanned, row.selected) for row in rows] == [(25, 25, 25), (60, 60, 60)]
    assert all(0 < row.start_mb <= row.peak_mb for row in rows)


def test_a_sweeps_reads_follow_the_backlog_not_the_table(results: report.Results) -> None:
    """The sweep benchmark: settled messages cost a sweep nothing; a backlog costs the same at any table size."""
    small, large = results.sweeps
    assert small.backlog_scanned == large.backlog_scanned == small.backlog_relayed == 10
    assert small.backlog_rru == large.backlog_rru > small.empty_rru
    assert small.empty_rru == large.empty_rru == sweep.BUCKETS * 0.5  # one minimal Query per bucket


def test_under_a_short_deadline_only_the_paged_sweeper_drains_a_backlog(
    backlog: sweep_backlog.BacklogComparison,
) -> None:
    """All at once relays nothing three sweeps in a row; ours relays in every sweep and drains, holding less."""
    baseline, ours = backlog.drains
    assert (baseline.approach, baseline.relayed_per_sweep, baseline.drained) == ("all at once", (0, 0, 0), False)
    assert (ours.approach, ours.drained, sum(ours.relayed_per_sweep)) == ("ours", True, 600)
    assert ours.sweeps > 1
    assert all(relayed > 0 for relayed in ours.relayed_per_sweep)
    assert 0 < ours.peak_mib < baseline.peak_mib
    assert (ours.out_of_memory, baseline.out_of_memory) == (False, False)
    assert backlog.calibration_s > 0


def test_cost_model_prices_counted_requests_units_and_lambda_time() -> None:
    """Dollars per million: SQS requests, flip write units, one invocation per 100 and 512 MB-seconds."""
    counted = RelayComparison(
        "moto",
        1,
        1,
        naive=RelayFigures(1.0, 2.0, sqs_per_msg=1.0, updates_per_msg=1.0),
        ours=RelayFigures(1.0, 1.1, sqs_per_msg=0.1, updates_per_msg=1.0),
        flip_wru=1.0,
    )
    timed = RelayComparison(
        "fake", 1, 1, naive=RelayFigures(100.0, 2.0, 1.0, 1.0), ours=RelayFigures(1000.0, 1.1, 0.1, 1.0)
    )
    rows = {row.relay: (row.sqs, row.flips, row.function, row.total) for row in cost.relay_cost(counted, timed)}
    naive_lambda, ours_lambda = 0.002 + 0.01 * 0.5 * 13.3334, 0.002 + 0.001 * 0.5 * 13.3334
    assert rows[Contender.NAIVE] == pytest.approx((0.40, 0.625, naive_lambda, 1.025 + naive_lambda))
    assert rows[Contender.OURS] == pytest.approx((0.04, 0.625, ours_lambda, 0.665 + ours_lambda))


def test_the_cost_model_needs_counted_write_units(relay_on_fake_aws: RelayComparison) -> None:
    """The fake AWS keeps no items, so it has no write units to price."""
    with pytest.raises(ValueError, match="no write units"):
        cost.relay_cost(relay_on_fake_aws, relay_on_fake_aws)


def test_every_figure_of_a_run_is_present_and_positive(results: report.Results) -> None:
    """Each benchmark's dataclass has every figure, each above zero but the ceiling's SQS requests (it sends none)."""
    numbers = _numbers(results)
    assert {name for name, value in numbers.items() if value <= 0} == {"relay_moto.ceiling.sqs_per_msg"}
    for name in ("naive", "ours", "ceiling"):
        assert {"msg_per_s", "requests_per_msg", "sqs_per_msg", "updates_per_msg"} <= {
            key.removeprefix(f"relay_moto.{name}.") for key in numbers
        }
    assert {"relay_moto.ours.vs_naive.median", "relay_moto.ceiling.vs_naive.median", "relay_moto.flip_wru"} <= set(
        numbers
    )
    assert {"overhead.cpu_us_per_msg", "end_to_end.p50_ms", "end_to_end.p99_ms", "accept_latency.naive.p99_ms"} <= set(
        numbers
    )
    assert all(row.peak_mb > 0 for row in results.replay_memory)
    assert all(row.backlog_rru > 0 and row.empty_rru > 0 for row in results.sweeps)
    assert all(row.sqs > 0 and row.flips > 0 and row.function > 0 for row in results.costs)


def test_the_report_has_every_section_and_a_row_per_figure(results: report.Results) -> None:
    """The Markdown section: the calibration line, one row per contender and ratio, each benchmark's table."""
    text = "\n".join(report.markdown(results))
    assert "a 20M-step Python loop took 0.50 s" in text
    assert "2 rounds of 30 messages per relay" in text
    relay_table = text.split("### API")[0]
    for backend in ("moto in process", "moto server (own process, HTTP)", "fake AWS, 0 ms per request"):
        assert relay_table.count(f"| {backend} | naive |") == 1
        assert relay_table.count(f"| {backend} | **ours / naive** |") == 1
    assert relay_table.count("**ceiling / naive**") == 1
    assert "Own CPU per relayed message" in text
    assert "(median of 2 rounds" in text
    assert text.count("| moto + 1 ms per request | ") == 2
    assert f"of {results.end_to_end.messages} QUEUED" in text
    assert "| 25 |" in text
    assert "| 60 |" in text
    assert "| 30 | " in text
    assert "| 90 | 8.0 | " in text  # the same read units at any table size
    assert "| naive | $" in text
    assert "| ours | $" in text
    assert "| 600 × 60 KB | all at once | 0 of 600 relayed in 3 sweeps: never drains | 0, 0, 0 |" in text
    assert "| 600 × 60 KB | **ours / all at once** | sweeps to drain " in text


def test_the_json_report_holds_the_same_figures(results: report.Results) -> None:
    """--json: every dataclass by its field names, contenders by name."""
    figures = json.loads(report.as_json(results))
    assert figures["relay_moto"]["ours"]["updates_per_msg"] == results.relay_moto.ours.updates_per_msg
    ratio = results.relay_moto.ours.vs_naive
    assert ratio is not None
    assert figures["relay_moto"]["ours"]["vs_naive"] == {"median": ratio.median, "low": ratio.low, "high": ratio.high}
    assert figures["relay_fake_aws"]["ceiling"] is None
    assert [row["relay"] for row in figures["costs"]] == ["naive", "ours"]
    assert figures["calibration_s"] == 0.5


def test_the_entry_point_prints_and_writes_the_section(
    results: report.Results, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m bench.run`: --quick runs a fifth of the sizes; the section replaces the one between the markers."""
    scales: list[int] = []

    def collect(*, scale: int = 1) -> report.Results:
        scales.append(scale)
        return results

    monkeypatch.setattr(run, "collect", collect)
    monkeypatch.setattr(run, "configure_logging", lambda **_: None)
    results_md = tmp_path / "RESULTS.md"
    results_md.write_text(f"# Benchmark results\n\nbefore\n{report.START}\nthe previous run\n{report.END}\nafter\n")
    monkeypatch.setattr(report, "RESULTS", results_md)

    with _environment_restored():
        assert run.main(["--quick", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["date"] == "2026-01-01"
    written = results_md.read_text()
    assert written.startswith("# Benchmark results\n\nbefore\n")
    assert written.endswith(f"{report.END}\nafter\n")
    assert "the previous run" not in written
    assert "\n".join(report.markdown(results)) in written

    results_md.write_text("untouched")
    with _environment_restored():
        assert run.main(["--no-write"]) == 0
    assert capsys.readouterr().out.startswith("Command: `make bench`")
    assert results_md.read_text() == "untouched"
    assert scales == [5, 1]
