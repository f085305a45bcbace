"""DynamoDBMessageStore: the atomic accept and the conditional status transitions."""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from botocore.exceptions import ClientError

from outbox.adapters.aws import AWS_ERRORS, dynamodb_client, error_code, translate
from outbox.adapters.models import HASH_KEY, RANGE_KEY, MessageRecordModel, OutboxEntryModel, bind_models
from outbox.domain.envelope import NOTIFICATION_TYPE, Envelope
from outbox.domain.errors import (
    CancellationReason,
    FieldError,
    IdempotencyKeyReusedError,
    InvalidTransitionError,
    ItemPart,
    NotFoundError,
    OutboxError,
    TransactionCancelledError,
    ValidationError,
)
from outbox.domain.record import (
    RECORD_SK,
    AcceptResult,
    HistoryEntry,
    MessageRecord,
    TransitionResult,
    bucket_of,
    iso,
    outbox_pk,
    outbox_sk,
    record_pk,
    utc_now,
)
from outbox.domain.status import Status, check_sources, sources_of
from outbox.logs import debug_enabled
from outbox.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from pynamodb.transactions import TransactWrite

log = structlog.get_logger("outbox.store")


MAX_TRANSACT_ITEMS = 100  # TransactWriteItems' limit


@dataclass(frozen=True)
class OutboxMessage:
    """A message ready to join a transaction: its envelope and the two items that store it.

    ``transact_items`` are low-level ``TransactItems`` entries (``{"Put": {...}}``): the PENDING
    record, which refuses to overwrite an existing message, and the outbox entry the stream relays.
    """

    envelope: Envelope
    idempotency_key: str | None
    transact_items: list[dict[str, Any]]
    models: tuple[MessageRecordModel, OutboxEntryModel] = field(repr=False, compare=False)

    @property
    def message_id(self) -> str:
        """The id every copy of the message carries."""
        return self.envelope.message_id


class DynamoDBMessageStore:
    """Records and outbox entries in one DynamoDB table; every write is one request."""

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient,
        hash_key: str = HASH_KEY,
        range_key: str = RANGE_KEY,
        buckets: int = 16,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        if buckets < 1:
            raise ValueError("buckets must be at least 1")
        self.table_name = table_name
        self.client = client
        self.buckets = buckets
        self.retention = retention
        self._models = bind_models(table_name, hash_key, range_key)
        # Requests are built by PynamoDB once, then filled in per call (see RequestTemplate).
        self._transitions: dict[tuple[Status, frozenset[Status] | None, bool], _Transition] = {}
        record = self._models.record
        # A message is written once: its record never replaces another (the old one comes back instead).
        self._new_record = record.pk.does_not_exist()
        self._new_entry = self._models.entry.pk.does_not_exist()
        pending = record.pk.exists() & (record.status == Status.PENDING.value)
        self._relay_failure = RequestTemplate(
            _update_request(record, [record.relay_attempts.add(1)], pending, "UPDATED_OLD")
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, client: DynamoDBClient | None = None) -> DynamoDBMessageStore:
        """The store the settings describe, on ``client`` or a new client for their region."""
        return cls(
            settings.table_name,
            client=client or dynamodb_client(settings.region),
            hash_key=settings.hash_key,
            range_key=settings.range_key,
            buckets=settings.buckets,
            retention=settings.retention,
        )

    def prepare(self, envelope: Envelope, *, idempotency_key: str | None, by: str) -> OutboxMessage:
        """The record and outbox entry of a new message, as PynamoDB models and as TransactItems."""
        record_model, entry_model = self._models
        bucket_pk = outbox_pk(bucket_of(envelope.group_key or envelope.message_id, self.buckets))
        entry_sk = outbox_sk(envelope.created_at, envelope.message_id)
        record = record_model(
            record_pk(envelope.message_id),
            RECORD_SK,
            message_id=envelope.message_id,
            status=Status.PENDING.value,
            type=envelope.type,
            payload=envelope.payload_json(),
            payload_hash=envelope.payload_hash(),
            idempotency_key=idempotency_key,
            group_key=envelope.group_key,
            trace_id=envelope.trace_id,
            outbox_pk=bucket_pk,
            outbox_sk=entry_sk,
            created_at=envelope.created_at,
            updated_at=envelope.created_at,
            history=[{"status": Status.PENDING.value, "at": envelope.created_at, "by": by}],
            attempts=0,
        )
        entry = entry_model(
            bucket_pk,
            entry_sk,
            message_id=envelope.message_id,
            group_key=envelope.group_key,
            envelope=envelope.to_json(),
            created_at=envelope.created_at,
            expires_at=datetime.fromisoformat(envelope.created_at) + self.retention,
        )
        items = [
            {
                "Put": record.get_save_kwargs_from_instance(
                    self._new_record, return_values_on_condition_failure="ALL_OLD"
                )
            },
            {"Put": entry.get_save_kwargs_from_instance(self._new_entry)},
        ]
        return OutboxMessage(envelope, idempotency_key, items, (record, entry))

    def add_to(self, transaction: TransactWrite, message: OutboxMessage) -> None:
        """Put ``message``'s record and entry into a PynamoDB ``TransactWrite``, with the same conditions."""
        record, entry = message.models
        transaction.save(record, condition=self._new_record, return_values="ALL_OLD")
        transaction.save(entry, condition=self._new_entry)

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

    def accept(self, envelope: Envelope, *, idempotency_key: str | None, by: str = "api") -> AcceptResult:
        """One TransactWriteItems: the record (if new) and its outbox entry, or the existing message."""
        message = self.prepare(envelope, idempotency_key=idempotency_key, by=by)
        try:
            self.client.transact_write_items(TransactItems=message.transact_items)  # type: ignore[arg-type]
        except AWS_ERRORS as exc:
            existing = _cancelled_by_existing(exc)
            if existing is None:
                raise _write_error(exc, 0, [message]) from exc
            old = self._models.record.from_raw_data(existing)
            if old.payload_hash != message.models[0].payload_hash:
                raise IdempotencyKeyReusedError(envelope.message_id) from exc
            return AcceptResult(envelope.message_id, Status(old.status), created=False)
        log.info("message_accepted", message_id=envelope.message_id, type=envelope.type, by=by)
        return AcceptResult(envelope.message_id, Status.PENDING, created=True)

    def get(self, message_id: str) -> MessageRecord:
        """Read one record, strongly consistent."""
        record_model = self._models.record
        kwargs = record_model.get_operation_kwargs_from_class(record_pk(message_id), RECORD_SK)
        try:
            response = self.client.get_item(**kwargs, ConsistentRead=True)
        except AWS_ERRORS as exc:
            raise translate(exc, "GetItem") from exc
        if "Item" not in response:
            raise NotFoundError(f"no message {message_id}")
        return _to_domain(record_model.from_raw_data(dict(response["Item"])))

    def transition(
        self,
        message_id: str,
        to: Status,
        *,
        by: str,
        reason: str | None = None,
        expected: frozenset[Status] | None = None,
    ) -> TransitionResult:
        """One conditional UpdateItem: set the status fields and append to the history, nothing else."""
        key = (to, expected, bool(reason))
        transition = self._transitions.get(key)
        if transition is None:  # first use: check the edges once, let PynamoDB build the request
            sources = check_sources(to, expected if expected is not None else sources_of(to))
            request = _transition_request(self._models.record, to, sources, with_reason=bool(reason))
            transition = self._transitions[key] = (RequestTemplate(request), sources)
        template, sources = transition
        request = template.fill(message_id=message_id, now=iso(utc_now()), by=by, reason=reason or "")
        old = self._update(message_id, request, to)
        if request["ReturnValues"] == "NONE":
            (previous,) = sources  # the condition allowed exactly this one
        else:  # UPDATED_OLD may leave out an attribute whose value did not change (PROCESSING -> PROCESSING).
            previous = Status(old["status"]["S"]) if "status" in old else to
        # Only PROCESSING (+1) and QUEUED (reset) touch attempts; UPDATED_OLD returns nothing else of it.
        attempts = int(old.get("attempts", {}).get("N", "0")) + 1 if to is Status.PROCESSING else 0
        if debug_enabled():  # one line per message and transition: the record's history already has it
            log.debug("status_changed", message_id=message_id, **{"from": previous.value}, to=to.value, by=by)
        return TransitionResult(message_id, previous, to, attempts)

    def count_relay_failure(self, message_id: str) -> int:
        """ADD 1 to ``relay_attempts`` of a PENDING record; returns the new count."""
        old = self._update(message_id, self._relay_failure.fill(message_id=message_id), Status.PENDING)
        return int(old.get("relay_attempts", {}).get("N", "0")) + 1

    def _update(self, message_id: str, request: dict[str, Any], to: Status) -> dict[str, Any]:
        """Run one conditional UpdateItem; returns the old values of the updated attributes (if asked for)."""
        try:
            response = self.client.update_item(**request)
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise translate(exc, "UpdateItem") from exc
            item: dict[str, Any] = exc.response.get("Item") or {}  # type: ignore[assignment]
            current = Status(item["status"]["S"]) if "status" in item else None
            raise InvalidTransitionError(message_id, current=current, to=to) from exc
        except AWS_ERRORS as exc:
            raise translate(exc, "UpdateItem") from exc
        return dict(response.get("Attributes") or {})


def _marker(name: str) -> str:
    """A placeholder for a per-call value inside a request template."""
    return f"\x00{name}\x00"


_MARKER = re.compile("\x00([a-z_]+)\x00")


class RequestTemplate:
    """A request PynamoDB built once with markers where the per-call values go.

    Building a conditional UpdateItem with PynamoDB's expression objects costs as much CPU as a
    third of botocore's work for the call; a flip's expression, names and placeholders depend only
    on the transition, so they are built once and the key, the time, the actor and the reason are
    filled in per call. The template is compiled once into a function whose body is the request as
    a Python literal with each marker replaced by its parameter (as ``dataclasses`` and
    ``namedtuple`` generate code): every call builds a fresh request, about 3 µs, and values are
    only concatenated, never scanned, so one that looks like a marker stays as it is.
    """

    def __init__(self, request: dict[str, Any]) -> None:
        names: set[str] = set()
        body = _literal(request, names)
        if not all(name.isidentifier() and not keyword.iskeyword(name) for name in names):
            raise ValueError(f"marker names must be identifiers: {sorted(names)}")
        source = f"lambda {''.join(f'{name}, ' for name in sorted(names))}**_: {body}"
        self._build: Callable[..., dict[str, Any]] = eval(source, {"__builtins__": {}})  # noqa: S307 - our literal

    def fill(self, **values: str) -> dict[str, Any]:
        """A new request with every marker replaced by its value (values for absent markers are ignored)."""
        return self._build(**values)


def _literal(value: Any, names: set[str]) -> str:
    """Python source that builds ``value`` (JSON-like), each marker an expression of its name (added to ``names``)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key!r}: {_literal(item, names)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(item, names) for item in value) + "]"
    if isinstance(value, str):  # split: literal text at even positions, marker names at odd ones
        terms = []
        for index, part in enumerate(_MARKER.split(value)):
            if index % 2:
                names.add(part)
                terms.append(part)
            elif part:
                terms.append(repr(part))
        return " + ".join(terms) or "''"
    if isinstance(value, (int, float, bool)) or value is None:
        return repr(value)
    raise TypeError(f"a request template cannot hold a {type(value).__name__}")


_Transition = tuple[RequestTemplate, frozenset[Status]]  # the request and the statuses it moves from


def _transition_request(
    model: type[MessageRecordModel], to: Status, sources: frozenset[Status], *, with_reason: bool
) -> dict[str, Any]:
    """A transition's UpdateItem with markers for the message id, the time, the actor and the reason.

    The old values are asked for only when the result needs them: which status it came from
    (several sources) or the attempts count (PROCESSING).
    """
    now, reason_value = _marker("now"), _marker("reason")
    line: dict[str, str] = {"status": to.value, "at": now, "by": _marker("by")}
    actions: list[Any] = [
        model.status.set(to.value),
        model.updated_at.set(now),
        model.history.set(model.history.append([line | ({"reason": reason_value} if with_reason else {})])),
    ]
    if with_reason:
        actions.append(model.reason.set(reason_value))
    if to is Status.PROCESSING:
        actions.append(model.attempts.add(1))
    elif to is Status.QUEUED:
        actions.append(model.attempts.set(0))  # a re-driven message gets a fresh delivery budget
    condition = model.pk.exists() & model.status.is_in(*(s.value for s in sorted(sources)))
    return_values = "UPDATED_OLD" if len(sources) > 1 or to is Status.PROCESSING else "NONE"
    return _update_request(model, actions, condition, return_values)


def _update_request(
    model: type[MessageRecordModel], actions: list[Any], condition: Any, return_values: str
) -> dict[str, Any]:
    """PynamoDB's UpdateItem for the record of the marked message id."""
    kwargs = model(record_pk(_marker("message_id")), RECORD_SK).get_update_kwargs_from_instance(
        actions, condition, return_values_on_condition_failure="ALL_OLD"
    )
    return {**kwargs, "ReturnValues": return_values}


def _cancellation_reasons(exc: ClientError) -> list[dict[str, Any]] | None:
    """The per-item reasons of a cancelled transaction, or None for any other error."""
    if error_code(exc) != "TransactionCanceledException":
        return None
    return list(exc.response.get("CancellationReasons") or [])  # type: ignore[arg-type]


def _cancelled_by_existing(exc: Exception) -> dict[str, Any] | None:
    """The existing record, when a one-message transaction was cancelled only because the record exists."""
    reasons = _cancellation_reasons(exc) if isinstance(exc, ClientError) else None
    if reasons and reasons[0].get("Code") == "ConditionalCheckFailed" and "Item" in reasons[0]:
        return dict(reasons[0]["Item"])
    return None


def _write_error(exc: Exception, caller_items: int, messages: Sequence[OutboxMessage]) -> OutboxError:
    """A TransactionCancelledError naming each failed item, or the translated AWS error."""
    reasons = _cancellation_reasons(exc) if isinstance(exc, ClientError) else None
    if reasons is None:
        return translate(exc, "TransactWriteItems")
    owners: list[tuple[ItemPart, str | None]] = [(ItemPart.CALLER, None)] * caller_items
    for message in messages:
        owners += [(ItemPart.RECORD, message.message_id), (ItemPart.ENTRY, message.message_id)]
    failed = []
    for index, reason in enumerate(reasons):
        code = str(reason.get("Code") or "None")
        if code != "None":
            part, message_id = owners[index] if index < len(owners) else (ItemPart.CALLER, None)
            failed.append(CancellationReason(index, part, code, str(reason.get("Message") or ""), message_id))
    return TransactionCancelledError(failed)


def _to_domain(model: MessageRecordModel) -> MessageRecord:
    history = tuple(HistoryEntry(Status(h.status), h.at, h.by, h.reason) for h in model.history)
    return MessageRecord(
        message_id=model.message_id,
        status=Status(model.status),
        payload_hash=model.payload_hash,
        created_at=model.created_at,
        updated_at=model.updated_at,
        history=history,
        type=model.type or NOTIFICATION_TYPE,
        payload=json.loads(model.payload),
        group_key=model.group_key,
        attempts=int(model.attempts or 0),
        relay_attempts=int(model.relay_attempts or 0),
        reason=model.reason,
    )
