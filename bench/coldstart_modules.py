"""The outbox's own modules in each function's first request: their import alone, zip against zip in the same rounds.

``bench.coldstart`` times a whole first request, of which the outbox's own modules are about a
tenth; on this shared VM two runs of one zip differ by about ±0.03 in a ratio, more than a change
to a few of those modules moves it. This isolates them: for each first request of
``bench.coldstart`` (the API's GET and POST, the worker's relay, the consumer's delivery), a child
process runs it from the zip against the loopback stub and lists the modules it loaded; then, in
each round and for each zip, a fresh interpreter (``-I -S -B``, as there) imports every one of
those modules that is not the outbox's own (botocore, the standard library: what the bare function
loads too), pauses the collector as a deployed function does, and times with ``process_time`` the
import of the outbox's own modules (``outbox.*``, ``worker.*``) in the order they were loaded.
Figures are medians over the rounds, in CPU milliseconds, each zip's modules as that zip's
request loads them.

    python -m bench.coldstart_modules OLD.zip NEW.zip [--runs 15]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import aws_stub
from bench.calibration import calibration
from bench.coldstart import ENVIRONMENT, Case, cases, read_only_zip, scenario

OWN = ("outbox", "worker")

LIST = """
import importlib, json, sys
sys.path[:0] = [{task!r}]
before = set(sys.modules)
handler = getattr(importlib.import_module({module!r}), {function!r})
handler({event!r}, None)
print(json.dumps([name for name in sys.modules if name not in before]))
"""

TIME = """
import importlib, sys, time
sys.path[:0] = [{task!r}]
for name in {others!r}:
    try:
        importlib.import_module(name)
    except Exception:  # a module only importable as a side effect of another (it is loaded by then)
        pass
import gc
gc.disable()
started = time.process_time()
for name in {own!r}:
    importlib.import_module(name)
print(time.process_time() - started)
"""


@dataclass(frozen=True)
class ModuleCost:
    """One first request's own modules in one zip: how many, and their import in CPU milliseconds."""

    case: str
    zip_name: str
    modules: int
    median_ms: float
    min_ms: float


def _run(script: str, env: dict[str, str]) -> str:
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-I", "-S", "-B", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return result.stdout.strip().splitlines()[-1]


def loaded(case: Case, task: Path, env: dict[str, str]) -> list[str]:
    """The modules ``case``'s first request loads from ``task``, in the order they were loaded."""
    module, function = case.handler.rsplit(".", 1)
    script = LIST.format(task=str(task), module=module, function=function, event=case.event)
    names: list[str] = json.loads(_run(script, env))
    return names


def measure(zips: tuple[Path, ...], runs: int = 15) -> tuple[tuple[ModuleCost, ...], tuple[float, float]]:
    """``runs`` interleaved rounds over ``zips`` of each first request's own modules, and the calibration around."""
    found = scenario()
    first, _ = cases(found)
    chosen = first[1:]  # the bare function has no modules of ours
    stub = aws_stub.AwsStub()
    for item in found.items:
        stub.seed(item, found.key_names)
    scripts: dict[tuple[str, str], tuple[str, int]] = {}
    with contextlib.ExitStack() as stack:
        endpoint = stack.enter_context(aws_stub.serve(stub))
        env = {**ENVIRONMENT, "AWS_ENDPOINT_URL": endpoint, "PATH": os.environ.get("PATH", "")}
        for zip_path in zips:
            task = stack.enter_context(read_only_zip(zip_path))
            for case in chosen:
                names = loaded(case, task, env)
                own = [n for n in names if n.split(".")[0] in OWN]
                others = [n for n in names if n.split(".")[0] not in OWN and n != "__main__"]
                script = TIME.format(task=str(task), others=others, own=own)
                scripts[(case.name, zip_path.name)] = (script, len(own))
        before = calibration()
        taken: dict[tuple[str, str], list[float]] = {key: [] for key in scripts}
        for _ in range(runs):
            for key, (script, _count) in scripts.items():
                taken[key].append(float(_run(script, env)) * 1000)
        after = calibration()
    costs = tuple(
        ModuleCost(case, zip_name, scripts[(case, zip_name)][1], statistics.median(values), min(values))
        for (case, zip_name), values in taken.items()
    )
    return costs, (before, after)


def table(costs: tuple[ModuleCost, ...]) -> str:
    """Markdown: a row per first request, a column per zip (median ms, and the modules' count)."""
    zips = list(dict.fromkeys(c.zip_name for c in costs))
    lines = [
        "| first request | " + " | ".join(f"{z}: own modules, import (CPU ms, median)" for z in zips) + " |",
        "|---|" + "---|" * len(zips),
    ]
    for case in dict.fromkeys(c.case for c in costs):
        row = {c.zip_name: c for c in costs if c.case == case}
        cells = [f"{row[z].modules}: {row[z].median_ms:.1f} (min {row[z].min_ms:.1f})" for z in zips]
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: the table, with the calibration line."""
    parser = argparse.ArgumentParser(description="The outbox's own modules in each first request, zip against zip.")
    parser.add_argument("zips", type=Path, nargs="+", help="Lambda zips (make package, python -m infra.package)")
    parser.add_argument("--runs", type=int, default=15, help="interleaved rounds")
    args = parser.parse_args(argv)
    costs, (before, after) = measure(tuple(args.zips), args.runs)
    print(
        f"Python {sys.version.split()[0]}, {args.runs} rounds. Calibration (bench.calibration, CPU s):"
        f" {before:.2f} before, {after:.2f} after.\n\n{table(costs)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
