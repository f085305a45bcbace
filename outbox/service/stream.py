"""The stream use case: a DynamoDB Streams batch in, its outbox INSERTs relayed, a partial batch response out.

The batch comes as Lambda's stream event source mapping delivers it (the local stream runner
delivers the same): the caller's own items are skipped, a malformed outbox entry is quarantined
(FAILED with the reason, never blocking the shard), and a group's older PENDING message that the
stream lost is relayed before the group's newer ones; an entry old enough for the sweeper to have
relayed it already is sent only if its record is still PENDING. Lambda checkpoints at the lowest
``SequenceNumber`` listed in ``batchItemFailures`` and redelivers everything after it; a
duplicate delivery is harmless because the flip is conditional and every copy carries the same
``message_id``. The Lambda entry point around it is ``worker/handler.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from outbox.domain.errors import OutboxError
from outbox.domain.items import ENTRY
from outbox.domain.keys import OUTBOX_PREFIX, utc_now
from outbox.domain.layout import DEFAULT_HASH_KEY, DEFAULT_RANGE_KEY, TableLayout
from outbox.domain.message import is_message_id
from outbox.logs import get_logger
from outbox.metrics import MESSAGES_QUARANTINED, OLDEST_PENDING_AGE, emit_metrics
from outbox.ports import BatchResponse, SweepSource
from outbox.service.order import Place, lost_first
from outbox.service.relay import Relay, RelayItem, keys_in_order

log = get_logger("outbox.service.stream")

# Stream records are dicts: checking dict first skips the ABC machinery of Mapping (16 checks a record).
_MAPPINGS = (dict, Mapping)
DEFAULT_CLOCK_SKEW = timedelta(seconds=2)
_YEAR_10000 = 253_402_300_800  # epoch seconds: datetime reaches no further


@dataclass(frozen=True)
class _Malformed:
    key: str
    message_id: str | None
    reason: str


@dataclass(frozen=True)
class _Parsed:
    items: list[RelayItem]
    malformed: list[_Malformed]
    oldest_created_at: str | None
    places: dict[str, Place]  # by stream key, the grouped entries only
    swept: list[str]  # message ids of entries old enough for the sweeper to have relayed them


class StreamWorker:
    """Turns a DynamoDB Streams event into relay work and a partial batch response.

    With a ``pending`` source it keeps a group's order when the stream lost records (trimmed,
    the trigger was off, the mapping gave up): an older PENDING message of a group in the batch
    is relayed first, re-sent from its record, before the group's newer ones. With ``swept_after``
    too (the sweeper's minimum age), entries older than that are sent only if their record is
    still PENDING: after a stream lag or an outage the sweeper has relayed them, and the stream
    catching up would send each one again. Fresh entries, the usual case, cost no read.

    ``clock_skew`` is the most a writer's clock may be off: a PENDING message of another writer
    goes before the batch only if it was made that much before the batch's entry committed
    (``service/order.py``); one in doubt is left to the stream or the sweeper, so the worker never
    sends a message ahead of one the stream gave it.
    """

    def __init__(
        self,
        relay: Relay,
        *,
        layout: TableLayout | None = None,
        pending: SweepSource | None = None,
        swept_after: timedelta | None = None,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    ) -> None:
        self.relay = relay
        self.clock_skew = clock_skew
        # The table's key names: the caller's own items share the stream and are skipped by their keys.
        keys = (layout.hash_key, layout.range_key) if layout is not None else (DEFAULT_HASH_KEY, DEFAULT_RANGE_KEY)
        self.hash_key, self.range_key = keys
        self.pending = pending
        self.swept_after = swept_after

    def handle(self, event: Mapping[str, Any], context: Any = None) -> BatchResponse:
        """Relay every outbox INSERT of ``event``; list the SequenceNumbers to retry."""
        records = event.get("Records") if isinstance(event, Mapping) else None
        parsed = self._parse(records if isinstance(records, list) else [])
        failed = [m.key for m in parsed.malformed if not self._quarantine(m)]
        time_left: Callable[[], int] | None = getattr(context, "get_remaining_time_in_millis", None)
        items, relayed = self._unrelayed(parsed)
        report = self.relay.relay(self._older_first(items, parsed.places), time_left_ms=time_left)
        failed += keys_in_order(parsed.items, report.failed)
        self._emit(parsed, report.sent, report.duplicates + relayed, report.quarantined, failed)
        return {"batchItemFailures": [{"itemIdentifier": key} for key in failed]}

    def _unrelayed(self, parsed: _Parsed) -> tuple[list[RelayItem], list[str]]:
        """The batch less the entries the sweeper relayed already (one read per 100 old entries), and their keys."""
        recent = self.relay.recent
        unknown = [m for m in parsed.swept if not recent.is_done(m)]  # a recent send of ours: the relay knows it
        if self.pending is None or not unknown:
            return parsed.items, []
        try:
            moved = self.pending.moved_on(unknown)
        except OutboxError as exc:  # then send them all, as without the check: the flip stays conditional
            log.warning("relayed_check_failed", error=exc.code)
            return parsed.items, []
        if not moved:
            return parsed.items, []
        for message_id in moved:  # a redelivered batch need not read them again
            recent.done(message_id)
        log.info("already_relayed_skipped", messages=len(moved))
        return [i for i in parsed.items if i.message_id not in moved], [
            i.key for i in parsed.items if i.message_id in moved
        ]

    def _older_first(self, items: list[RelayItem], places: dict[str, Place]) -> list[RelayItem]:
        """The batch, behind any PENDING message of its groups that the stream lost before it."""
        if self.pending is None or not places:
            return items
        return lost_first(items, places, self.pending, known=self._known(items), clock_skew=self.clock_skew)

    def _known(self, items: list[RelayItem]) -> Callable[[str], bool]:
        """Messages whose records need no read: in this batch, or flipped by this container lately."""
        in_batch = {item.message_id for item in items}
        recent = self.relay.recent
        return lambda message_id: message_id in in_batch or recent.is_done(message_id)

    def _parse(self, records: Sequence[object]) -> _Parsed:
        items: list[RelayItem] = []
        malformed: list[_Malformed] = []
        places: dict[str, Place] = {}
        swept: list[str] = []
        oldest: str | None = None
        cutoff = utc_now() - self.swept_after if self.swept_after is not None else None
        for record in records:
            outcome = self._parse_record(record)
            if isinstance(outcome, _Malformed):
                malformed.append(outcome)
            elif outcome is not None:
                item, created_at, place = outcome
                items.append(item)
                if place is not None:
                    places[item.key] = place
                if cutoff is not None and datetime.fromisoformat(created_at) < cutoff:
                    swept.append(item.message_id)
                oldest = created_at if oldest is None else min(oldest, created_at)
        return _Parsed(items, malformed, oldest, places, swept)

    def _parse_record(self, record: object) -> tuple[RelayItem, str, Place | None] | _Malformed | None:
        """An outbox INSERT as a RelayItem; None for any other record; _Malformed for a poison one."""
        if not isinstance(record, _MAPPINGS) or record.get("eventName") != "INSERT":
            return None
        change = record.get("dynamodb")
        if not isinstance(change, _MAPPINGS):
            return None
        pk = _string_attr(change.get("Keys"), self.hash_key)
        if pk is None or not pk.startswith(OUTBOX_PREFIX):
            return None
        key = change.get("SequenceNumber")
        if not isinstance(key, str) or not key:
            log.error("stream_record_malformed", reason="no SequenceNumber")
            return None  # nothing to report it by: an empty identifier would fail the whole batch
        image = change.get("NewImage")
        # The entry's one description says what an image holds (domain/items.py), read by hand: a
        # PynamoDB model per record would cost more CPU than the rest of the relay.
        values, problems = ENTRY.read(image) if isinstance(image, _MAPPINGS) else ({}, ["NewImage"])
        message_id, envelope, created_at = values.get("message_id"), values.get("envelope"), values.get("created_at")
        if message_id is not None and not is_message_id(message_id):
            message_id = None
            problems.append("message_id")
        if envelope == "":
            problems.append("envelope")
        if created_at is not None and not _is_time(created_at):
            problems.append("created_at")
        if problems or envelope is None or message_id is None or created_at is None:
            return _Malformed(key, message_id, f"malformed outbox entry ({', '.join(problems)})")
        group_key = values.get("group_key")
        sk = _string_attr(change.get("Keys"), self.range_key)
        bucket = pk[len(OUTBOX_PREFIX) :]
        committed = _epoch(change.get("ApproximateCreationDateTime"))
        place = Place(int(bucket), sk, committed) if group_key is not None and sk and bucket.isdigit() else None
        # A trace that is not a string is no trace: the message goes without it, never quarantined.
        item = RelayItem(key, message_id, envelope, group_key, trace_header=_string_attr(image, "trace_id"))
        return item, created_at, place

    def _quarantine(self, malformed: _Malformed) -> bool:
        """Poison never blocks the shard: FAILED with the reason, or skipped if there is no record to mark."""
        if malformed.message_id is None:
            log.error("outbox_entry_skipped", sequence_number=malformed.key, reason=malformed.reason)
            return True
        return self.relay.quarantine_message(malformed.message_id, malformed.reason)

    def _emit(
        self, parsed: _Parsed, sent: list[str], dupes: list[str], quarantined: list[str], failed: list[str]
    ) -> None:
        emit_metrics(
            {
                "MessagesRelayed": len(sent),
                "DuplicateDeliveries": len(dupes),
                MESSAGES_QUARANTINED: len(quarantined) + len(parsed.malformed),
                "RelayFailures": len(failed),
            }
        )
        if parsed.oldest_created_at is not None:
            age = (utc_now() - datetime.fromisoformat(parsed.oldest_created_at)).total_seconds()
            emit_metrics({OLDEST_PENDING_AGE: max(age, 0.0)}, unit="Seconds")
        log.info(
            "batch_relayed",
            records=len(parsed.items) + len(parsed.malformed),
            sent=len(sent),
            duplicates=len(dupes),
            quarantined=len(quarantined) + len(parsed.malformed),
            failed=len(failed),
        )


def _epoch(value: object) -> float | None:
    """Epoch seconds as Lambda gives a stream record's ``ApproximateCreationDateTime``; None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value < _YEAR_10000 else None  # NaN fails both


def _is_time(text: str) -> bool:
    """Whether ``text`` is an ISO 8601 time with a zone, as every outbox time is."""
    try:
        return datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


def _string_attr(image: object, name: str) -> str | None:
    if not isinstance(image, _MAPPINGS):
        return None
    value = image.get(name)
    if isinstance(value, _MAPPINGS) and isinstance(value.get("S"), str):
        return str(value["S"])
    return None
