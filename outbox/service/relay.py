"""The relay: send outbox entries to SQS, then flip their records. Shared by the worker and replay.

Order of work per chunk: one SendMessageBatch, then one conditional UpdateItem per accepted entry
(issued concurrently). A record is never flipped before SQS accepted its message, and a flip that
finds the record already moved on is a duplicate delivery, not an error.
"""

from __future__ import annotations

import enum
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

from outbox.domain.envelope import message_body
from outbox.domain.errors import InvalidTransitionError, OutboxError
from outbox.domain.status import Status, sources_of
from outbox.logs import get_logger
from outbox.ports import MAX_BATCH_ENTRIES, BatchOutcome, MessageStore, OutgoingMessage, Publisher, SendFailure

log = get_logger("outbox.service.relay")


@dataclass(frozen=True)
class RelayItem:
    """One outbox entry to relay; ``key`` is what the caller reports back (a SequenceNumber)."""

    key: str
    message_id: str
    body: str
    group_key: str | None = None
    generation: int = 0  # the record's send generation (its FIFO dedup id): new only for a deliberate re-send
    trace_header: str | None = None  # the writer's X-Ray trace header: the copy's AWSTraceHeader

    @classmethod
    def from_record(
        cls, message_id: str, group_key: str | None = None, trace_header: str | None = None, generation: int = 0
    ) -> RelayItem:
        """A message re-sent from its record (the sweeper's, or an older one the stream lost), keyed by its id.

        Only what routing, deduplication and tracing need: the body is the id alone
        (``message_body``, the same bytes as the outbox entry's), so no payload is read to send it.
        """
        return cls(message_id, message_id, message_body(message_id), group_key, generation, trace_header)

    def outgoing(self) -> OutgoingMessage:
        """What the publisher sends for it."""
        return OutgoingMessage(self.message_id, self.body, self.group_key, self.generation, self.trace_header)

    @property
    def ordering_key(self) -> str:
        """Entries with the same ordering key are sent in order, one at a time."""
        return self.group_key or self.message_id

    @cached_property
    def size(self) -> int:
        """Bytes of the body, as SQS counts them."""
        return len(self.body.encode())


class FlipOutcome(enum.Enum):
    """What one flip after a send came to."""

    SENT = "sent"  # sent and flipped
    DUPLICATE = "duplicate"  # the record had already moved on (another copy, the consumer, a replay)
    FAILED = "failed"  # sent, not flipped: the stream's redelivery finishes it


class RecentSends:
    """The messages this process sent lately, and which of those it also flipped (a bounded memory).

    Lambda redelivers a stream batch from its lowest failed record, so everything after it comes
    again: a message this container already sent needs only its flip, and one it already flipped
    needs nothing. ``capacity`` 0 remembers nothing (replay and the sweeper).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._flipped: OrderedDict[str, bool] = OrderedDict()
        self._lock = threading.Lock()

    def was_sent(self, message_id: str) -> bool:
        """Whether SQS accepted this message from this process lately."""
        with self._lock:
            return message_id in self._flipped

    def is_done(self, message_id: str) -> bool:
        """Whether this process sent and flipped it lately."""
        with self._lock:
            return self._flipped.get(message_id, False)

    def sent(self, message_ids: Iterable[str]) -> None:
        """Remember messages SQS accepted."""
        self._remember(message_ids, flipped=False)

    def done(self, message_id: str) -> None:
        """Remember a message whose record has moved on from PENDING."""
        self._remember([message_id], flipped=True)

    def _remember(self, message_ids: Iterable[str], *, flipped: bool) -> None:
        if not self.capacity:
            return
        with self._lock:
            for message_id in message_ids:
                self._flipped[message_id] = flipped or self._flipped.get(message_id, False)
                self._flipped.move_to_end(message_id)
            while len(self._flipped) > self.capacity:
                self._flipped.popitem(last=False)


@dataclass(frozen=True)
class _Flips:
    """The flips of one sent batch, running."""

    items: list[RelayItem]
    futures: list[Future[FlipOutcome]]


@dataclass
class RelayReport:
    """The fate of every item: exactly one list holds each key."""

    sent: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stopped: bool = False  # a request failed or the deadline came: the rest was not tried


@dataclass(frozen=True)
class RelayPolicy:
    """Limits of one relay: batch bytes and entries, poison threshold, Lambda deadline margin, flip pool size."""

    max_batch_bytes: int = 262_144
    batch_entries: int = MAX_BATCH_ENTRIES
    max_attempts: int = 5
    deadline_margin_ms: int = 2_000
    flip_concurrency: int = 10


class Relay:
    """Relays items to a Publisher and flips their records in a MessageStore."""

    def __init__(
        self,
        store: MessageStore,
        publisher: Publisher,
        *,
        policy: RelayPolicy | None = None,
        by: str = "worker",
        expected: frozenset[Status] = frozenset({Status.PENDING}),
        recent: RecentSends | None = None,
    ) -> None:
        """``expected``: what the flip to QUEUED after a send may start from; empty: no flip (a re-send in flight)."""
        self.store = store
        self.publisher = publisher
        self.policy = policy or RelayPolicy()
        self.by = by
        self.expected = expected
        self.recent = recent or RecentSends(0)
        self._pool = ThreadPoolExecutor(max_workers=self.policy.flip_concurrency, thread_name_prefix="flip")

    def relay(self, items: Sequence[RelayItem], *, time_left_ms: Callable[[], int] | None = None) -> RelayReport:
        """Relay ``items`` in order; stop early (reporting the rest as failed) near the deadline.

        The flips of one batch run while the next batch is sent, so latency is paid about once per
        batch. An item whose group still has a flip in flight waits for it, so a failed flip still
        stops its group (fail fast) and a group's order is kept.
        """
        report = RelayReport()
        blocked: set[str] = set()
        inflight: deque[_Flips] = deque()
        pending: list[RelayItem] = []
        for item in items:
            if self.recent.is_done(item.message_id):  # sent and flipped by this process: nothing left to do
                report.duplicates.append(item.key)
            else:
                pending.append(item)
        try:
            while pending:
                self._settle(inflight, blocked, report, wait=False)
                if time_left_ms is not None and time_left_ms() < self.policy.deadline_margin_ms:
                    log.warning("relay_deadline_reached", unsent=len(pending))
                    report.failed.extend(item.key for item in pending)
                    report.stopped = True
                    break
                busy = {item.ordering_key for flips in inflight for item in flips.items}
                chunk, pending = self._next_chunk(pending, blocked, report, busy)
                if not chunk:
                    if not inflight:  # cannot happen: with nothing in flight the first item always fits
                        report.failed.extend(item.key for item in pending)
                        break
                    self._settle(inflight, blocked, report, wait=True, oldest_only=True)
                    continue
                # What this container sent before (a redelivered stream batch) needs only its flip.
                to_send = [item for item in chunk if not self.recent.was_sent(item.message_id)]
                try:
                    outcome = (
                        self.publisher.send_batch(
                            [
                                OutgoingMessage(i.message_id, i.body, i.group_key, i.generation, i.trace_header)
                                for i in to_send
                            ]
                        )
                        if to_send
                        else BatchOutcome(())
                    )
                except OutboxError as exc:
                    # The request itself failed: SQS is unwell, so stop rather than hammer it.
                    log.warning("send_failed", error=exc.code, detail=exc.detail, unsent=len(chunk) + len(pending))
                    report.failed.extend(item.key for item in [*chunk, *pending])
                    report.stopped = True
                    break
                newly_sent = {to_send[i].message_id for i in outcome.accepted}
                self.recent.sent(newly_sent)
                accepted = [item for item in chunk if item.message_id in newly_sent or item not in to_send]
                if accepted:
                    inflight.append(_Flips(accepted, [self._pool.submit(self._flip, item) for item in accepted]))
                for failure in sorted(outcome.failed, key=lambda f: f.index):
                    self._handle_refused(to_send[failure.index], failure, blocked, report)
        finally:
            self._settle(inflight, blocked, report, wait=True)
        return report

    def _next_chunk(
        self, pending: list[RelayItem], blocked: set[str], report: RelayReport, busy: set[str]
    ) -> tuple[list[RelayItem], list[RelayItem]]:
        """Take up to 10 items, one per ordering key, within the byte limit; defer the rest in order."""
        chunk: list[RelayItem] = []
        rest: list[RelayItem] = []
        taken = set(busy)  # a group with a flip in flight waits for its outcome
        size = 0
        for position, item in enumerate(pending):
            if len(chunk) == self.policy.batch_entries:
                rest += pending[position:]  # full: the rest is looked at when its turn comes
                break
            if item.ordering_key in blocked:
                report.failed.append(item.key)  # fail fast: nothing after a failure in its group
                continue
            item_size = item.size
            if item_size > self.policy.max_batch_bytes:
                self._quarantine(
                    item, f"message is {item_size} bytes, over the {self.policy.max_batch_bytes} limit", blocked, report
                )
                continue
            fits = size + item_size <= self.policy.max_batch_bytes  # the chunk has room: full ones stop above
            if item.ordering_key in taken or not fits:
                taken.add(item.ordering_key)  # keep later items of this group behind it
                rest.append(item)
                continue
            taken.add(item.ordering_key)
            chunk.append(item)
            size += item_size
        return chunk, rest

    def _settle(
        self, inflight: deque[_Flips], blocked: set[str], report: RelayReport, *, wait: bool, oldest_only: bool = False
    ) -> None:
        """Record the outcome of finished flips (all, or the oldest batch, when waiting)."""
        while inflight and (wait or all(f.done() for f in inflight[0].futures)):
            flips = inflight.popleft()
            for item, future in zip(flips.items, flips.futures, strict=True):
                outcome = future.result()
                if outcome is FlipOutcome.SENT:
                    report.sent.append(item.key)
                elif outcome is FlipOutcome.DUPLICATE:
                    report.duplicates.append(item.key)
                else:
                    blocked.add(item.ordering_key)
                    report.failed.append(item.key)
            if oldest_only:
                return

    def _flip(self, item: RelayItem) -> FlipOutcome:
        if not self.expected:  # a re-send of a message in flight: it stays where it is
            return FlipOutcome.SENT
        try:
            self.store.transition(item.message_id, Status.QUEUED, by=self.by, expected=self.expected)
        except InvalidTransitionError as exc:
            if exc.current is None:
                log.error("record_missing", message_id=item.message_id)
            else:
                log.info("flip_skipped", message_id=item.message_id, status=exc.current.value)
            self.recent.done(item.message_id)
            return FlipOutcome.DUPLICATE
        except OutboxError as exc:
            # Sent but not flipped: the redelivery flips (and sends again only if this container forgot it).
            log.warning("flip_failed", message_id=item.message_id, error=exc.code, detail=exc.detail)
            return FlipOutcome.FAILED
        self.recent.done(item.message_id)
        return FlipOutcome.SENT

    def _handle_refused(self, item: RelayItem, failure: SendFailure, blocked: set[str], report: RelayReport) -> None:
        """A per-entry refusal: a sender fault never succeeds; a passing one counts towards poison."""
        reason = f"SQS refused the message: {failure.code}"
        if failure.sender_fault:
            self._quarantine(item, reason, blocked, report)
            return
        try:
            attempts = self.store.count_relay_failure(item.message_id)
        except OutboxError as exc:
            log.warning("relay_failure_not_counted", message_id=item.message_id, error=exc.code)
            attempts = 0
        if attempts >= self.policy.max_attempts:
            self._quarantine(item, f"{reason} ({attempts} attempts)", blocked, report)
            return
        log.warning("send_refused", message_id=item.message_id, code=failure.code, attempts=attempts)
        blocked.add(item.ordering_key)
        report.failed.append(item.key)

    def quarantine_message(self, message_id: str, reason: str) -> bool:
        """PENDING -> FAILED with ``reason``; True when done (or already past PENDING), False to retry."""
        targets = self.expected & sources_of(Status.FAILED)
        if not targets:
            return False
        try:
            self.store.transition(message_id, Status.FAILED, by=self.by, reason=reason, expected=targets)
        except InvalidTransitionError as exc:
            log.info("quarantine_skipped", message_id=message_id, status=exc.current.value if exc.current else None)
            return True
        except OutboxError as exc:
            log.warning("quarantine_failed", message_id=message_id, error=exc.code)
            return False
        log.error("message_quarantined", message_id=message_id, reason=reason)
        return True

    def _quarantine(self, item: RelayItem, reason: str, blocked: set[str], report: RelayReport) -> None:
        if self.quarantine_message(item.message_id, reason):
            report.quarantined.append(item.key)
        else:
            blocked.add(item.ordering_key)
            report.failed.append(item.key)

    def close(self) -> None:
        """Stop the flip pool."""
        self._pool.shutdown(wait=True)


def keys_in_order(items: Iterable[RelayItem], keys: Iterable[str]) -> list[str]:
    """``keys`` in the order their items came: what a partial batch response lists."""
    wanted = set(keys)
    return [item.key for item in items if item.key in wanted]
