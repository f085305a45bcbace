"""Chaos run: N messages through the local stack with a share of AWS calls faulted, then a Jepsen-style count.

    python bench/chaos.py --messages 10000 --fault-rate 0.2 [--json]

Faults, injected at the botocore boundary of the real handlers' clients (``outbox.faults``):
throttling and 5xx on TransactWriteItems, UpdateItem and SendMessageBatch, timeouts, per-entry
SendMessageBatch refusals, and a crash right after SQS accepted a batch (before any flip). The
stream runner redelivers from the lowest failed sequence number (duplicate deliveries), and a
replay runs concurrently with the worker every few seconds. Clients retry a 5xx with the same
Idempotency-Key, as a real client would.

At the end the faults stop, one replay re-drives what is still PENDING or FAILED, the pipeline
drains, and the table and the consumer's deliveries are checked. Exit 1 on any lost,
unexpected, stuck, backward or changed message.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from outbox import api
from outbox.adapters.reader import DynamoDBOutboxReader
from outbox.domain.notification import parse_notification
from outbox.domain.record import OUTBOX_PREFIX, RECORD_PREFIX, iso, utc_now
from outbox.domain.status import Status, is_allowed
from outbox.faults import FaultInjector, SimulatedCrash
from outbox.local.demo import Client, sample_payload, scan
from outbox.local.stack import LocalStack, StackConfig
from outbox.relay import Relay
from outbox.replay import FLIP_FROM, Checkpoint, Replayer, Selection
from worker import consumer, handler
from worker.stream_runner import Invoke

KINDS = {
    "TransactWriteItems": ["throttle", "5xx", "timeout"],
    "UpdateItem": ["throttle", "5xx", "timeout"],
    "SendMessageBatch": ["throttle", "5xx", "timeout", "refuse", "crash_after"],
}


def arm(injector: FaultInjector, rate: float) -> None:
    """Fault ``rate`` of the calls of each operation, split evenly across its kinds."""
    for operation, kinds in KINDS.items():
        share = rate / len(kinds)
        for kind in kinds:
            if kind == "throttle":
                code = (
                    "ThrottlingException"
                    if operation == "SendMessageBatch"
                    else "ProvisionedThroughputExceededException"
                )
                injector.fail(operation, code, times=-1, probability=share)
            elif kind == "5xx":
                injector.fail(operation, "InternalServerError", status=500, times=-1, probability=share)
            elif kind == "timeout":
                injector.timeout(operation, times=-1, probability=share)
            elif kind == "refuse":
                injector.refuse(None, code="InternalError", probability=share)
            else:
                injector.crash_after(operation, times=-1, probability=share)


def crash_is_function_error(invoke: Invoke) -> Invoke:
    """A simulated crash is what Lambda sees as a function error."""

    def wrapped(event: dict[str, Any], context: Any) -> Any:
        try:
            return invoke(event, context)
        except SimulatedCrash as crash:
            raise RuntimeError("the function crashed") from crash

    return wrapped


def counting_deliveries(invoke: Invoke, deliveries: Counter[str], lock: threading.Lock) -> Invoke:
    """Count every copy the consumer is handed, by message_id."""

    def wrapped(event: dict[str, Any], context: Any) -> Any:
        with lock:
            for record in event.get("Records", []):
                try:
                    deliveries[json.loads(record["body"])["message_id"]] += 1
                except (ValueError, KeyError, TypeError):
                    deliveries["<unreadable>"] += 1
        return invoke(event, context)

    return wrapped


def replay_once(table: str, statuses: tuple[str, ...] = ("PENDING", "FAILED")) -> None:
    """One operator replay of each status, min-age 0."""
    worker = handler.default_worker()
    reader = DynamoDBOutboxReader(table, client=worker.relay.store.client, buckets=16)
    for status in statuses:
        relay = Relay(worker.relay.store, worker.relay.publisher, by="replay", expected=FLIP_FROM[status])
        selection = Selection.build(since=None, until=None, min_age="0", status=status)
        try:
            Replayer(reader, relay).run(Checkpoint(selection))
        except (Exception, SimulatedCrash) as exc:  # noqa: BLE001 - a replay process dying is part of the chaos
            print(f"replay interrupted by a fault: {type(exc).__name__}", file=sys.stderr)
        finally:
            relay.close()


def send_all(client: Client, n: int, run_id: str, attempts: int = 50) -> tuple[dict[str, dict[str, Any]], Counter[int]]:
    """POST n messages, each with its own Idempotency-Key, retrying a 5xx with the same key."""
    accepted: dict[str, dict[str, Any]] = {}
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def one(i: int) -> None:
        payload = sample_payload(i, groups=11)
        headers = {"content-type": "application/json", "idempotency-key": f"chaos-{run_id}-{i}"}
        body = json.dumps(payload).encode()
        for attempt in range(attempts):
            try:
                status, answer = client.post(body, headers)
            except OSError:
                status, answer = 599, {}
            with lock:
                statuses[status] += 1
            if status in (200, 202):
                with lock:
                    accepted[str(answer["message_id"])] = payload
                return
            time.sleep(min(1.0, 0.05 * 2**attempt))

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(one, range(n)))
    return accepted, statuses


def count(table: str, accepted: dict[str, dict[str, Any]], deliveries: Counter[str]) -> dict[str, Any]:
    """The Jepsen-style tally over the whole table and every delivery."""
    records = {item["message_id"]["S"]: item for item in scan(table, RECORD_PREFIX)}
    entries = Counter(item["message_id"]["S"] for item in scan(table, OUTBOX_PREFIX))
    backward = changed = stuck = 0
    for message_id, sent in accepted.items():
        record = records.get(message_id)
        if record is None:
            continue
        history = [h["M"]["status"]["S"] for h in record["history"]["L"]]
        if history[0] != Status.PENDING:
            backward += 1
        backward += sum(not is_allowed(Status(a), Status(b)) for a, b in itertools.pairwise(history))
        if record["payload"]["S"] != parse_notification(sent).canonical_json() or entries[message_id] != 1:
            changed += 1
        if record["status"]["S"] != Status.COMPLETED:
            stuck += 1
    return {
        "messages": len(accepted),
        "lost": sum(1 for m in accepted if m not in records or deliveries[m] == 0),
        "unexpected": len(set(records) - set(accepted)),
        "duplicates": sum(1 for m in accepted if deliveries[m] > 1),
        "stuck_after_replay": stuck,
        "backward_transitions": backward,
        "changed_records": changed,
    }


def wait_for(predicate: Any, progress: Any, timeout_s: float, stall_s: float = 90.0) -> bool:
    """Poll ``predicate`` until true, the timeout, or ``progress()`` has not changed for ``stall_s``."""
    deadline = time.monotonic() + timeout_s
    last, since = progress(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < stall_s:
        if predicate():
            return True
        time.sleep(0.5)
        if progress() != last:
            last, since = progress(), time.monotonic()
    return False


def main(argv: list[str] | None = None) -> int:
    """Run the chaos and print the tally (the last line is JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the pipeline to drain")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.messages < 1 or not 0 <= args.fault_rate < 1:
        parser.error("--messages must be positive and --fault-rate in [0, 1)")
    os.environ.setdefault("LOG_LEVEL", "CRITICAL")  # the tally is the output; faults make every handler log
    os.environ.setdefault("OUTBOX_METRICS", "off")
    started = time.monotonic()
    deliveries: Counter[str] = Counter()
    lock = threading.Lock()
    # Smaller stream batches and a short backoff cap: under 20 % faults most batches fail somewhere.
    with LocalStack(StackConfig(api_port=0, batch_size=20, retry_backoff_max_s=1.0)) as stack:
        table = stack.require_resources().table_name
        clients = [
            api.default_api().store.client,
            handler.default_worker().relay.store.client,
            handler.default_worker().relay.publisher.client,
            consumer.default_consumer().store.client,
        ]
        injector = FaultInjector(*clients, seed=args.seed)
        arm(injector, args.fault_rate)
        runner = stack.stream_runner
        assert runner is not None
        runner.invoke = crash_is_function_error(runner.invoke)
        for sqs_runner in stack.consumer_runners:
            sqs_runner.invoke = counting_deliveries(crash_is_function_error(sqs_runner.invoke), deliveries, lock)

        stop_replays = threading.Event()

        def replays() -> None:
            while not stop_replays.wait(2.0):
                replay_once(table, ("PENDING",))

        replayer = threading.Thread(target=replays, daemon=True)
        replayer.start()
        accepted, http_statuses = send_all(Client(stack.api_url), args.messages, run_id=iso(utc_now()))
        finished = consumer.default_consumer().stats
        progress = lambda: (finished["completed"], finished["failed"], sum(deliveries.values()))  # noqa: E731
        wait_for(lambda: finished["completed"] + finished["failed"] >= len(accepted), progress, args.timeout / 2)
        stop_replays.set()
        replayer.join()
        injector.clear()
        faults = dict(injector.injected)
        replay_once(table)
        wait_for(
            lambda: all(deliveries[m] for m in accepted) and finished["completed"] >= len(accepted),
            progress,
            args.timeout / 2,
        )
        time.sleep(2.0)  # let the last consumer batches finish their writes
        tally = count(table, accepted, deliveries)
    tally |= {
        "fault_rate": args.fault_rate,
        "faults_injected": sum(faults.values()),
        "http_statuses": {str(k): v for k, v in sorted(http_statuses.items())},
        "wall_s": round(time.monotonic() - started, 1),
    }
    violations = sum(
        tally[k] for k in ("lost", "unexpected", "stuck_after_replay", "backward_transitions", "changed_records")
    )
    if not args.json:
        for key, value in tally.items():
            print(f"{key:22s} {value}")
        print(f"faults by kind: {faults}")
    print(json.dumps(tally) if args.json else ("OK" if not violations else f"VIOLATIONS: {violations}"))
    return 1 if violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
