"""DynamoDBMessageStore: the atomic accept and the conditional status transitions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from outbox.adapters.aws import AWS_ERRORS, Lazy, error_code, resolve, translate
from outbox.adapters.updates import (
    S,
    generation_shape,
    relay_failure_shape,
    release_shape,
    resent_shape,
    transition_shape,
    transition_values,
)
from outbox.domain.envelope import Envelope
from outbox.domain.errors import (
    FieldError,
    IdempotencyKeyReusedError,
    InvalidTransitionError,
    NotFoundError,
    OutboxError,
    TransactionCancelledError,
    ValidationError,
)
from outbox.domain.items import ENTRY, RECORD
from outbox.domain.keys import OUTBOX_PREFIX, RECORD_PREFIX, RECORD_SK, in_flight_pk, iso, outbox_sk, utc_now
from outbox.domain.layout import TableLayout
from outbox.domain.results import AcceptResult, TransitionResult
from outbox.domain.status import ENDED, Status, check_sources, sources_of
from outbox.logs import debug_enabled, get_logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from pynamodb.transactions import TransactWrite

    from outbox.domain.cancellation import ItemPart
    from outbox.domain.record import Lease, MessageRecord

log = get_logger("outbox.store")


MAX_TRANSACT_ITEMS = 100  # TransactWriteItems' limit
# What a caller's read of its own record shows (outbox.notifications.api.record_view), and nothing else: not its
# lease, idempotency key, trace id or index keys. The payload is there for the notification's channel.
VIEW_ATTRIBUTES = (
    "message_id",
    "status",
    "type",
    "payload",
    "payload_hash",
    "group_key",
    "created_at",
    "updated_at",
    "history",
    "attempts",
    "reason",
)


@dataclass(frozen=True)
class OutboxMessage:
    """A message ready to join a transaction: its envelope and the two items that store it.

    ``transact_items`` are low-level ``TransactItems`` entries (``{"Put": {...}}``): the PENDING
    record, which refuses to overwrite an existing message, and the outbox entry the stream relays.
    """

    envelope: Envelope
    idempotency_key: str | None
    transact_items: list[dict[str, Any]]
    # Ids the same key had under the id secret's other value: each one's record must not exist
    # (one ConditionCheck each, after the record and the entry), during a rotation window only.
    earlier_ids: tuple[str, ...] = ()

    @property
    def message_id(self) -> str:
        """The id every copy of the message carries."""
        return self.envelope.message_id


class DynamoDBMessageStore:
    """Records and outbox entries in one DynamoDB table; every write is one request.

    ``client`` may be a ``Lazy`` one, made by the first request. ``retention`` is how long an
    outbox entry is kept (replay's window), ``record_retention`` how long a COMPLETED or FAILED
    record is. Every item is written and read by hand from its description
    (``outbox/domain/items.py``); PynamoDB is imported only for a caller's own ``TransactWrite``.
    """

    def __init__(
        self,
        layout: TableLayout,
        client: DynamoDBClient | Lazy[DynamoDBClient],
        *,
        retention: timedelta = timedelta(days=7),
        record_retention: timedelta = timedelta(days=30),
    ) -> None:
        self.layout = layout
        self.table_name = layout.table_name  # every request names it
        self._client = client
        self.retention = retention
        self.record_retention = record_retention
        self._sources: dict[tuple[Status, frozenset[Status] | None], frozenset[Status]] = {}
        # A message is written once: neither its record nor its entry ever replaces another item.
        self._new_item = {
            "ConditionExpression": "attribute_not_exists(#pk)",
            "ExpressionAttributeNames": {"#pk": layout.hash_key},
        }
        names, attributes = RECORD.projection(VIEW_ATTRIBUTES)
        self._view = {"ProjectionExpression": names, "ExpressionAttributeNames": attributes}

    @property
    def client(self) -> DynamoDBClient:
        """The DynamoDB client every request goes through."""
        return resolve(self._client)

    def prepare(
        self,
        envelope: Envelope,
        *,
        idempotency_key: str | None,
        by: str,
        owner: str | None = None,
        earlier_ids: Sequence[str] = (),
        sequence: str | None = None,
    ) -> OutboxMessage:
        """The record and outbox entry of a new message, as PynamoDB models and as TransactItems.

        Each of ``earlier_ids`` adds a ConditionCheck that no record exists at that id (returning
        it if one does): the same key's message written under the id secret's other value.
        ``sequence`` is the message's place in its writer's order (``new_message`` stamps it); an
        envelope made without one gets the next place in this process's order, naming no writer.
        """
        if not sequence:
            from outbox.domain.clock import WRITE_CLOCK  # noqa: PLC0415 - a write's alone: reads and flips never load it

            sequence = WRITE_CLOCK.loose_sequence()
        created_at = envelope.created_at
        place = self.layout.entry_place(
            envelope.message_id, created_at, group_key=envelope.group_key, sequence=sequence
        )
        record = self.layout.record_key(envelope.message_id) | RECORD.encode(
            {
                "message_id": envelope.message_id,
                "status": Status.PENDING.value,
                "type": envelope.type,
                "payload": envelope.payload_json(),
                "payload_hash": envelope.payload_hash(),
                "idempotency_key": idempotency_key,
                "owner": owner,
                "group_key": envelope.group_key,
                "trace_id": envelope.trace_id,
                "outbox_pk": place[0],
                "outbox_sk": place[1],
                "write_seq": sequence,
                "created_at": created_at,
                "updated_at": created_at,
                "history": [{"status": Status.PENDING.value, "at": created_at, "by": by}],
                "attempts": 0,
            }
        )
        expires_at = datetime.fromisoformat(created_at) + self.retention
        entry = self.layout.key(*place) | ENTRY.encode(
            {
                "message_id": envelope.message_id,
                "group_key": envelope.group_key,
                "envelope": envelope.body(),
                "trace_id": envelope.trace_id,
                "created_at": created_at,
                "expires_at": int(expires_at.timestamp()),
            }
        )
        table = self.table_name
        items = [
            {
                "Put": {
                    "TableName": table,
                    "Item": record,
                    **self._new_item,
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {"Put": {"TableName": table, "Item": entry, **self._new_item}},
            *({"ConditionCheck": self._no_record_at(earlier)} for earlier in earlier_ids),
        ]
        return OutboxMessage(envelope, idempotency_key, items, tuple(earlier_ids))

    def _no_record_at(self, message_id: str) -> dict[str, Any]:
        """A ConditionCheck that ``message_id`` has no record; a failed one returns the record."""
        return {
            "TableName": self.table_name,
            "Key": self.layout.record_key(message_id),
            **self._new_item,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def add_to(self, transaction: TransactWrite, message: OutboxMessage) -> None:
        """Put ``message``'s record and entry into a PynamoDB ``TransactWrite``, with the same conditions.

        Without ALL_OLD: a cancellation's text (PynamoDB puts the reasons in it) never carries a
        stored record's payload. The models are made from the very items ``prepare`` built.
        """
        from outbox.adapters.models import bind_models  # noqa: PLC0415 - PynamoDB loads with a caller's TransactWrite

        models = bind_models(self.layout)
        record_put, entry_put = (item["Put"]["Item"] for item in message.transact_items[:2])
        new_record = models.record.pk.does_not_exist()
        transaction.save(models.record.from_raw_data(record_put), condition=new_record)
        transaction.save(models.entry.from_raw_data(entry_put), condition=models.entry.pk.does_not_exist())
        for earlier in message.earlier_ids:
            key = self.layout.record_key(earlier)
            hash_value, range_value = key[self.layout.hash_key]["S"], key[self.layout.range_key]["S"]
            transaction.condition_check(models.record, hash_value, range_value, condition=new_record)

    def cancelled(
        self, exc: Exception, items: Sequence[Mapping[str, Any]], reasons: Sequence[Mapping[str, Any]] | None = None
    ) -> OutboxError:
        """The error of a TransactWriteItems of ``items`` (as sent, in order) that failed with ``exc``.

        ``reasons`` are the per-item cancellation reasons (``{"Code", "Message"}``) when the caller
        has them parsed already, else read from ``exc``. Each failed item is named as the caller's,
        or a message's record or entry (told by their keys), without its content.
        """
        if reasons is None:
            reasons = _cancellation_reasons(exc) if isinstance(exc, ClientError) else None
        if reasons is None:
            return translate(exc, "TransactWriteItems")
        from outbox.domain.cancellation import CancellationReason  # noqa: PLC0415 - made by a cancellation only

        failed = []
        for index, reason in enumerate(reasons):
            code = str(reason.get("Code") or "None")
            if code != "None":
                part, message_id = self._part_of(items[index] if index < len(items) else {})
                failed.append(CancellationReason(index, part, code, str(reason.get("Message") or ""), message_id))
        return TransactionCancelledError(failed)

    def _part_of(self, item: Mapping[str, Any]) -> tuple[ItemPart, str | None]:
        """Whose item of a transaction this is, by its key: a message's record or entry, else the caller's."""
        from outbox.domain.cancellation import ItemPart  # noqa: PLC0415 - read by a cancellation only

        put = item.get("Put") or {}
        if put.get("TableName") == self.table_name:
            stored = put.get("Item") or {}
            key = stored.get(self.layout.hash_key, {}).get("S", "")
            message_id = stored.get("message_id", {}).get("S")
            if key.startswith(RECORD_PREFIX) and stored.get(self.layout.range_key, {}).get("S") == RECORD_SK:
                return ItemPart.RECORD, message_id
            if key.startswith(OUTBOX_PREFIX) and message_id:
                return ItemPart.ENTRY, message_id
        return ItemPart.CALLER, None

    def transact_write(self, items: Sequence[Mapping[str, Any]], messages: Sequence[OutboxMessage]) -> None:
        """One TransactWriteItems: ``items`` (the caller's, in order), then each message's record and entry."""
        request = [*items, *(item for message in messages for item in message.transact_items)]
        if len(request) > MAX_TRANSACT_ITEMS:
            raise ValidationError(
                [
                    FieldError(
                        "TransactItems", f"{len(request)} items; one transaction holds at most {MAX_TRANSACT_ITEMS}"
                    )
                ]
            )
        try:
            self.client.transact_write_items(TransactItems=request)  # type: ignore[arg-type]
        except AWS_ERRORS as exc:
            raise _write_error(exc, len(items), messages) from exc

    def accept(
        self,
        envelope: Envelope,
        *,
        idempotency_key: str | None,
        by: str = "api",
        owner: str | None = None,
        earlier_ids: Sequence[str] = (),
        owners: Collection[str] | None = None,
        sequence: str | None = None,
    ) -> AcceptResult:
        """One TransactWriteItems: the record (if new) and its outbox entry, or the existing message.

        The existing message is the record at the envelope's id or at one of ``earlier_ids`` (the
        same key under the id secret's other value), checked in the same transaction. One of
        another owner (not in ``owners``, default ``owner``) is never replayed nor named:
        IdempotencyKeyReusedError without an id (scoped ids make it unreachable short of a hash
        collision).
        """
        message = self.prepare(
            envelope, idempotency_key=idempotency_key, by=by, owner=owner, earlier_ids=earlier_ids, sequence=sequence
        )
        try:
            self.client.transact_write_items(TransactItems=message.transact_items)  # type: ignore[arg-type]
        except AWS_ERRORS as exc:
            existing = _cancelled_by_existing(exc)
            if existing is None:
                raise _write_error(exc, 0, [message]) from exc
            old = record_of(existing)
            if old.owner not in (owners if owners is not None else {owner}):
                raise IdempotencyKeyReusedError(None) from exc
            if old.payload_hash != message.transact_items[0]["Put"]["Item"]["payload_hash"]["S"]:
                raise IdempotencyKeyReusedError(old.message_id) from exc
            return AcceptResult(old.message_id, old.status, created=False)
        log.info("message_accepted", message_id=envelope.message_id, type=envelope.type, by=by)
        return AcceptResult(envelope.message_id, Status.PENDING, created=True)

    def get(self, message_id: str) -> MessageRecord:
        """Read one record whole, strongly consistent: a hand-built GetItem read by ``record_of``, as ``view`` is."""
        try:
            response = self.client.get_item(
                TableName=self.table_name, Key=self._record_key(message_id), ConsistentRead=True
            )
        except AWS_ERRORS as exc:
            raise translate(exc, "GetItem") from exc
        if "Item" not in response:
            raise NotFoundError(f"no message {message_id}")
        return record_of(dict(response["Item"]))

    def stored_owner(self, message_id: str) -> str | None:
        """The record's owner alone (one GetItem projecting it): None without a record, "" for one without an owner."""
        item = self._read(message_id, ("owner",))
        if item is None:
            return None
        return str(item.get("owner", {}).get("S", ""))

    def view(self, message_id: str) -> MessageRecord:
        """The attributes a caller's read shows (one GetItem projecting them), strongly consistent; NotFoundError."""
        item = self._read(message_id, VIEW_ATTRIBUTES)
        if item is None:
            raise NotFoundError(f"no message {message_id}")
        return record_of(item)

    def _read(self, message_id: str, attributes: Sequence[str]) -> dict[str, Any] | None:
        projection = self._view if attributes is VIEW_ATTRIBUTES else _projection(attributes)
        try:
            response = self.client.get_item(
                TableName=self.table_name, Key=self._record_key(message_id), ConsistentRead=True, **projection
            )
        except AWS_ERRORS as exc:
            raise translate(exc, "GetItem") from exc
        return dict(response["Item"]) if "Item" in response else None

    def transition(
        self,
        message_id: str,
        to: Status,
        *,
        by: str,
        reason: str | None = None,
        expected: frozenset[Status] | None = None,
        lease: Lease | None = None,
    ) -> TransitionResult:
        """One conditional UpdateItem: set the status fields and append to the history, nothing else.

        With a ``lease``, a move to PROCESSING takes it (from PROCESSING only once the previous
        one ran out) and returns the record (``ReturnValues=ALL_OLD``), and a move out of
        PROCESSING requires it to be the holder's.
        """
        sources = self._checked_sources(to, expected)
        shape = transition_shape(
            self.layout.hash_key,
            to,
            sources,
            with_reason=bool(reason),
            leased=lease is not None,
        )
        at = utc_now()
        now = iso(at)
        expires_at = int((at + self.record_retention).timestamp()) if to in ENDED else None
        in_flight = None if to in ENDED else (in_flight_pk(message_id), outbox_sk(now, message_id))
        values = transition_values(
            to,
            now=now,
            by=by,
            reason=reason,
            lease=lease,
            expires_at=expires_at,
            in_flight=in_flight,
        )
        request = shape.request(self.table_name, self._record_key(message_id), values)
        try:
            old = self._update(message_id, request, to, mine=_own_effect(to, lease, values))
        except _AlreadyApplied as applied:
            return _repeated(message_id, to, applied.item, by=by, leased=lease is not None)
        if shape.return_values == "NONE":
            (previous,) = sources  # the condition allowed exactly this one
        else:  # UPDATED_OLD may leave out an attribute whose value did not change (PROCESSING -> PROCESSING).
            previous = Status(old["status"]["S"]) if "status" in old else to
        # Only PROCESSING (+1) and QUEUED (reset) touch attempts; UPDATED_OLD returns nothing else of it.
        attempts = int(old.get("attempts", {}).get("N", "0")) + 1 if to is Status.PROCESSING else 0
        if debug_enabled():  # one line per message and transition: the record's history already has it
            log.debug("status_changed", message_id=message_id, **{"from": previous.value}, to=to.value, by=by)
        record = record_of(old) if shape.return_values == "ALL_OLD" else None
        return TransitionResult(message_id, previous, to, attempts, record=record)

    def _checked_sources(self, to: Status, expected: frozenset[Status] | None) -> frozenset[Status]:
        """The statuses a move to ``to`` may start from, checked against the lifecycle once per kind."""
        key = (to, expected)
        sources = self._sources.get(key)
        if sources is None:
            sources = self._sources[key] = check_sources(to, expected if expected is not None else sources_of(to))
        return sources

    def release(self, message_id: str, lease: Lease) -> None:
        """End ``lease`` now if it still holds the message (no status change, no history line)."""
        values = {":now": S(iso(utc_now())), ":owner": S(lease.owner)}
        request = release_shape(self.layout.hash_key).request(self.table_name, self._record_key(message_id), values)
        self._update(message_id, request, Status.PROCESSING)

    def count_relay_failure(self, message_id: str) -> int:
        """ADD 1 to ``relay_attempts`` of a PENDING record, once for this failure; returns the new count.

        A try whose answer was lost is recognised by its token: the count it made is the answer.
        """
        token = str(uuid.uuid4())
        request = relay_failure_shape(self.layout.hash_key).request(
            self.table_name, self._record_key(message_id), {":failure": S(token)}
        )
        try:
            old = self._update(message_id, request, Status.PENDING, mine=lambda item: _last_failure(item) == token)
        except _AlreadyApplied as applied:
            return int(applied.item.get("relay_attempts", {}).get("N", "0"))
        return int(old.get("relay_attempts", {}).get("N", "0")) + 1

    def new_send_generation(
        self,
        message_id: str,
        *,
        expected: frozenset[Status],
        updated_at: str | None = None,
        generation: int | None = None,
    ) -> int:
        """One conditional UpdateItem: ADD 1 to the send generation before a deliberate re-send; returns it."""
        seen = None if updated_at is None else generation or 0
        values = {":now": S(iso(utc_now()))} | ({":seen_at": S(updated_at)} if updated_at is not None else {})
        request = generation_shape(self.layout.hash_key, expected, seen=seen).request(
            self.table_name, self._record_key(message_id), values
        )
        new = self._update(message_id, request, Status.QUEUED)
        return int(new["send_generation"]["N"])

    def note_resent(self, message_id: str, generation: int) -> None:
        """One conditional UpdateItem: SET ``sent_at`` now, if the record is still at ``generation``."""
        values = {":now": S(iso(utc_now())), ":generation": {"N": str(generation)}}
        request = resent_shape(self.layout.hash_key).request(self.table_name, self._record_key(message_id), values)
        self._update(message_id, request, Status.QUEUED)

    def _record_key(self, message_id: str) -> dict[str, Any]:
        return self.layout.record_key(message_id)

    def _update(
        self,
        message_id: str,
        request: dict[str, Any],
        to: Status,
        *,
        mine: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Run one conditional UpdateItem; returns the old values of the updated attributes (if asked for).

        A failed condition whose ALL_OLD item ``mine`` recognises as this very write, applied by an
        earlier try whose answer was lost, raises ``_AlreadyApplied`` rather than a lost transition.
        """
        try:
            response = self.client.update_item(**request)
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise translate(exc, "UpdateItem") from exc
            item: dict[str, Any] = exc.response.get("Item") or {}  # type: ignore[assignment]
            if mine is not None and mine(item):
                raise _AlreadyApplied(item) from exc
            current = Status(item["status"]["S"]) if "status" in item else None
            lease_until = item.get("lease_until", {}).get("S")
            raise InvalidTransitionError(message_id, current=current, to=to, lease_until=lease_until) from exc
        except AWS_ERRORS as exc:
            raise translate(exc, "UpdateItem") from exc
        return dict(response.get("Attributes") or {})


def _last_failure(item: Mapping[str, Any]) -> str | None:
    """The token of the relay failure a record (as ALL_OLD) counted last."""
    value = item.get("last_relay_failure", {}).get("S")
    return value if isinstance(value, str) else None


class _AlreadyApplied(Exception):
    """A conditional write failed on its own effect: an earlier try was applied, its answer lost."""

    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__("applied by an earlier try")
        self.item = item


def _own_effect(to: Status, lease: Lease | None, values: Mapping[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """Whether a record (as ALL_OLD) already shows this transition, made by this writer.

    Under a lease the writer is the lease's owner: it holds PROCESSING (live, or the condition
    would have let it take it again), or ended the record (``ended_lease_owner``), which no other
    receive can; any try of this receive's write, ours or botocore's, is recognised. Without a
    lease only botocore's retry is: it sends the very same request, so the record's last history
    line is the one this request appends (same status, time to the millisecond and writer).
    """
    line = values[":line"]["L"][0]["M"]

    def mine(item: dict[str, Any]) -> bool:
        if item.get("status", {}).get("S") != to.value:
            return False
        if lease is not None and to is Status.PROCESSING:
            return bool(item.get("lease_owner", {}).get("S") == lease.owner)
        if lease is not None and to in ENDED:
            return bool(item.get("ended_lease_owner", {}).get("S") == lease.owner)
        history = item.get("history", {}).get("L") or [{}]
        return bool(history[-1].get("M") == line)

    return mine


def _repeated(message_id: str, to: Status, item: dict[str, Any], *, by: str, leased: bool) -> TransitionResult:
    """The result of a transition an earlier try had applied: its own history line is the last one."""
    history = [line.get("M", {}) for line in item.get("history", {}).get("L", [])]
    previous = Status(history[-2]["status"]["S"]) if len(history) >= 2 else to
    attempts = int(item.get("attempts", {}).get("N", "0")) if to in (Status.PROCESSING, Status.QUEUED) else 0
    log.info("status_write_answer_lost", message_id=message_id, to=to.value, by=by)  # it had landed: ours
    record = record_of(item) if to is Status.PROCESSING and leased else None  # the lease it holds: what to deliver
    return TransitionResult(message_id, previous, to, attempts, repeated=True, record=record)


def _cancellation_reasons(exc: ClientError) -> list[dict[str, Any]] | None:
    """The per-item reasons of a cancelled transaction, or None for any other error."""
    if error_code(exc) != "TransactionCanceledException":
        return None
    return list(exc.response.get("CancellationReasons") or [])  # type: ignore[arg-type]


def _cancelled_by_existing(exc: Exception) -> dict[str, Any] | None:
    """The existing record, when a one-message transaction was cancelled because its record (or an earlier id's) exists.

    The record is the request's first item, the outbox entry its second, and each earlier id's
    ConditionCheck comes after them; a failed record condition returns the record (``ALL_OLD``).
    """
    reasons = _cancellation_reasons(exc) if isinstance(exc, ClientError) else None
    for index, reason in enumerate(reasons or ()):
        if index != 1 and reason.get("Code") == "ConditionalCheckFailed" and "Item" in reason:
            return dict(reason["Item"])
    return None


def _write_error(exc: Exception, caller_items: int, messages: Sequence[OutboxMessage]) -> OutboxError:
    """A TransactionCancelledError naming each failed item, or the translated AWS error."""
    reasons = _cancellation_reasons(exc) if isinstance(exc, ClientError) else None
    if reasons is None:
        return translate(exc, "TransactWriteItems")
    from outbox.domain.cancellation import CancellationReason, ItemPart  # noqa: PLC0415 - a cancellation only

    owners: list[tuple[ItemPart, str | None]] = [(ItemPart.CALLER, None)] * caller_items
    for message in messages:
        owners += [(ItemPart.RECORD, message.message_id), (ItemPart.ENTRY, message.message_id)]
        owners += [(ItemPart.RECORD, earlier) for earlier in message.earlier_ids]  # written under the other value
    failed = []
    for index, reason in enumerate(reasons):
        code = str(reason.get("Code") or "None")
        if code != "None":
            part, message_id = owners[index] if index < len(owners) else (ItemPart.CALLER, None)
            failed.append(CancellationReason(index, part, code, str(reason.get("Message") or ""), message_id))
    return TransactionCancelledError(failed)


def _projection(attributes: Sequence[str]) -> dict[str, Any]:
    """GetItem's projection of some of a record's attributes."""
    names, placeholders = RECORD.projection(attributes)
    return {"ProjectionExpression": names, "ExpressionAttributeNames": placeholders}


def record_of(item: Mapping[str, Any]) -> MessageRecord:
    """A stored record (DynamoDB's attribute values, as GetItem or ALL_OLD return them) as the domain's record.

    The one reading of a record (``get``, the API's projected ``view``, an accept's existing
    record), through the record's description (``domain/items.py``), as its writing is
    (tests/unit/test_store_requests.py holds it equal to the PynamoDB model's reading, field by
    field, for every field of MessageRecord).
    """
    from outbox.domain.record import HistoryEntry, Lease, MessageRecord  # noqa: PLC0415 - the worker reads no record

    values = RECORD.decode(item)
    history = tuple(
        HistoryEntry(Status(line["status"]), line["at"], line["by"], line.get("reason")) for line in values["history"]
    )
    lease_owner, lease_until = values.get("lease_owner"), values.get("lease_until")
    return MessageRecord(
        message_id=values["message_id"],
        status=Status(values["status"]),
        payload_hash=values["payload_hash"],
        created_at=values["created_at"],
        updated_at=values["updated_at"],
        history=history,
        type=values["type"],
        payload=json.loads(values["payload"]),
        group_key=values.get("group_key"),
        attempts=values.get("attempts") or 0,
        relay_attempts=values.get("relay_attempts") or 0,
        reason=values.get("reason"),
        lease=Lease(lease_owner, lease_until) if lease_owner and lease_until else None,
        owner=values.get("owner"),
        expires_at=values.get("expires_at"),
        send_generation=values.get("send_generation") or 0,
        sent_at=values.get("sent_at"),
        ended_lease_owner=values.get("ended_lease_owner"),
        trace_id=values.get("trace_id"),
    )
