"""Child process of ``make bench``: a dry-run replay over a whole table; prints RSS before and at peak (MB)."""

from __future__ import annotations

import json
import resource
import sys

from outbox.adapters.aws import dynamodb_client
from outbox.adapters.reader import DynamoDBOutboxReader
from outbox.replay import Checkpoint, Replayer, Selection


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(table: str, buckets: int) -> None:
    """Replay (dry run) every PENDING entry of ``table`` and report memory."""
    reader = DynamoDBOutboxReader(table, client=dynamodb_client(), buckets=buckets)
    selection = Selection.build(since=None, until=None, min_age="0", status="PENDING")
    reader.statuses([])  # warm the client before the baseline
    start = _rss_mb()
    summary = Replayer(reader, None, batch_size=10).run(Checkpoint(selection))
    print(
        json.dumps({"start_mb": start, "peak_mb": _rss_mb(), "scanned": summary.scanned, "selected": summary.selected})
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
