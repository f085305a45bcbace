"""How fast this machine is right now: the CPU-bound figures of a run scale with it."""

from __future__ import annotations

import time


def calibration() -> float:
    """Seconds of CPU for a fixed pure-Python loop of 20M steps."""
    started = time.process_time()
    total = 0
    for i in range(20_000_000):
        total += i
    return time.process_time() - started
