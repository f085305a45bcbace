"""Own CPU per item: the items written and read by hand from their one description, against PynamoDB's models.

    python -m bench.items [--messages 2000] [--rounds 7]

Three paths, each ours (``outbox/domain/items.py``, as the store and the worker run it) against a
baseline in the same run:

- accept's two Puts (``DynamoDBMessageStore.prepare``) against the same two items built by
  PynamoDB's models (``Model(...)`` and ``get_save_kwargs_from_instance``, what ``prepare`` did
  before the description);
- a record read (``record_of``) against ``Model.from_raw_data`` and the same fields;
- the worker's check of an outbox entry's stream image (``ENTRY.read``) against the checks it
  wrote by hand before.

Rounds alternate which goes first; each figure is the median of its rounds, CPU microseconds
per item, with the machine's calibration beside it (``bench/calibration.py``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from bench.calibration import calibration
from outbox.adapters.models import bind_models
from outbox.adapters.store import DynamoDBMessageStore, record_of
from outbox.domain.envelope import Envelope, new_envelope
from outbox.domain.items import ENTRY
from outbox.domain.keys import RECORD_SK, iso, record_pk, utc_now
from outbox.domain.layout import TableLayout
from outbox.domain.message import new_message_id
from outbox.domain.status import Status

LAYOUT = TableLayout("outbox")
PAYLOAD = {"channel": "sms", "recipient": "+14155550100", "body": "benchmark", "tags": ["a", "b"]}


def _envelopes(n: int) -> list[Envelope]:
    now = iso(utc_now())
    return [
        new_envelope(PAYLOAD, type="notification", message_id=new_message_id(), created_at=now, group_key=f"g-{i % 7}")
        for i in range(n)
    ]


def by_description(store: DynamoDBMessageStore, envelopes: list[Envelope]) -> None:
    """Ours: ``prepare``, the two Puts built from the items' description."""
    for envelope in envelopes:
        store.prepare(envelope, idempotency_key="k", by="api", owner="o", sequence="000000000001-w")


def by_models(envelopes: list[Envelope]) -> None:
    """The baseline: the same two Puts from PynamoDB model instances, as ``prepare`` made them before."""
    models = bind_models(LAYOUT)
    new_record, new_entry = models.record.pk.does_not_exist(), models.entry.pk.does_not_exist()
    for envelope in envelopes:
        pk, sk = LAYOUT.entry_place(
            envelope.message_id, envelope.created_at, group_key=envelope.group_key, sequence="000000000001-w"
        )
        record = models.record(
            record_pk(envelope.message_id),
            RECORD_SK,
            message_id=envelope.message_id,
            status=Status.PENDING.value,
            type=envelope.type,
            payload=envelope.payload_json(),
            payload_hash=envelope.payload_hash(),
            idempotency_key="k",
            owner="o",
            group_key=envelope.group_key,
            trace_id=envelope.trace_id,
            outbox_pk=pk,
            outbox_sk=sk,
            write_seq="000000000001-w",
            created_at=envelope.created_at,
            updated_at=envelope.created_at,
            history=[{"status": Status.PENDING.value, "at": envelope.created_at, "by": "api"}],
            attempts=0,
        )
        entry = models.entry(
            pk,
            sk,
            message_id=envelope.message_id,
            group_key=envelope.group_key,
            envelope=envelope.body(),
            trace_id=envelope.trace_id,
            created_at=envelope.created_at,
            expires_at=datetime.fromisoformat(envelope.created_at) + timedelta(days=7),
        )
        record.get_save_kwargs_from_instance(new_record, return_values_on_condition_failure="ALL_OLD")
        entry.get_save_kwargs_from_instance(new_entry)


def read_by_description(items: list[dict[str, Any]]) -> None:
    """Ours: ``record_of``."""
    for item in items:
        record_of(item)


def read_by_models(items: list[dict[str, Any]]) -> None:
    """The baseline: the model reads the item; the record's fields taken from it."""
    model = bind_models(LAYOUT).record
    for item in items:
        read = model.from_raw_data(item)
        (read.message_id, Status(read.status), read.payload_hash, read.created_at, read.updated_at)
        [(Status(h.status), h.at, h.by, h.reason) for h in read.history]
        (read.type, read.payload, read.group_key, int(read.attempts or 0), read.owner, read.lease_owner)


def check_by_description(images: list[dict[str, Any]]) -> None:
    """Ours: the worker's check of an entry's image, ``ENTRY.read``."""
    for image in images:
        ENTRY.read(image)


def _string(image: Mapping[str, Any], name: str) -> str | None:
    value = image.get(name)
    return str(value["S"]) if isinstance(value, dict | Mapping) and isinstance(value.get("S"), str) else None


def check_by_hand(images: list[dict[str, Any]]) -> None:
    """The baseline: the checks the worker wrote out by hand before the description."""
    for image in images:
        _string(image, "message_id"), _string(image, "envelope"), _string(image, "created_at")
        [name for name in ("created_at", "group_key") if name in image and _string(image, name) is None]
        expires = image.get("expires_at")
        isinstance(expires, dict | Mapping) and str(expires.get("N", "")).isdigit()
        _string(image, "group_key")


def _cpu_us(run: Callable[[], None], n: int) -> float:
    started = time.process_time()
    run()
    return (time.process_time() - started) / n * 1e6


def measure(n: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Median CPU microseconds per item of each path, (ours, baseline)."""
    envelopes = _envelopes(n)
    store = DynamoDBMessageStore(LAYOUT, object())  # type: ignore[arg-type]  # prepare makes no request
    prepared = [store.prepare(e, idempotency_key="k", by="api", owner="o") for e in envelopes]
    records = [m.transact_items[0]["Put"]["Item"] for m in prepared]
    images = [m.transact_items[1]["Put"]["Item"] for m in prepared]
    pairs: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
        "accept's two Puts": (lambda: by_description(store, envelopes), lambda: by_models(envelopes)),
        "a record read": (lambda: read_by_description(records), lambda: read_by_models(records)),
        "an entry's stream image checked": (lambda: check_by_description(images), lambda: check_by_hand(images)),
    }
    figures: dict[str, tuple[float, float]] = {}
    for name, (ours, baseline) in pairs.items():
        ours(), baseline()  # warm: imports, bound models, caches
        mine: list[float] = []
        theirs: list[float] = []
        for round_ in range(rounds):
            order = [(ours, mine), (baseline, theirs)]
            for run, into in order if round_ % 2 == 0 else reversed(order):
                into.append(_cpu_us(run, n))
        figures[name] = (statistics.median(mine), statistics.median(theirs))
    return figures


def main() -> None:
    """Print the table: each path, ours and the baseline in CPU microseconds per item, and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    figures = measure(args.messages, args.rounds)
    print(f"{args.messages} items, {args.rounds} rounds; calibration {calibration():.2f} s (bench/calibration.py)")
    print("| path | ours, µs CPU | baseline, µs CPU | ours / baseline |")
    print("|---|---|---|---|")
    for name, (ours, baseline) in figures.items():
        print(f"| {name} | {ours:.1f} | {baseline:.1f} | {ours / baseline:.2f} |")


if __name__ == "__main__":
    main()
