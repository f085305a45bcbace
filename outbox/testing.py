"""In-memory fakes of the ports, for your tests and ours (no AWS at all).

They keep the same contracts as the real adapters: ``accept`` is all-or-nothing with the same
idempotency rules, ``transition`` is conditional on the lifecycle table, the publisher reports
per-entry refusals the way SendMessageBatch does, and the sweep source reads the store's
PENDING records (a page of keys per query, records when asked for) and those in flight, and the
outbox reader its outbox entries, in outbox order (bucket, then time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from outbox.domain.clock import WRITE_CLOCK
from outbox.domain.envelope import Envelope
from outbox.domain.errors import (
    IdempotencyKeyReusedError,
    InvalidTransitionError,
    NotFoundError,
    OutboxError,
)
from outbox.domain.keys import IN_FLIGHT_PARTITIONS, bucket_of, iso, outbox_sk, utc_now
from outbox.domain.layout import DEFAULT_BUCKETS, DEFAULT_HASH_KEY, DEFAULT_RANGE_KEY
from outbox.domain.record import HistoryEntry, Lease, MessageRecord
from outbox.domain.results import AcceptResult, TransitionResult
from outbox.domain.status import ENDED, Status, check_sources, sources_of
from outbox.domain.trace import trace_header
from outbox.ports import (
    BatchOutcome,
    MessageStore,
    OutboxReader,
    OutgoingMessage,
    PendingKey,
    Publisher,
    SendFailure,
    StoredEntry,
    SweepSource,
    SweptRecord,
    Visibility,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_dynamodbstreams.type_defs import GetShardIteratorInputTypeDef

__all__ = [
    "FakeLambdaContext",
    "FakePublisher",
    "FakeVisibility",
    "InMemoryMessageStore",
    "InMemoryOutboxReader",
    "InMemorySweepSource",
    "outbox_insert",
    "stream_records",
]


def outbox_insert(
    envelope: Envelope,
    sequence_number: str,
    overrides: dict[str, Any] | None = None,
    *,
    hash_key: str = DEFAULT_HASH_KEY,
    range_key: str = DEFAULT_RANGE_KEY,
    sequence: str | None = None,
) -> dict[str, Any]:
    """The stream record Lambda delivers for ``envelope``'s outbox entry (``overrides`` replace image attributes).

    ``sequence``: its write sequence, as ``InMemoryMessageStore.sequences`` keeps it (None: a 0.1.0 key).
    """
    image: dict[str, Any] = (
        {
            hash_key: {"S": "OUTBOX#0001"},
            range_key: {"S": outbox_sk(envelope.created_at, envelope.message_id, sequence)},
            "message_id": {"S": envelope.message_id},
            "envelope": {"S": envelope.body()},
            "created_at": {"S": envelope.created_at},
            "expires_at": {"N": "1900000000"},
        }
        | ({"trace_id": {"S": envelope.trace_id}} if envelope.trace_id else {})
        | (overrides or {})
    )
    keys = {hash_key: image[hash_key], range_key: image[range_key]}
    return {"eventName": "INSERT", "dynamodb": {"Keys": keys, "NewImage": image, "SequenceNumber": sequence_number}}


def stream_records(
    streams: DynamoDBStreamsClient,
    stream_arn: str,
    *,
    after: str | None = None,
    shard_id: str | None = None,
) -> list[dict[str, Any]]:
    """Every record of a table's stream, as GetRecords returns them, page by page until a page is empty.

    From the trim horizon, or after the sequence number ``after``; of ``shard_id``, or of the first
    shard (moto and the local emulator keep one per stream).
    """
    if shard_id is None:
        shard_id = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    start: GetShardIteratorInputTypeDef = {
        "StreamArn": stream_arn,
        "ShardId": shard_id,
        "ShardIteratorType": "TRIM_HORIZON",
    }
    if after:
        start["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
        start["SequenceNumber"] = after
    iterator: str | None = streams.get_shard_iterator(**start)["ShardIterator"]
    records: list[dict[str, Any]] = []
    while iterator:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        records += cast("list[dict[str, Any]]", page.get("Records", []))
        iterator = page.get("NextShardIterator") if page.get("Records") else None
    return records


@dataclass
class InMemoryMessageStore:
    """A MessageStore in a dict; ``fail_next`` makes the next call of an operation raise.

    ``lose_answer_next`` makes the next call of an operation (``"transition"``, or
    ``"transition:COMPLETED"`` for the next move to that status; ``"release"``) take effect and
    then raise, as an answer lost to a timeout or a 500: a leased transition tried again meets its
    own effect and recognises it, as the DynamoDB store does.
    """

    records: dict[str, MessageRecord] = field(default_factory=dict)
    envelopes: dict[str, Envelope] = field(default_factory=dict)
    sequences: dict[str, str] = field(default_factory=dict)  # message_id -> its write sequence
    fail_next: dict[str, OutboxError] = field(default_factory=dict)
    lose_answer_next: dict[str, OutboxError] = field(default_factory=dict)
    record_retention: timedelta = timedelta(days=30)
    reads: list[tuple[str, str]] = field(default_factory=list)  # (operation, message_id) of each read, in order
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _maybe_fail(self, operation: str) -> None:
        error = self.fail_next.pop(operation, None)
        if error is not None:
            raise error

    def _maybe_lose_answer(self, operation: str) -> None:
        """After the operation took effect: raise, as a lost answer does, if armed."""
        error = self.lose_answer_next.pop(operation, None)
        if error is not None:
            raise error

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
        """Store a PENDING record and its envelope, or return the owner's existing one (at its id or an earlier one)."""
        with self._lock:
            self._maybe_fail("accept")
            found = (self.records.get(m) for m in (envelope.message_id, *earlier_ids))
            existing = next((record for record in found if record is not None), None)
            if existing is not None:
                if existing.owner not in (owners if owners is not None else {owner}):
                    raise IdempotencyKeyReusedError(None)
                if existing.payload_hash != envelope.payload_hash():
                    raise IdempotencyKeyReusedError(existing.message_id)
                return AcceptResult(existing.message_id, existing.status, created=False)
            self.records[envelope.message_id] = MessageRecord(
                message_id=envelope.message_id,
                status=Status.PENDING,
                payload_hash=envelope.payload_hash(),
                created_at=envelope.created_at,
                updated_at=envelope.created_at,
                history=(HistoryEntry(Status.PENDING, envelope.created_at, by),),
                type=envelope.type,
                payload=envelope.payload,
                group_key=envelope.group_key,
                owner=owner,
                trace_id=envelope.trace_id,
            )
            self.envelopes[envelope.message_id] = envelope
            self.sequences[envelope.message_id] = sequence or WRITE_CLOCK.loose_sequence()
            return AcceptResult(envelope.message_id, Status.PENDING, created=True)

    def place(self, message_id: str) -> str:
        """The sort key of a message's outbox entry, as the table would hold it."""
        with self._lock:
            record = self.records[message_id]
            return outbox_sk(record.created_at, message_id, self.sequences.get(message_id))

    def get(self, message_id: str) -> MessageRecord:
        """The record, or NotFoundError."""
        with self._lock:
            self._maybe_fail("get")
            self.reads.append(("get", message_id))
            if message_id not in self.records:
                raise NotFoundError(f"no message {message_id}")
            return self.records[message_id]

    def stored_owner(self, message_id: str) -> str | None:
        """The record's owner ("" without one), None without a record."""
        with self._lock:
            self._maybe_fail("stored_owner")
            self.reads.append(("stored_owner", message_id))
            record = self.records.get(message_id)
            return None if record is None else record.owner or ""

    def view(self, message_id: str) -> MessageRecord:
        """The record as a caller's read shows it (no lease), or NotFoundError."""
        with self._lock:
            self._maybe_fail("view")
            self.reads.append(("view", message_id))
            if message_id not in self.records:
                raise NotFoundError(f"no message {message_id}")
            return replace(self.records[message_id], lease=None)

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
        """Move the record if its status is one of ``expected`` and the lease allows; else InvalidTransitionError.

        Taking a lease returns the record as it was (``TransitionResult.record``), as the real store's write does.
        """
        sources = check_sources(to, expected if expected is not None else sources_of(to))
        with self._lock:
            self._maybe_fail("transition")
            record = self.records.get(message_id)
            at = utc_now()
            now = iso(at)
            if record is not None and not _admits(record, to, sources, lease, now) and _own_effect(record, to, lease):
                # The condition failed on this writer's own effect: an earlier try, its answer lost.
                previous = record.history[-2].status if len(record.history) >= 2 else to
                attempts = record.attempts if to in (Status.PROCESSING, Status.QUEUED) else 0
                returned = record if to is Status.PROCESSING and lease is not None else None
                return TransitionResult(message_id, previous, to, attempts, repeated=True, record=returned)
            if record is None or not _admits(record, to, sources, lease, now):
                until = record.lease.until if record is not None and record.lease is not None else None
                raise InvalidTransitionError(
                    message_id, current=record.status if record else None, to=to, lease_until=until
                )
            attempts = record.attempts + 1 if to is Status.PROCESSING else 0 if to is Status.QUEUED else record.attempts
            result_attempts = attempts if to in (Status.PROCESSING, Status.QUEUED) else 0
            held = lease if to is Status.PROCESSING else None
            self.records[message_id] = replace(
                record,
                status=to,
                updated_at=now,
                history=(*record.history, HistoryEntry(to, now, by, reason)),
                attempts=attempts,
                reason=reason if reason else record.reason,
                lease=held if lease is not None or to is not Status.PROCESSING else record.lease,
                expires_at=int((at + self.record_retention).timestamp()) if to in ENDED else None,
                ended_lease_owner=_ended_by(record, to, sources, lease),
            )
            self._maybe_lose_answer(f"transition:{to.value}")
            self._maybe_lose_answer("transition")
            returned = record if to is Status.PROCESSING and lease is not None else None
            return TransitionResult(message_id, record.status, to, result_attempts, record=returned)

    def release(self, message_id: str, lease: Lease) -> None:
        """End the lease now if ``lease``'s owner still holds the message."""
        with self._lock:
            self._maybe_fail("release")
            record = self.records.get(message_id)
            held = record is not None and record.status is Status.PROCESSING and record.lease is not None
            if not held or record is None or record.lease is None or record.lease.owner != lease.owner:
                raise InvalidTransitionError(
                    message_id, current=record.status if record else None, to=Status.PROCESSING
                )
            self.records[message_id] = replace(record, lease=Lease(lease.owner, iso(utc_now())))
            self._maybe_lose_answer("release")

    def count_relay_failure(self, message_id: str) -> int:
        """Count a failed relay of a PENDING record."""
        with self._lock:
            self._maybe_fail("count_relay_failure")
            record = self.records.get(message_id)
            if record is None or record.status is not Status.PENDING:
                raise InvalidTransitionError(message_id, current=record.status if record else None, to=Status.PENDING)
            self.records[message_id] = replace(record, relay_attempts=record.relay_attempts + 1)
            return record.relay_attempts + 1

    def new_send_generation(
        self,
        message_id: str,
        *,
        expected: frozenset[Status],
        updated_at: str | None = None,
        generation: int | None = None,
    ) -> int:
        """One more send generation of a record in ``expected`` (PROCESSING: with no live lease), as read if given."""
        with self._lock:
            self._maybe_fail("new_send_generation")
            record = self.records.get(message_id)
            now = iso(utc_now())
            held = record is not None and record.status is Status.PROCESSING and _live(record.lease, now)
            moved = (
                record is not None
                and updated_at is not None
                and (record.updated_at != updated_at or record.send_generation != (generation or 0))
            )
            if record is None or record.status not in expected or held or moved:
                raise InvalidTransitionError(message_id, current=record.status if record else None, to=Status.QUEUED)
            self.records[message_id] = replace(record, send_generation=record.send_generation + 1)
            return record.send_generation + 1

    def note_resent(self, message_id: str, generation: int) -> None:
        """Note when a re-send in flight was sent, if the record is still at ``generation``."""
        with self._lock:
            self._maybe_fail("note_resent")
            record = self.records.get(message_id)
            if record is None or record.send_generation != generation:
                raise InvalidTransitionError(message_id, current=record.status if record else None, to=Status.QUEUED)
            self.records[message_id] = replace(record, sent_at=iso(utc_now()))


@dataclass
class InMemorySweepSource:
    """A SweepSource over an InMemoryMessageStore: its PENDING records by bucket, in time order, page by page.

    It pages as the real index does: each page of keys is read from the store when it is asked for
    (after the last key of the page before), and records only when ``records`` is called. It
    counts both: ``queries`` (pages of keys read) and ``records_read`` (records read back).
    ``listed_after_move`` plays the index's lag: those messages stay listed once they moved on.
    """

    store: InMemoryMessageStore
    buckets: int = DEFAULT_BUCKETS
    page_size: int = 500
    reads: list[list[str]] = field(default_factory=list)  # the ids of each moved_on call
    queries: int = 0
    records_read: int = 0
    listed_after_move: set[str] = field(default_factory=set)

    def keys(self, bucket: int, before: str | None = None) -> Iterator[list[PendingKey]]:
        """The keys of ``bucket``'s PENDING records placed before ``before`` (all, if None), a page at a time."""
        yield from self._paged(lambda: self._bucket_listing(bucket), before)

    def in_flight_keys(self, partition: int, before: str) -> Iterator[list[PendingKey]]:
        """The keys of in-flight ``partition``'s records that went in flight before ``before``, a page at a time."""
        yield from self._paged(lambda: self._in_flight_listing(partition), before)

    def _paged(self, listing: Callable[[], list[PendingKey]], before: str | None) -> Iterator[list[PendingKey]]:
        after: PendingKey | None = None
        while True:
            page = self._keys_page(listing, before, after)
            if page:
                yield page
            if len(page) < self.page_size:
                return
            after = page[-1]

    def _keys_page(
        self, listing: Callable[[], list[PendingKey]], before: str | None, after: PendingKey | None
    ) -> list[PendingKey]:
        """One page of an index partition, as it stands now."""
        self.queries += 1
        with self.store._lock:
            listed = sorted(listing())
        return [k for k in listed if (after is None or k > after) and (before is None or k.sk < before)][
            : self.page_size
        ]

    def _bucket_listing(self, bucket: int) -> list[PendingKey]:
        return [
            PendingKey(outbox_sk(r.created_at, r.message_id, self.store.sequences.get(r.message_id)), r.message_id)
            for r in self.store.records.values()
            if (r.status is Status.PENDING or r.message_id in self.listed_after_move)
            and bucket_of(r.group_key or r.message_id, self.buckets) == bucket
        ]

    def _in_flight_listing(self, partition: int) -> list[PendingKey]:
        return [
            PendingKey(outbox_sk(_in_flight_since(r), r.message_id), r.message_id)
            for r in self.store.records.values()
            if r.status in _IN_FLIGHT and bucket_of(r.message_id, IN_FLIGHT_PARTITIONS) == partition
        ]

    def records(self, keys: Sequence[PendingKey], *, consistent: bool = True) -> list[SweptRecord]:
        """The records behind ``keys``, in their order, with their current status (always read in full here)."""
        self.records_read += len(keys)
        with self.store._lock:
            found = [(k, self.store.records.get(k.message_id)) for k in keys]
        return [SweptRecord(k.sk, None, None) if r is None else _swept(k.sk, r) for k, r in found]

    def pending(
        self, bucket: int, before: str | None = None, *, known: Callable[[str], bool] | None = None
    ) -> Iterator[list[SweptRecord]]:
        """The PENDING records of ``bucket`` placed before ``before`` (all, if None), less those ``known`` names."""
        for page in self.keys(bucket, before):
            wanted = [k for k in page if not (known and known(k.message_id))]
            if wanted:
                yield self.records(wanted)

    def moved_on(self, message_ids: Iterable[str]) -> set[str]:
        """Of these messages, those whose record is no longer PENDING."""
        self.reads.append(list(message_ids))
        with self.store._lock:
            records = self.store.records
            return {m for m in self.reads[-1] if m in records and records[m].status is not Status.PENDING}


@dataclass
class InMemoryOutboxReader:
    """An OutboxReader over an InMemoryMessageStore: an entry per envelope it keeps, a status per record.

    Deleting ``store.envelopes[message_id]`` plays an outbox entry that expired (its record stays).
    """

    store: InMemoryMessageStore
    buckets: int = DEFAULT_BUCKETS
    page_size: int = 500

    def pages(
        self,
        lower_sk: str,
        upper_sk: str,
        *,
        buckets: Iterable[int] | None = None,
        after: tuple[int, str] | None = None,
    ) -> Iterator[list[StoredEntry]]:
        """Entries with ``lower_sk <= sk <= upper_sk``, bucket by bucket, in sort-key order, after ``after``."""
        wanted = set(buckets if buckets is not None else range(self.buckets))
        entries = [
            e
            for e in self._entries()
            if e.bucket in wanted and lower_sk <= e.sk <= upper_sk and (after is None or e.position > after)
        ]
        for bucket in sorted(wanted):
            found = [e for e in entries if e.bucket == bucket]
            for start in range(0, len(found), self.page_size):
                yield found[start : start + self.page_size]

    def count(self, lower_sk: str, upper_sk: str, *, buckets: Iterable[int] | None = None) -> int:
        """How many entries ``pages`` would read."""
        return sum(len(page) for page in self.pages(lower_sk, upper_sk, buckets=buckets))

    def entries_for(self, message_ids: Iterable[str]) -> list[StoredEntry]:
        """The entries of these messages that have a record and an entry, in replay order."""
        wanted = set(message_ids)
        with self.store._lock:
            have_record = wanted & set(self.store.records)
        return [e for e in self._entries() if e.message_id in have_record]

    def statuses(self, message_ids: Iterable[str]) -> dict[str, Status]:
        """The current status of each of these messages that has a record."""
        with self.store._lock:
            return {m: self.store.records[m].status for m in message_ids if m in self.store.records}

    def bucket_of_group(self, group_key: str) -> int:
        """The one bucket a group's entries live in."""
        return bucket_of(group_key, self.buckets)

    def _entries(self) -> list[StoredEntry]:
        """Every entry, in replay order (bucket, then sort key)."""
        with self.store._lock:
            envelopes = list(self.store.envelopes.values())
            sequences = dict(self.store.sequences)
        entries = [
            StoredEntry(
                bucket_of(e.group_key or e.message_id, self.buckets),
                outbox_sk(e.created_at, e.message_id, sequences.get(e.message_id)),
                e.message_id,
                e.body(),
                e.group_key,
                e.trace_id,
            )
            for e in envelopes
        ]
        return sorted(entries, key=lambda entry: entry.position)


_IN_FLIGHT = frozenset({Status.QUEUED, Status.PROCESSING})


def _in_flight_since(record: MessageRecord) -> str:
    """When the record last went in flight (the real index's sort key for it): its first line of this flight."""
    since = record.created_at
    previous: Status | None = None
    for line in record.history:
        if line.status in _IN_FLIGHT and previous not in _IN_FLIGHT:
            since = line.at
        previous = line.status
    return since


def _swept(sk: str, record: MessageRecord) -> SweptRecord:
    """A record as the sweep source reads it back: what re-sending needs, never the payload.

    Whether its outbox entry is still there (``store.envelopes``) does not matter, as on the table.
    """
    return SweptRecord(
        sk,
        record.message_id,
        record.status,
        record.created_at,
        group_key=record.group_key,
        trace_id=trace_header(record.trace_id),
        updated_at=record.updated_at,
        lease_until=record.lease.until if record.lease else None,
        generation=record.send_generation,
        sent_at=record.sent_at,
    )


def _live(lease: Lease | None, now: str) -> bool:
    return lease is not None and lease.until > now


def _admits(record: MessageRecord, to: Status, sources: frozenset[Status], lease: Lease | None, now: str) -> bool:
    """The store's condition: a source status; under a lease, PROCESSING only once expired, finished by its owner."""
    if record.status not in sources:
        return False
    if lease is None or record.status is not Status.PROCESSING:
        return True
    if to is Status.PROCESSING:  # taking it over
        return record.lease is None or record.lease.until <= now
    return sources != frozenset({Status.PROCESSING}) or (record.lease is not None and record.lease.owner == lease.owner)


def _own_effect(record: MessageRecord, to: Status, lease: Lease | None) -> bool:
    """Whether a record that refused this leased transition shows it made by this lease's owner (an earlier try).

    As the DynamoDB store: the owner holds PROCESSING (a live lease, since the move was refused),
    or ended the record. (The store also knows
    an unleased write by botocore resending the very same request; a call here is never resent.)
    """
    if record.status is not to or lease is None:
        return False
    if to is Status.PROCESSING:
        return record.lease is not None and record.lease.owner == lease.owner
    return to in ENDED and record.ended_lease_owner == lease.owner


def _ended_by(record: MessageRecord, to: Status, sources: frozenset[Status], lease: Lease | None) -> str | None:
    """``ended_lease_owner`` after a transition: set by an end under a lease, cleared by a re-drive, else kept."""
    if lease is not None and to in ENDED and sources == frozenset({Status.PROCESSING}):
        return lease.owner
    if to not in ENDED and sources & ENDED:
        return None
    return record.ended_lease_owner


Refusal = tuple[str, bool]  # (code, sender_fault)


@dataclass
class FakePublisher:
    """A Publisher that keeps what it was sent.

    ``refuse`` maps a message_id to the (code, sender_fault) SQS would put in ``Failed``;
    ``fail_next`` makes the next whole request raise; ``after_send`` runs after every accepted batch.
    """

    fifo: bool = False
    sent: list[OutgoingMessage] = field(default_factory=list)
    batches: list[list[str]] = field(default_factory=list)
    refuse: dict[str, Refusal] = field(default_factory=dict)
    fail_next: list[OutboxError] = field(default_factory=list)
    after_send: Callable[[Sequence[OutgoingMessage]], None] | None = None

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> BatchOutcome:
        """Accept every message not listed in ``refuse``."""
        if not 0 < len(messages) <= 10:
            raise ValueError("a batch holds 1 to 10 messages")
        self.batches.append([m.message_id for m in messages])
        if self.fail_next:
            raise self.fail_next.pop(0)
        accepted: list[int] = []
        failed: list[SendFailure] = []
        for index, message in enumerate(messages):
            refusal = self.refuse.get(message.message_id)
            if refusal is None:
                accepted.append(index)
                self.sent.append(message)
            else:
                failed.append(SendFailure(index, refusal[0], "refused by FakePublisher", refusal[1]))
        if self.after_send is not None:
            self.after_send([messages[i] for i in accepted])
        return BatchOutcome(tuple(accepted), tuple(failed))

    def sent_ids(self) -> list[str]:
        """The message_id of every accepted message, in order."""
        return [m.message_id for m in self.sent]


@dataclass
class FakeLambdaContext:
    """The parts of a Lambda context the handlers read; ``remaining_ms`` may be a callable."""

    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    remaining_ms: int | Callable[[], int] = 60_000

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the (fake) deadline."""
        return self.remaining_ms() if callable(self.remaining_ms) else self.remaining_ms


@dataclass
class FakeVisibility:
    """A Visibility that keeps each delay and each early acknowledgement asked for, by SQS message id."""

    delays: list[tuple[str, int]] = field(default_factory=list)
    acknowledged: list[list[str]] = field(default_factory=list)  # one list per acknowledge call

    def delay(self, record: Mapping[str, Any], seconds: int) -> None:
        """Record the delay."""
        self.delays.append((str(record.get("messageId")), seconds))

    def acknowledge(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Record the copies acknowledged."""
        self.acknowledged.append([str(record.get("messageId")) for record in records])


if TYPE_CHECKING:  # mypy holds each fake to the port it stands for
    _store: MessageStore = InMemoryMessageStore()
    _publisher: Publisher = FakePublisher()
    _visibility: Visibility = FakeVisibility()
    _sweep_source: SweepSource = InMemorySweepSource(InMemoryMessageStore())
    _reader: OutboxReader = InMemoryOutboxReader(InMemoryMessageStore())
