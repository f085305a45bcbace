"""The consume use case: QUEUED -> PROCESSING -> COMPLETED, or FAILED with the reason, around a delivery.

A batch of SQS copies comes in as Lambda's SQS event source mapping delivers it (the local SQS
runner delivers the same), and a partial batch response goes out. It dedupes by ``message_id``
through the record itself: a COMPLETED message is acknowledged and skipped. A copy names its
message and nothing more: the lease write returns the record, and what is delivered is what the
record holds (invariant 11), so a forged or replayed copy can at most start a delivery the
lifecycle allows. Delivery is a plain function of the envelope (``Deliver``); ``log_delivery`` the
one used when none is given. Each copy's log lines carry its trace (``trace_id``): the copy's
``AWSTraceHeader`` until the record is read, the record's after. The handlers around it are
``outbox.consumer``'s (``make_handler``) and ``worker/consumer.py``'s.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import hashlib
import math
import re
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from outbox.domain.envelope import Envelope, message_id_of
from outbox.domain.errors import (
    InvalidTransitionError,
    MalformedEntryError,
    OutboxError,
)
from outbox.domain.keys import iso, utc_now
from outbox.domain.record import Lease
from outbox.domain.results import TransitionResult
from outbox.domain.status import ENDED, Status
from outbox.domain.trace import trace_header
from outbox.logs import get_logger, log_context
from outbox.metrics import MESSAGES_FAILED, emit_metrics

if TYPE_CHECKING:  # the ports' records and Protocols: a consumer's cold start loads none of them
    from outbox.ports import BatchResponse, MessageStore, Visibility

log = get_logger("outbox.service.consume")

BY = "consumer"
# A copy in hand proves SQS accepted the message: it may start before the worker's flip landed.
STARTABLE = frozenset({Status.PENDING, Status.QUEUED, Status.PROCESSING})
PROCESSING = frozenset({Status.PROCESSING})
MAX_REASON_CHARS = 256  # a FAILED reason is stored in the record and served by GET
_MIN_ECHO_CHARS = 4  # payload strings shorter than this are too common to tell apart from prose


@functools.cache  # compiled by the first failure, not by every cold start
def _unsafe() -> re.Pattern[str]:
    """Control, format-breaking and non-characters: what a stored reason shown by GET never holds."""
    return re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


Deliver = Callable[[Envelope], None]


def log_delivery(envelope: Envelope) -> None:
    """The delivery when none is given: the message logged as delivered, by id and type (never its payload)."""
    log.info("message_delivered", message_id=envelope.message_id, type=envelope.type)


class Outcome(enum.StrEnum):
    """What became of one SQS copy (the values are the batch log's and the stats' keys)."""

    COMPLETED = "completed"
    DUPLICATE = "duplicates"  # dropped: another copy finished it, holds it, or it is gone
    FAILED = "failed"
    RETRIED = "retried"  # back to the queue, after a growing visibility delay


class RetryCause(enum.StrEnum):
    """Why a copy went back to the queue (the stats count ``retried_<cause>`` beside ``retried``)."""

    BUSY = "busy"  # another receive holds the message's lease
    GROUP_STOPPED = "group_stopped"  # FIFO: an earlier copy of its group in the batch went back
    STORE_FAULT = "store_fault"  # its lease or end could not be written (faults outlasted the tries)
    NOT_READY = "not_ready"  # its record is not in a state a copy can start (yet)
    DELIVERY_FAILED = "delivery_failed"  # the delivery function raised; tried again later
    REJECTED = "rejected"  # the body is no envelope
    DEADLINE = "deadline"  # not started: the invocation's time was running out


@dataclass(frozen=True)
class ConsumerPolicy:
    """How hard the consumer tries before a message ends FAILED, and how it keeps copies few.

    ``max_receive_count`` is the queue's redrive ``maxReceiveCount``: on that receive a failure
    that would be retried ends FAILED instead, so no copy reaches the dead-letter queue while its
    record is QUEUED or PROCESSING. Retries come back after ``backoff_base_s`` doubled per
    receive, at most ``backoff_max_s``; a copy whose message another receive holds comes back
    once that lease has run out (at least ``busy_delay_s``). ``acknowledge_after`` and
    ``deadline_reserve_s`` keep a dying invocation from giving back copies it had finished or
    would not have started (docs/design.md, "A consumer invocation that dies").
    """

    max_attempts: int = 5
    max_receive_count: int | None = None
    redrive_grace_receives: int = 3
    backoff_base_s: int = 1
    backoff_max_s: int = 120
    busy_delay_s: int = 5
    default_lease_s: int = 60  # without a Lambda context to tell the invocation's deadline
    lease_margin_s: int = 5
    status_write_tries: int = 3
    status_write_pause_s: float = 0.02
    # Finished copies are deleted early, this many a request, while the batch has more to process
    # (0: only the mapping deletes them, once the invocation returned). 2: as few copies come back
    # as with 1 in the chaos run, for half the requests (bench/RESULTS.md).
    acknowledge_after: int = 2
    # A copy is started only while the invocation has this long left beyond its slowest copy so
    # far; the rest go back at once instead of dying with the batch when Lambda stops it.
    deadline_reserve_s: float = 2.0

    def backoff_s(self, receives: int) -> int:
        """The visibility delay before the next receive of a copy received ``receives`` times."""
        delay: int = self.backoff_base_s * 2 ** max(receives - 1, 0)
        return min(delay, self.backoff_max_s)


@dataclass(frozen=True)
class SqsCopy:
    """One SQS record, as far as the consumer needs it."""

    record: Mapping[str, Any]
    sqs_id: str
    receives: int
    group: str | None
    owner: str  # this receive of this copy: a lease is never shared by two receives
    trace: str | None = None  # its AWSTraceHeader, if a valid one: the log lines' trace until the record is read


class Consumer:
    """Processes an SQS batch and returns a partial batch response.

    Each copy takes a lease on its message (PENDING, QUEUED or an expired PROCESSING to
    PROCESSING), so two copies are never delivered at once; only the holder completes or fails
    it. On a FIFO queue a copy sent back stops the rest of its group in the batch.
    """

    def __init__(
        self,
        store: MessageStore,
        deliver: Deliver = log_delivery,
        *,
        policy: ConsumerPolicy | None = None,
        visibility: Visibility | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.deliver = deliver
        self.policy = policy or ConsumerPolicy()
        self.visibility = visibility
        self.sleep = sleep
        self.stats: Counter[str] = Counter()  # outcomes (and retry causes) since start, across invocations
        self._stats_lock = threading.Lock()
        self._invocation = threading.local()  # this thread's invocation: why its copies went back

    def handle(self, event: Mapping[str, Any], context: Any = None) -> BatchResponse:
        """Process every SQS record; list the messageIds to redeliver.

        Copies it has finished are deleted early (``ConsumerPolicy.acknowledge_after``) while
        others of the batch remain, so that an invocation dying later does not bring them back.
        """
        failures: list[dict[str, str]] = []
        counts = dict.fromkeys(Outcome, 0)
        causes: Counter[str] = Counter()
        self._invocation.causes = causes
        stopped_groups: set[str] = set()
        lease_until = self._lease_until(context)
        records = event.get("Records") if isinstance(event, Mapping) else None
        records = records if isinstance(records, list) else []
        finished: list[Mapping[str, Any]] = []  # copies done with, not yet acknowledged early
        clock = _Deadline(context, self.policy.deadline_reserve_s)
        for index, record in enumerate(records):
            copy = sqs_copy(record)
            if copy is None:
                log.error("sqs_record_malformed", reason="no messageId")
                continue
            with _traced(copy.trace):
                if copy.group is not None and copy.group in stopped_groups:
                    outcome = self._retry(copy, RetryCause.GROUP_STOPPED)  # FIFO: nothing after a failure in its group
                elif clock.running_out():
                    outcome = self._retry(copy, RetryCause.DEADLINE, delay_s=0)  # back now, not with a dead batch
                else:
                    outcome = clock.timed(functools.partial(self._process, copy, lease_until))
                if outcome is Outcome.RETRIED and copy.group is not None:
                    stopped_groups.add(copy.group)
            counts[outcome] += 1
            if outcome is Outcome.RETRIED:
                failures.append({"itemIdentifier": copy.sqs_id})
            else:
                finished.append(record)
            if self._acknowledge_now(finished, more=index < len(records) - 1):
                finished = []
        with self._stats_lock:
            self.stats.update({outcome.value: n for outcome, n in counts.items()})
            self.stats.update({f"{Outcome.RETRIED.value}_{cause}": n for cause, n in causes.items()})
        emit_metrics({"MessagesCompleted": counts[Outcome.COMPLETED], MESSAGES_FAILED: counts[Outcome.FAILED]})
        log.info("batch_consumed", **{outcome.value: n for outcome, n in counts.items()})
        return {"batchItemFailures": failures}

    def _acknowledge_now(self, finished: list[Mapping[str, Any]], *, more: bool) -> bool:
        """Delete the finished copies now if enough wait and the batch has more to process; whether it did.

        A Lambda invocation that dies (a timeout, out of memory) gives its whole batch back, the
        copies it had finished included: each would be received again, and its lease written
        again. The last copies need no early delete: the mapping deletes them as the invocation returns.
        """
        every = self.policy.acknowledge_after
        if self.visibility is None or every < 1 or len(finished) < every or not more:
            return False
        self.visibility.acknowledge(finished)
        with self._stats_lock:
            self.stats["acknowledged_early"] += len(finished)
        return True

    def _lease_until(self, context: Any) -> datetime:
        """A lease lasts as long as this invocation can: its remaining time, and a margin."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        seconds = remaining() / 1000 if callable(remaining) else self.policy.default_lease_s
        return utc_now() + timedelta(seconds=seconds + self.policy.lease_margin_s)

    def _process(self, copy: SqsCopy, lease_until: datetime) -> Outcome:
        try:
            message_id = message_id_of(copy.record.get("body"))
        except MalformedEntryError as exc:
            return self._reject(copy, exc)
        lease = Lease(copy.owner, iso(lease_until))
        try:
            started = self._start(message_id, lease)
        except InvalidTransitionError as exc:
            return self._not_startable(copy, message_id, exc.current, exc.lease_until)
        except OutboxError as exc:
            log.warning("start_failed", message_id=message_id, error=exc.code)
            # A try whose answer was lost may have taken the lease: give it back, so that the next
            # receive need not wait for it to run out (if it was not taken, this changes nothing).
            self._release(message_id, lease)
            return self._retry(copy, RetryCause.STORE_FAULT)
        if started.record is None:  # the MessageStore contract: a lease write returns its record
            raise TypeError(f"{type(self.store).__name__}.transition returned no record with the lease")
        envelope = started.record.envelope()  # what the record holds, whatever the copy said
        with _traced(envelope.trace_id):
            return self._deliver(copy, lease, started.attempts, envelope)

    def _deliver(self, copy: SqsCopy, lease: Lease, attempts: int, envelope: Envelope) -> Outcome:
        """Run the delivery under the lease just taken, then complete or fail the message as its holder."""
        message_id = envelope.message_id
        last = self._last_receive(copy)
        if attempts > self.policy.max_attempts:
            # `attempts` counts the leases taken, this one included: the deliveries tried are one fewer.
            tried = attempts - 1
            return self._fail(message_id, lease, f"gave up: {tried} delivery attempts failed, the most allowed")
        try:
            self.deliver(envelope)
        except Exception as exc:  # noqa: BLE001 - a delivery function may raise anything
            retryable = exc.retryable if isinstance(exc, OutboxError) else True
            detail = delivery_failure(exc, envelope)
            # What went wrong, and where: the message (with any text of the payload cut out) and the
            # stack's frames, never the values in them.
            log.warning(
                "delivery_failed",
                message_id=message_id,
                error=type(exc).__name__,
                detail=detail,
                retryable=retryable,
                traceback="".join(traceback.format_tb(exc.__traceback__)),
            )
            if not retryable:
                return self._fail(message_id, lease, f"delivery failed: {detail}")
            if last:  # the next failure would move the copy to the dead-letter queue: end it here
                reason = f"delivery failed on the last allowed receive ({copy.receives}): {detail}"
                return self._fail(message_id, lease, reason)
            self._release(message_id, lease)
            return self._retry(copy, RetryCause.DELIVERY_FAILED)
        return self._complete(copy, message_id, lease)

    def _tried(self, write: Callable[[], TransitionResult]) -> TransitionResult:
        """A status write, tried again after a short pause while it fails with a passing fault.

        Each failed write would send the copy back to the queue: another receive, another
        invocation, and one step nearer the dead-letter queue. A lost condition is final.
        """
        policy = self.policy
        return tried(write, tries=policy.status_write_tries, pause_s=policy.status_write_pause_s, sleep=self.sleep)

    def _last_receive(self, copy: SqsCopy) -> bool:
        limit = self.policy.max_receive_count
        return limit is not None and copy.receives >= limit

    def _start(self, message_id: str, lease: Lease) -> TransitionResult:
        """Take the lease; the write returns the record to deliver. A passing fault is tried again first."""
        return self._tried(
            lambda: self.store.transition(message_id, Status.PROCESSING, by=BY, expected=STARTABLE, lease=lease)
        )

    def _complete(self, copy: SqsCopy, message_id: str, lease: Lease) -> Outcome:
        try:
            self._tried(
                lambda: self.store.transition(message_id, Status.COMPLETED, by=BY, expected=PROCESSING, lease=lease)
            )
        except InvalidTransitionError:
            return Outcome.DUPLICATE  # the lease ran out and another copy took the message over
        except OutboxError as exc:
            log.warning("complete_failed", message_id=message_id, error=exc.code)
            self._release(message_id, lease)
            return self._retry(copy, RetryCause.STORE_FAULT)
        return Outcome.COMPLETED

    def _reject(self, copy: SqsCopy, exc: MalformedEntryError) -> Outcome:
        """A body that is no envelope goes back to SQS (and so to the DLQ after maxReceiveCount).

        It changes no record: it could be anyone's forgery, naming any id.
        """
        if exc.message_id is None:
            log.error("message_rejected", reason=exc.detail)
        else:
            log.error("message_rejected", message_id=exc.message_id, reason=exc.detail)
        return self._retry(copy, RetryCause.REJECTED)

    def _not_startable(
        self, copy: SqsCopy, message_id: str, current: Status | None, lease_until: str | None = None
    ) -> Outcome:
        """A copy whose record could not be leased: acknowledged only if it has ended or another live lease holds it.

        The store recognises this receive's own lease (a try whose answer was lost), so a lease
        seen here is another receive's. Anything else comes back, and after its last receive
        reaches the dead-letter queue, whose function ends the record: never dropped while not ended.
        """
        if current is Status.COMPLETED:
            log.info("duplicate_dropped", message_id=message_id)
            return Outcome.DUPLICATE
        if current is Status.PROCESSING and _live(lease_until):
            if self._last_receive(copy):  # its holder ends it, and has its own copy should it die
                log.info("message_held_by_another", message_id=message_id)
                return Outcome.DUPLICATE
            log.info("message_busy", message_id=message_id)  # another receive holds the lease
            return self._retry(copy, RetryCause.BUSY, delay_s=self._until_lease_ends(lease_until))
        if current is Status.FAILED and copy.receives < self.policy.redrive_grace_receives:
            # A re-drive sends before it flips FAILED -> QUEUED: this copy may be ahead of the flip.
            log.info("message_not_ready", message_id=message_id, status=current.value)
            return self._retry(copy, RetryCause.NOT_READY)
        if current is None or current in ENDED:
            log.warning("message_dropped", message_id=message_id, status=current.value if current else "missing")
            return Outcome.DUPLICATE
        log.warning("message_not_startable", message_id=message_id, status=current.value)
        return self._retry(copy, RetryCause.NOT_READY)

    def _fail(self, message_id: str, lease: Lease, reason: str) -> Outcome:
        reason = safe_reason(reason)  # capped and clean, whatever was put before the detail
        try:
            self._tried(
                lambda: self.store.transition(
                    message_id, Status.FAILED, by=BY, reason=reason, expected=PROCESSING, lease=lease
                )
            )
        except InvalidTransitionError:
            return Outcome.DUPLICATE
        except OutboxError:
            self._count(RetryCause.STORE_FAULT)  # back at the queue's own visibility timeout
            return Outcome.RETRIED
        log.warning("message_failed", message_id=message_id)
        return Outcome.FAILED

    def _release(self, message_id: str, lease: Lease) -> None:
        """Give the lease back with the copy, so its next receive need not wait for it to run out."""
        try:
            self.store.release(message_id, lease)
        except OutboxError as exc:  # best effort: the lease then runs out by itself
            log.info("lease_not_released", message_id=message_id, error=exc.code)

    def _until_lease_ends(self, lease_until: str | None) -> int:
        """How long a busy copy stays away: until the holder's lease runs out, so it can take over then.

        Coming back sooner would only burn receives towards the dead-letter queue while the lease
        holds; a holder that dies leaves its message to the next copy once its lease has run out.
        """
        return until_lease_ends(lease_until, at_least=self.policy.busy_delay_s)

    def _count(self, cause: RetryCause) -> None:
        """Count why a copy of this thread's invocation goes back."""
        causes: Counter[str] | None = getattr(self._invocation, "causes", None)
        if causes is not None:
            causes[cause] += 1

    def _retry(self, copy: SqsCopy, cause: RetryCause, *, delay_s: int | None = None) -> Outcome:
        """Send the copy back, to be received again after a short, growing delay; ``cause`` is counted."""
        self._count(cause)
        if self.visibility is not None:
            self.visibility.delay(copy.record, self.policy.backoff_s(copy.receives) if delay_s is None else delay_s)
        return Outcome.RETRIED


class _Deadline:
    """An invocation's time left (Lambda's context), and the longest one copy has taken in it."""

    def __init__(self, context: Any, reserve_s: float) -> None:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        self._remaining: Callable[[], int] | None = remaining if callable(remaining) else None
        self._reserve_ms = reserve_s * 1000
        self._slowest_ms: int | None = None  # none timed yet

    def running_out(self) -> bool:
        """Whether another copy, as slow as the slowest so far, might not end before Lambda stops the invocation.

        Never before the first copy: it has the invocation's whole time, and its duration is the measure.
        """
        if self._remaining is None or self._slowest_ms is None:
            return False
        return self._remaining() < self._reserve_ms + self._slowest_ms

    def timed(self, process: Callable[[], Outcome]) -> Outcome:
        """``process()``, its duration noted."""
        if self._remaining is None:
            return process()
        before = self._remaining()
        try:
            return process()
        finally:
            self._slowest_ms = max(self._slowest_ms or 0, before - self._remaining())


def tried(
    write: Callable[[], TransitionResult], *, tries: int, pause_s: float, sleep: Callable[[float], None] = time.sleep
) -> TransitionResult:
    """``write()``, tried up to ``tries`` times while it fails with a passing fault, the pause doubling.

    A try whose answer was lost may have been applied: the store recognises a leased write's own
    effect, so trying it again is safe. A lost condition (InvalidTransitionError) is final.
    """
    for attempt in range(tries - 1):
        try:
            return write()
        except OutboxError as exc:
            if not exc.retryable:
                raise
        sleep(pause_s * 2**attempt)
    return write()


def _live(lease_until: str | None) -> bool:
    """Whether a lease ending at ``lease_until`` still holds."""
    return lease_until is not None and datetime.fromisoformat(lease_until) > utc_now()


def until_lease_ends(lease_until: str | None, *, at_least: int) -> int:
    """Seconds a copy should stay away: until ``lease_until`` has passed (and one more), at least ``at_least``.

    Capped at SQS's longest visibility; ``at_least`` when the lease's end is not known.
    """
    from outbox.ports import MAX_VISIBILITY_S  # noqa: PLC0415 - only a retry needs the ports

    if lease_until is None:
        return at_least
    left = (datetime.fromisoformat(lease_until) - utc_now()).total_seconds()
    return min(max(at_least, math.ceil(left) + 1), MAX_VISIBILITY_S)


def delivery_failure(exc: Exception, envelope: Envelope) -> str:
    """A delivery exception's type and message, payload cut out: fit for the FAILED reason and the log."""
    if isinstance(exc, OutboxError):
        return safe_reason(exc.detail, envelope)
    message = str(exc)
    return safe_reason(f"{type(exc).__name__}: {message}" if message else type(exc).__name__, envelope)


def safe_reason(detail: str, envelope: Envelope | None = None, *, limit: int = MAX_REASON_CHARS) -> str:
    """A delivery's failure detail fit to store as the FAILED reason (and serve by GET).

    Any text of the envelope's payload it quotes is cut out, control characters become spaces,
    and it is capped at ``limit`` characters.
    """
    for text in sorted(_payload_strings(envelope.payload if envelope else {}), key=len, reverse=True):
        detail = detail.replace(text, "[payload]")
    cleaned = " ".join(_unsafe().sub(" ", detail).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _payload_strings(value: object, depth: int = 0) -> set[str]:
    """Every string (keys and values) of a payload, long enough to tell from prose, 32 levels deep."""
    if depth > 32:
        return set()
    if isinstance(value, str):
        return {value} if len(value) >= _MIN_ECHO_CHARS else set()
    if isinstance(value, Mapping):
        found = {k for k in value if isinstance(k, str) and len(k) >= _MIN_ECHO_CHARS}
        return found.union(*(_payload_strings(v, depth + 1) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_payload_strings(v, depth + 1) for v in value))
    return set()


def sqs_copy(record: object) -> SqsCopy | None:
    """The SQS record as a copy: its id, receives, FIFO group and this receive's lease owner; None without an id."""
    if not isinstance(record, Mapping):
        return None
    sqs_id = record.get("messageId")
    if not isinstance(sqs_id, str) or not sqs_id:
        return None
    attributes = record.get("attributes")
    group = attributes.get("MessageGroupId") if isinstance(attributes, Mapping) else None
    handle = record.get("receiptHandle")
    receive = hashlib.sha256(handle.encode()).hexdigest()[:16] if isinstance(handle, str) else uuid.uuid4().hex[:16]
    owner = f"{sqs_id}/{receive}"
    trace = trace_header(attributes.get("AWSTraceHeader")) if isinstance(attributes, Mapping) else None
    group = group if isinstance(group, str) and group else None
    return SqsCopy(record, sqs_id, _receive_count(record), group, owner, trace)


def _traced(trace: str | None) -> contextlib.AbstractContextManager[object]:
    """Bind ``trace`` as the log lines' ``trace_id`` for a block, restoring what was bound before; nothing if None."""
    if trace is None:
        return contextlib.nullcontext()
    return log_context(trace_id=trace)


def _receive_count(record: Mapping[str, Any]) -> int:
    attributes = record.get("attributes")
    raw = attributes.get("ApproximateReceiveCount") if isinstance(attributes, Mapping) else None
    try:
        return int(raw) if raw is not None else 1
    except (TypeError, ValueError):
        return 1
