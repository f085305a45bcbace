"""``make bench``: every benchmark, ours against a naive baseline in the same run, into bench/RESULTS.md.

The relay, the API, the local stack end to end, replay's memory, the sweeper's reads, the sweeper
under a large backlog and the relay's cost (one module each), printed and written into RESULTS.md
between the bench markers.

    python -m bench.run [--quick] [--no-write] [--json]

``--quick`` runs every benchmark at a fifth of its size (a smoke run); ``--json`` prints the figures as
JSON instead of the Markdown section; ``--no-write`` leaves RESULTS.md alone.
"""

from __future__ import annotations

import argparse
import os
import time

from bench import accept, end_to_end, overhead, relay, replay, report, sweep, sweep_backlog
from bench.calibration import calibration
from bench.cost import relay_cost
from outbox.local.stack import LOCAL_CREDENTIALS
from outbox.logs import configure_logging

__all__ = ["calibration", "collect", "main"]


def collect(*, scale: int = 1) -> report.Results:
    """Run every benchmark, at ``1 / scale`` of its full size, in the order they are reported."""
    started = time.perf_counter()
    speed = calibration()
    relay_moto = relay.on_moto(0, 200 // scale)
    relay_server = relay.on_moto(0, 200 // scale, server=True)
    relay_fake_aws = relay.on_fake_aws(5, 300 // scale)
    own = overhead.measure(5_000 // scale)
    accept_moto = accept.measure(0, 300 // scale)
    accept_latency = accept.measure(5, 200 // scale)
    e2e = end_to_end.measure(300 // scale, rate=20)
    memory = replay.measure([10_000 // scale, 100_000 // scale])
    sweeps = [sweep.measure(size, backlog=100 // scale) for size in (10_000 // scale, 100_000 // scale)]
    backlog = sweep_backlog.measure([2_000 // scale, 100_000 // scale])
    costs = relay_cost(relay_moto, relay_fake_aws)
    return report.Results(
        date=time.strftime("%Y-%m-%d"),
        wall_s=time.perf_counter() - started,
        calibration_s=speed,
        relay_moto=relay_moto,
        relay_server=relay_server,
        relay_fake_aws=relay_fake_aws,
        overhead=own,
        accept_moto=accept_moto,
        accept_latency=accept_latency,
        end_to_end=e2e,
        replay_memory=tuple(memory),
        sweeps=tuple(sweeps),
        sweep_backlog=backlog,
        costs=tuple(costs),
    )


def main(argv: list[str] | None = None) -> int:
    """Run everything against moto only, print it, and rewrite the bench section of RESULTS.md."""
    parser = argparse.ArgumentParser(description="Every benchmark, ours against a naive baseline in the same run.")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--no-write", action="store_true", help="leave bench/RESULTS.md as it is")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of Markdown")
    args = parser.parse_args(argv)
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ["OUTBOX_METRICS"] = "off"
    os.environ.update(LOCAL_CREDENTIALS)  # moto only: never real AWS
    os.environ.pop("AWS_ENDPOINT_URL", None)
    configure_logging(level="ERROR")
    results = collect(scale=5 if args.quick else 1)
    lines = report.markdown(results)
    print(report.as_json(results) if args.json else "\n".join(lines))
    if not args.no_write:
        report.write(lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
