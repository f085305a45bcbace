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

NAMESPACE = "Outbox"
DIMENSIONS = {"Service": "outbox"}
# The worker's measure of delivery lag; infra/terraform/alarms.tf alarms on it.
OLDEST_PENDING_AGE = "OldestPendingAgeSeconds"


def emit_metrics(
    metrics: Mapping[str, float],
    *,
    unit: str = "Count",
    dimensions: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
) -> None:
    """Write one EMF line holding ``metrics`` (all of one ``unit``) under the Outbox namespace.

    ``OUTBOX_METRICS=off`` silences it (the local demo draws a progress bar on the same terminal).
    """
    if not metrics or os.environ.get("OUTBOX_METRICS", "on").lower() in {"0", "off", "false"}:
        return
    dims = dict(dimensions or DIMENSIONS)
    line = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
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
