"""Child process of ``make bench``: a dry-run replay over a whole table; prints RSS before and at peak (MB)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from outbox.adapters.aws import dynamodb_client
from outbox.adapters.reader import DynamoDBOutboxReader
from outbox.domain.layout import TableLayout
from outbox.service.replay import Checkpoint, Replayer, Selection


def _peak_rss_mb() -> float:
    """The peak resident memory of this process, from its own high-water mark (VmHWM), in MB.

    Not ru_maxrss: Linux starts a spawned child's ru_maxrss at its parent's peak, which would hide
    any growth below the benchmark's own size.
    """
    status = Path("/proc/self/status").read_text()
    (kib,) = (line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kib) / 1024


def main(table: str, buckets: int) -> None:
    """Replay (dry run) every PENDING entry of ``table`` and report memory."""
    reader = DynamoDBOutboxReader(TableLayout(table, buckets=buckets), dynamodb_client())
    selection = Selection.window(status="PENDING")
    reader.statuses([])  # warm the client before the baseline
    start = _peak_rss_mb()
    summary = Replayer(reader, None, batch_size=10).run(Checkpoint(selection))
    print(
        json.dumps(
            {"start_mb": start, "peak_mb": _peak_rss_mb(), "scanned": summary.scanned, "selected": summary.selected}
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
