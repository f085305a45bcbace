"""The interfaces the service layer needs from storage and messaging.

The DynamoDB and SQS adapters satisfy them, and so do the in-memory fakes of ``outbox.testing``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from outbox.domain.envelope import Envelope
from outbox.domain.status import Status

if TYPE_CHECKING:
    from outbox.domain.id_secret import IdSecret  # the API's alone: the other functions never make it
    from outbox.domain.record import Lease, MessageRecord  # read by the API and the consumer, not the worker
    from outbox.domain.results import AcceptResult, TransitionResult

MAX_BATCH_ENTRIES = 10  # SendMessageBatch's limit
MAX_VISIBILITY_S = 43_200  # SQS's longest visibility timeout (12 hours): the most a Visibility can delay

# A Lambda partial batch response (``{"batchItemFailures": [{"itemIdentifier": ...}]}``): what the
# stream, consume and dead-letter use cases answer their event source mappings.
BatchResponse = dict[str, list[dict[str, str]]]


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to put on the queue."""

    message_id: str
    body: str
    group_key: str | None = None
    generation: int = 0  # the record's send generation: a deliberate re-send's copy gets a new FIFO dedup id
    trace_header: str | None = None  # the writer's X-Ray trace header: the copy's AWSTraceHeader


@dataclass(frozen=True)
class SendFailure:
    """One entry SQS refused; ``index`` is its position in the batch."""

    index: int
    code: str
    detail: str
    sender_fault: bool


@dataclass(frozen=True)
class BatchOutcome:
    """Which entries of a batch SQS accepted, and which it refused."""

    accepted: tuple[int, ...]
    failed: tuple[SendFailure, ...] = ()


@dataclass(frozen=True)
class SweptRecord:
    """One record as the sweeper sees it; ``status`` None when the record is gone.

    What re-sending it needs and no more: the copy's body is its id alone (``domain/envelope.py``),
    so neither its payload nor its type is read. ``trace_id`` is an X-Ray trace header, or None.
    """

    sk: str
    message_id: str | None
    status: Status | None
    created_at: str = ""
    group_key: str | None = None
    trace_id: str | None = None
    # What tells whether a message in flight still has a copy somewhere (see ``service.sweep.stranded``).
    updated_at: str = ""
    lease_until: str | None = None
    generation: int = 0
    sent_at: str | None = None


@dataclass(frozen=True, order=True)
class PendingKey:
    """One entry of the record index: a message's place in its partition (sort key, time first) and its id.

    A PENDING message's place in its outbox bucket, or an in-flight one's under its ``SENT#``
    partition. Small (no payload): the sweeper merges the buckets' keys oldest first and reads
    records a page at a time.
    """

    sk: str
    message_id: str


@dataclass(frozen=True)
class StoredEntry:
    """One outbox entry as stored: where it is (bucket, sort key) and what it sends."""

    bucket: int
    sk: str
    message_id: str
    body: str
    group_key: str | None = None
    trace_header: str | None = None  # the entry's ``trace_id``: sent as the copy's AWSTraceHeader

    @property
    def position(self) -> tuple[int, str]:
        """Its place in replay order: bucket, then time."""
        return self.bucket, self.sk


class OutboxReader(Protocol):
    """Where replay reads the outbox: entries by bucket and time range (never the stream), and record statuses."""

    @property
    def page_size(self) -> int:
        """Entries per page of ``pages``."""
        ...

    def pages(
        self,
        lower_sk: str,
        upper_sk: str,
        *,
        buckets: Iterable[int] | None = None,
        after: tuple[int, str] | None = None,
    ) -> Iterator[list[StoredEntry]]:
        """Entries with ``lower_sk <= sk <= upper_sk``, bucket by bucket, in sort-key order, after ``after``."""
        ...

    def count(self, lower_sk: str, upper_sk: str, *, buckets: Iterable[int] | None = None) -> int:
        """How many entries ``pages`` would read."""
        ...

    def entries_for(self, message_ids: Iterable[str]) -> list[StoredEntry]:
        """The outbox entries of these messages (those that have one), in replay order."""
        ...

    def statuses(self, message_ids: Iterable[str]) -> dict[str, Status]:
        """The current status of each of these messages that has a record."""
        ...

    def bucket_of_group(self, group_key: str) -> int:
        """The one bucket a group's entries live in."""
        ...


class SweepSource(Protocol):
    """Where the PENDING messages are found, in outbox order (bucket, then time), and those long in flight.

    The sweeper's and the worker's (PENDING only).
    """

    def keys(self, bucket: int, before: str | None = None) -> Iterator[list[PendingKey]]:
        """The pending index's keys of ``bucket`` (placed before ``before``, if given), in time order.

        One page per index query, each made only when its page is asked for. A record that has just
        moved on may still be listed.
        """
        ...

    def records(self, keys: Sequence[PendingKey], *, consistent: bool = True) -> list[SweptRecord]:
        """The records behind ``keys``, in their order, each with its current status, read strongly by default.

        ``consistent=False`` reads at half the price, and may leave a record out (found as None).
        """
        ...

    def pending(
        self, bucket: int, before: str | None = None, *, known: Callable[[str], bool] | None = None
    ) -> Iterator[list[SweptRecord]]:
        """The PENDING records of ``bucket`` placed before ``before`` (all, if None), in time order, page by page.

        A record that has just moved on may still be listed, with its current status. Messages
        ``known`` says the caller knows about are left out without reading their records.
        """
        ...

    def moved_on(self, message_ids: Iterable[str]) -> set[str]:
        """Of these messages, those whose record is no longer PENDING (it may lag a moment behind)."""
        ...

    def in_flight_keys(self, partition: int, before: str) -> Iterator[list[PendingKey]]:
        """The index's keys of in-flight ``partition`` (QUEUED, PROCESSING) that went in flight before ``before``.

        One page per index query, each made only when its page is asked for, in the order they went
        in flight. A record that has just ended may still be listed (its record says so).
        """
        ...


class IdSecretSource(Protocol):
    """Where the id secret's values come from: Secrets Manager (``adapters/secret.py``), or a value given."""

    def id_secret(self, *, previous: bool = False) -> IdSecret:
        """The secret's values as writes need them: the current one, and the previous one in a rotation's windows.

        Past the windows a source may leave the previous value unread (``IdSecret.previous_unread``);
        ``previous=True`` asks for it too (a read recognising an owner written before the rotation).
        """
        ...


class MessageStore(Protocol):
    """Where records, outbox entries and status changes are kept."""

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
        """Write the PENDING record and its outbox entry atomically, or return the existing message of the same owner.

        ``earlier_ids`` are other ids the same key had (under the id secret's other value): if a
        record exists at one of them, nothing is written and that message is the answer, checked
        in the same transaction. ``owners`` are the owners an existing record of this caller may
        hold (default: ``owner`` alone). ``sequence`` places the message in its writer's order
        (``domain/clock.py``); without one it takes the next place in this process's order.
        """
        ...

    def get(self, message_id: str) -> MessageRecord:
        """Read one record (strongly consistent); NotFoundError if there is none."""
        ...

    def stored_owner(self, message_id: str) -> str | None:
        """The record's owner alone, strongly consistent: None without a record, "" for a record without an owner.

        It reads nothing else, so answering for another caller's record costs what answering for
        no record does.
        """
        ...

    def view(self, message_id: str) -> MessageRecord:
        """What a caller's read shows of its record (status, history, type, times; not the lease); NotFoundError."""
        ...

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
        """One conditional status change; InvalidTransitionError (with the current status) if it lost.

        With a ``lease``: a move to PROCESSING takes it (from PROCESSING only once the old one ran
        out) and its result holds the record (``TransitionResult.record``) from that same write; a
        move out of PROCESSING succeeds only for the lease's owner.
        """
        ...

    def release(self, message_id: str, lease: Lease) -> None:
        """End ``lease`` now if it still holds the message; InvalidTransitionError if it does not."""
        ...

    def count_relay_failure(self, message_id: str) -> int:
        """Count one more failed relay of a PENDING message and return the count."""
        ...

    def new_send_generation(
        self,
        message_id: str,
        *,
        expected: frozenset[Status],
        updated_at: str | None = None,
        generation: int | None = None,
    ) -> int:
        """Before a deliberate re-send: one more send generation, returned, for a record in one of ``expected``.

        A PROCESSING record qualifies only once its lease has run out. With ``updated_at`` and
        ``generation`` (as read a moment ago) the record must still hold them. Otherwise
        InvalidTransitionError (with the current status) and no change. No status change, no
        history line: the copy's own fate is the record's history.
        """
        ...

    def note_resent(self, message_id: str, generation: int) -> None:
        """After SQS accepted a re-send of a message in flight: note when (``sent_at``), if still at ``generation``.

        Noted only once sent, so a re-send that failed is tried again by the next sweep.
        InvalidTransitionError when the record moved to another generation.
        """
        ...


class Visibility(Protocol):
    """When, or whether, a received SQS copy comes back."""

    def delay(self, record: Mapping[str, Any], seconds: int) -> None:
        """Make the copy of this Lambda SQS record visible again in ``seconds`` (best effort)."""
        ...

    def acknowledge(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Delete the copies of these Lambda SQS records now, before the invocation ends (best effort).

        The mapping deletes them anyway once the invocation returns; deleted now, they stay deleted
        should the invocation die before that.
        """
        ...


class Publisher(Protocol):
    """Where messages are sent."""

    @property
    def fifo(self) -> bool:
        """Whether the queue keeps order per group and dedupes by id."""
        ...

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> BatchOutcome:
        """Send up to 10 messages in one request; raise an OutboxError if the request itself failed."""
        ...
