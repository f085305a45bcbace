"""Cost of the relay step in USD per million messages, from a comparison's counts and another's timings."""

from __future__ import annotations

from dataclasses import dataclass

from bench._backend import LAMBDA_BATCH
from bench.relay import Contender, RelayComparison

# USD per million (requests, write units, GB-seconds), on-demand us-east-1; Lambda on arm64, as deployed.
PRICES = {"wru": 0.625, "sqs_request": 0.40, "lambda_request": 0.20, "lambda_gb_s": 13.3334}
WORKER_MEMORY_GB = 0.5  # the Terraform module's default memory_size for the worker


@dataclass(frozen=True)
class RelayCost:
    """USD per million messages relayed by one relay."""

    relay: Contender
    sqs: float
    flips: float
    function: float  # Lambda invocations and duration

    @property
    def total(self) -> float:
        """All three."""
        return self.sqs + self.flips + self.function


def relay_cost(counted: RelayComparison, timed: RelayComparison) -> list[RelayCost]:
    """Naive's and ours: requests and write units as ``counted`` saw them, Lambda time at ``timed``'s throughput.

    One invocation per stream batch of 100, the same for both relays; duration per message is one
    over the relay's messages per second, at the worker's memory size.
    """
    if counted.flip_wru is None:
        raise ValueError(f"no write units measured on {counted.backend}")
    rows = []
    for name, figures, timing in (
        (Contender.NAIVE, counted.naive, timed.naive),
        (Contender.OURS, counted.ours, timed.ours),
    ):
        sqs = figures.sqs_per_msg * PRICES["sqs_request"]
        flips = figures.updates_per_msg * counted.flip_wru * PRICES["wru"]
        seconds = 1 / timing.msg_per_s
        function = PRICES["lambda_request"] / LAMBDA_BATCH + seconds * WORKER_MEMORY_GB * PRICES["lambda_gb_s"]
        rows.append(RelayCost(name, sqs, flips, function))
    return rows
