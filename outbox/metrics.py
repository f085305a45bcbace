"""CloudWatch metrics as Embedded Metric Format lines on stdout: no API call, no cost per message.

EMF is a log format, not a protocol, so a dozen lines here beat a client library with a
background flusher that a Lambda might freeze mid-write.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from typing import TextIO

# Two deployments in one account keep their metrics apart with their own namespace or service
# (OUTBOX_METRICS_NAMESPACE, OUTBOX_SERVICE; the Terraform module's `metrics_namespace` and `name`).
NAMESPACE = "Outbox"
DIMENSIONS = {"Service": "outbox"}
# Metrics infra/terraform/alarms.tf alarms on (tests/infra checks the names against these).
# Delivery lag: the worker's oldest entry in a batch, and the sweeper's oldest PENDING message.
OLDEST_PENDING_AGE = "OldestPendingAgeSeconds"
# Messages marked FAILED without being sent (the worker's and the sweeper's quarantines).
MESSAGES_QUARANTINED = "MessagesQuarantined"
# Messages the consumer ended FAILED.
MESSAGES_FAILED = "MessagesFailed"
# Messages a sweep could not relay (it tries them again on its next run).
SWEEP_FAILURES = "SweepFailures"
# Messages in flight whose copy was gone (outlived the queue's retention, purged, deleted), re-sent by the sweeper.
MESSAGES_RESENT = "MessagesResent"


def emit_metrics(
    metrics: Mapping[str, float],
    *,
    unit: str = "Count",
    dimensions: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
) -> None:
    """Write one EMF line holding ``metrics`` (all of one ``unit``) under ``OUTBOX_METRICS_NAMESPACE``.

    Counts of 0 are left out, and nothing is written when nothing is left: an empty batch costs no
    log line. The dimension is ``Service`` = ``OUTBOX_SERVICE`` unless ``dimensions`` are given.
    ``OUTBOX_METRICS=off`` silences it (the local demo draws a progress bar on the same terminal).
    """
    if unit == "Count":
        metrics = {name: value for name, value in metrics.items() if value}
    if not metrics or os.environ.get("OUTBOX_METRICS", "on").lower() in {"0", "off", "false"}:
        return
    dims = dict(dimensions or {"Service": os.environ.get("OUTBOX_SERVICE") or DIMENSIONS["Service"]})
    line = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": os.environ.get("OUTBOX_METRICS_NAMESPACE") or NAMESPACE,
                    "Dimensions": [sorted(dims)],
                    "Metrics": [{"Name": name, "Unit": unit} for name in sorted(metrics)],
                }
            ],
        },
        **dims,
        **metrics,
    }
    out = stream or sys.stdout
    out.write(json.dumps(line, separators=(",", ":")) + "\n")
