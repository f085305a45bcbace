"""The figures of one ``make bench`` run, as the Markdown section of bench/RESULTS.md or as JSON."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from bench import sweep, sweep_backlog
from bench.accept import AcceptComparison
from bench.cost import WORKER_MEMORY_GB, RelayCost
from bench.end_to_end import EndToEnd
from bench.overhead import OwnOverhead
from bench.relay import RelayComparison
from bench.replay import BUCKETS as REPLAY_BUCKETS
from bench.replay import ReplayMemory
from bench.sweep import SweepCost
from bench.sweep_backlog import BacklogComparison

RESULTS = Path(__file__).with_name("RESULTS.md")
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


@dataclass(frozen=True)
class Results:
    """Every figure of one run, with when it ran, how long it took and how fast the machine was."""

    date: str
    wall_s: float
    calibration_s: float  # CPU seconds of bench.calibration's loop at the start of the run
    relay_moto: RelayComparison
    relay_server: RelayComparison
    relay_fake_aws: RelayComparison
    overhead: OwnOverhead
    accept_moto: AcceptComparison
    accept_latency: AcceptComparison
    end_to_end: EndToEnd
    replay_memory: tuple[ReplayMemory, ...]
    sweeps: tuple[SweepCost, ...]
    sweep_backlog: BacklogComparison
    costs: tuple[RelayCost, ...]


def as_json(results: Results) -> str:
    """Every figure, by the names of the benchmarks' dataclasses."""
    return json.dumps(dataclasses.asdict(results))


def markdown(results: Results) -> list[str]:
    """The section of RESULTS.md between the bench markers: text and tables."""
    return [
        *_heading(results),
        *_relay(results),
        *_accept(results.accept_moto, results.accept_latency),
        *_end_to_end(results.end_to_end),
        *_replay_memory(results.replay_memory),
        *_sweeps(results.sweeps),
        *_sweep_backlog(results.sweep_backlog),
        *_cost(results.costs),
    ]


def write(lines: list[str], path: Path | None = None) -> None:
    """Replace the bench section of ``path`` (RESULTS.md) with ``lines``; the rest of the file is kept."""
    path = path or RESULTS
    text = path.read_text() if path.exists() else f"# Benchmark results\n\n{START}\n{END}\n"
    if START not in text:
        text += f"\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + START + "\n" + "\n".join(lines) + "\n" + END + tail)


def _heading(results: Results) -> list[str]:
    return [
        f"Command: `make bench` (`python -m bench.run`), {results.date}, {results.wall_s:.0f} s.",
        "",
        f"Machine speed at the start of the run: a 20M-step Python loop took {results.calibration_s:.2f} s (0.7 to"
        " 3.4 s seen on this shared VM within one session). CPU-bound figures scale with it.",
        "",
    ]


def _relay(results: Results) -> list[str]:
    moto, overhead = results.relay_moto, results.overhead
    lines = [
        "### Relay: the same stream batches through a naive relay and ours",
        "",
        "Naive: per record one SendMessage and one UpdateItem, sequentially. Ours: SendMessageBatch of 10,"
        " then the batch's conditional flips concurrently. Ceiling (moto in process only): the flips alone, no"
        " SQS at all. There every request is CPU of the benchmark's own process under one GIL, so every relay"
        " that flips each message once pays at least that: ceiling / naive bounds ours / naive on that backend."
        " The moto server (the local stack's emulator in its own process) runs the same requests over HTTP,"
        f" where waiting on the backend can overlap. Lambda-sized batches of 100 records; {moto.rounds} rounds of"
        f" {moto.messages} messages per relay, interleaved; the ratio is the median of the rounds' ratios.",
        "",
        "| backend | relay | messages/s | AWS requests / message | SQS requests / message | flips / message |",
        "|---|---|---|---|---|---|",
    ]
    for comparison in (results.relay_moto, results.relay_server, results.relay_fake_aws):
        contenders = comparison.contenders()
        lines += [
            f"| {comparison.backend} | {name} | {f.msg_per_s:.0f} | {f.requests_per_msg:.2f} | {f.sqs_per_msg:.2f}"
            f" | {f.updates_per_msg:.2f} |"
            for name, f in contenders
        ]
        lines += [
            f"| {comparison.backend} | **{name} / naive** | **{ratio.median:.1f}×** (rounds {ratio.low:.1f}–"
            f"{ratio.high:.1f}) | | | |"
            for name, f in contenders
            if (ratio := f.vs_naive) is not None
        ]
    return [
        *lines,
        "",
        f"Write units per flip: {moto.flip_wru:.2f} (records stay under 1 KB).",
        "",
        "Own CPU per relayed message: the worker, the relay, the store's flip and the publisher, on clients that"
        " answer at once without botocore, logging at the deployed level (INFO):"
        f" **{overhead.cpu_us_per_msg:.0f} µs** (median of {overhead.rounds} rounds,"
        f" {overhead.low:.0f}–{overhead.high:.0f} µs; target ≤ 100 µs).",
        "",
    ]


def _accept(*comparisons: AcceptComparison) -> list[str]:
    lines = [
        "### API: accept latency, ours (one TransactWriteItems) against a seed-style API"
        " (PutItem, SendMessage, UpdateItem)",
        "",
        "| backend | API | p50 ms | p99 ms | AWS requests / accept |",
        "|---|---|---|---|---|",
    ]
    for c in comparisons:
        lines += [
            f"| {c.backend} | {name} | {f.p50_ms:.1f} | {f.p99_ms:.1f} | {f.requests_per_accept:.2f} |"
            for name, f in (("ours", c.ours), ("naive", c.naive))
        ]
    return [*lines, ""]


def _end_to_end(e2e: EndToEnd) -> list[str]:
    return [
        f"### End to end: accept→QUEUED on the local stack, {e2e.rate:.0f} messages/s, stream runner polling 4×/s",
        "",
        f"{e2e.queued} of {e2e.messages} QUEUED; p50 **{e2e.p50_ms:.0f} ms**, p99 **{e2e.p99_ms:.0f} ms**"
        " (target p99 ≤ 1 s).",
        "",
    ]


def _replay_memory(rows: tuple[ReplayMemory, ...]) -> list[str]:
    return [
        "### Replay memory: dry-run replay in its own process (entries streamed page by page,"
        f" {REPLAY_BUCKETS} buckets)",
        "",
        "| entries | RSS after start MB | peak RSS MB | growth MB |",
        "|---|---|---|---|",
        *(f"| {m.entries} | {m.start_mb:.1f} | {m.peak_mb:.1f} | {m.growth_mb:.1f} |" for m in rows),
        "",
    ]


def _sweeps(costs: tuple[SweepCost, ...]) -> list[str]:
    return [
        f"### Sweeper: read units per sweep against the settled messages in the table ({sweep.BUCKETS} buckets)",
        "",
        "The pending index holds only PENDING records: a sweep reads the backlog, whatever the table holds."
        " Read units as DynamoDB bills them (keys-only index Query, strongly consistent BatchGetItem of the records).",
        "",
        *sweep.markdown(list(costs)),
        "",
    ]


def _sweep_backlog(comparison: BacklogComparison) -> list[str]:
    (first, *_) = comparison.drains
    return [
        "### Sweeper under a large backlog: sweeps to drain it and peak memory, ours against all at once",
        "",
        "The stream trimmed and the trigger off: the sweeper is the only relay. All at once (the sweeper before"
        " it worked page by page) reads every stuck record whole and rebuilds its message before it sends; ours"
        " merges the buckets' index keys oldest first and reads a page of records (what a re-send needs, no"
        " payload) just before relaying it. Each sweep has"
        f" a deadline of {first.deadline_s:g} s of modelled time ({sweep_backlog.LATENCY_MS:g} ms a request,"
        f" {sweep_backlog.BYTES_PER_MS // 1000} MB/s); a sweep that outgrows {first.memory_mb} MB is stopped as"
        " Lambda would. Records come from a fake table that makes each payload when a read asks for it; peak memory is"
        " the sweeper's traced allocations (tracemalloc).",
        "",
        *sweep_backlog.markdown(comparison),
        "",
    ]


def _cost(rows: tuple[RelayCost, ...]) -> list[str]:
    return [
        "### Cost of the relay step, USD per million messages",
        "",
        "Prices (us-east-1, on demand): DynamoDB $0.625 per million WRU, SQS $0.40 per million requests, Lambda"
        " $0.20 per million invocations (one per stream batch of 100, the same for both) and $0.0000133334 per"
        " GB-second on arm64. SQS requests and write units as counted on moto in process; Lambda duration at"
        f" the {WORKER_MEMORY_GB * 1024:.0f} MB worker's wall time per message on the fake AWS with 5 ms per"
        " request (the backend that models a network).",
        "",
        "| relay | SQS | DynamoDB flips | Lambda | total |",
        "|---|---|---|---|---|",
        *(f"| {c.relay} | ${c.sqs:.3f} | ${c.flips:.3f} | ${c.function:.3f} | ${c.total:.3f} |" for c in rows),
    ]
