"""GET of another caller's message against GET of an unknown id: whether the time tells them apart.

Ours reads the owner alone (a projected GetItem) and compares it, on either path; the baseline
is the read before this change: the whole record, parsed, then the owner compared. Both on moto
in process, interleaved, the same record (a notification with a 4 KB body and a 10-line history).

    .venv/bin/python -m bench.get_timing [--reads 300]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from bench._backend import backend
from bench.calibration import calibration
from outbox.domain.caller import Caller
from outbox.domain.errors import NotFoundError
from outbox.domain.keys import iso, utc_now
from outbox.domain.record import Lease
from outbox.domain.status import Status
from outbox.logs import configure_logging
from outbox.notifications.accept import accept_notification
from outbox.service.accept import Acceptor

ALICE, BOB = Caller("iam:123456789012:AIDAALICE"), Caller("iam:123456789012:AIDABOB")
ROUNDS = 5


def _median_ms(read: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        with contextlib.suppress(NotFoundError):
            read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(reads: int) -> dict[str, tuple[float, float]]:
    """Median ms of (another's id, an unknown id), ours and the baseline's."""
    with backend(0) as b:
        acceptor = Acceptor(b.store, id_secret=secrets.token_urlsafe(32))
        body = {"channel": "email", "recipient": "ada@example.com", "subject": "s", "body": "x" * 4096}
        message_id = accept_notification(acceptor, body, idempotency_key=None, caller=ALICE).message_id
        b.store.transition(message_id, Status.QUEUED, by="bench")
        for n in range(3):  # a record with some history: leased, failed, re-driven
            lease = Lease(f"bench-{n}", iso(utc_now() + timedelta(minutes=5)))
            b.store.transition(message_id, Status.PROCESSING, by="bench", lease=lease)
            b.store.transition(message_id, Status.FAILED, by="bench", reason="bench", lease=lease)
            b.store.transition(message_id, Status.QUEUED, by="bench")
        unknown = str(uuid.uuid4())

        def baseline(target: str) -> Callable[[], object]:
            def read() -> object:  # the code before: the whole record read and parsed, then the owner compared
                record = b.store.get(target)
                if record.owner not in acceptor.keys().owners(BOB.principal):
                    raise NotFoundError("no such message")
                return record

            return read

        samples: dict[str, list[tuple[float, float]]] = {"ours": [], "baseline": []}
        for _ in range(ROUNDS):
            samples["ours"].append(
                (
                    _median_ms(lambda: acceptor.read(message_id, BOB), reads),
                    _median_ms(lambda: acceptor.read(unknown, BOB), reads),
                )
            )
            samples["baseline"].append((_median_ms(baseline(message_id), reads), _median_ms(baseline(unknown), reads)))
        return {
            name: (statistics.median(s[0] for s in rounds), statistics.median(s[1] for s in rounds))
            for name, rounds in samples.items()
        }


def main(argv: list[str] | None = None) -> None:
    """Print each side's medians and the ratio another's / unknown (1.00: no tell)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=300, help="reads per path per round")
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # moto's; no AWS account is involved
    configure_logging(level="WARNING")
    print(f"calibration: {calibration():.2f} s CPU for 20M steps")
    for name, (theirs, unknown) in measure(args.reads).items():
        print(f"{name:9} another's id {theirs:6.2f} ms  unknown id {unknown:6.2f} ms  ratio {theirs / unknown:.2f}")


if __name__ == "__main__":
    main()
