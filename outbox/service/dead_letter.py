"""The dead-letter use case: a copy that reached the dead-letter queue ends its record FAILED.

The consumer ends a message FAILED on the last receive the queue allows, so a copy reaches the
dead-letter queue only when that receive could not say so: the invocation crashed, ran out of
memory or timed out (a delivery that hangs), the status write failed on every try, or a FIFO copy
was held back behind its group. Its record would stay QUEUED or PROCESSING for good. This use
case, fed by the dead-letter queue's own event source mapping, makes invariant 7 hold whatever
the consumer's last receive did: each copy's record ends FAILED with the reason, counted by
``MessagesFailed`` (alarmed) and re-driven by ``outbox replay --status FAILED``.

Only a copy SQS's own redrive moved here from the main queue can end a record (invariant 11): SQS
marks such a copy with the source queue's ARN (the system attribute ``DeadLetterQueueSourceArn``,
in the Lambda event's ``attributes``), which no sender can set (SendMessage takes ``AWSTraceHeader``
as its only system attribute). A copy without it, or moved from another queue, was put here some
other way: a genuine body read from the main queue and sent here by hand would otherwise fail a
record whose real copy is still on its way. Such a copy is dropped and changes nothing. (The
module's queue policy also refuses every sender of the dead-letter queue, and its
``RedriveAllowPolicy`` names the main queue alone: this check holds whatever those say.)

It moves a record only along the lifecycle's edges: it takes the lease (PENDING, QUEUED or a
PROCESSING whose lease ran out, to PROCESSING) and, as the lease's holder, ends it FAILED. It
leaves alone a record that has ended, one that a live lease holds (the copy comes back when the
lease runs out), a body that names no message, and a copy older than a re-drive or re-send of
its message (what is in flight now has the later send's own copy; see ``_older_than_a_redrive``).
Copies it has settled are acknowledged, so the dead-letter queue empties: its depth alarm then
means this function is not running.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from outbox.domain.envelope import message_id_of
from outbox.domain.errors import InvalidTransitionError, MalformedEntryError, NotFoundError, OutboxError
from outbox.domain.keys import generation_of, iso, utc_now
from outbox.domain.record import Lease, MessageRecord
from outbox.domain.results import TransitionResult
from outbox.domain.status import ENDED, Status
from outbox.logs import get_logger
from outbox.metrics import MESSAGES_FAILED, emit_metrics
from outbox.service.consume import (
    PROCESSING,
    STARTABLE,
    SqsCopy,
    sqs_copy,
    tried,
    until_lease_ends,
)

if TYPE_CHECKING:  # the ports' Protocols, for the types alone
    from outbox.ports import BatchResponse, MessageStore, Visibility

log = get_logger("outbox.service.dead_letter")

BY = "dead-letter"
# No receive count: on the dead-letter queue it counts that queue's receives too.
REASON = "its copy reached the dead-letter queue: no receive ended it (a crash, a timeout, or status writes failing)"
LEASE_S = 60  # two conditional writes, one after the other
RETRY_DELAY_S = 30  # a passing fault: the copy comes back soon (the dead-letter queue has no redrive)
# What SQS records on a copy its redrive moved: the ARN of the queue it came from.
SOURCE_ATTRIBUTE = "DeadLetterQueueSourceArn"


class Settled(enum.StrEnum):
    """What became of one dead-letter copy."""

    FAILED = "failed"  # its record ended FAILED here
    ENDED = "ended"  # its record had ended already (or is gone): nothing to do
    STALE = "stale"  # the copy is older than a re-drive of its record: the re-drive's copy decides
    FORGED = "forged"  # not moved here from the main queue, or a body that names no message: dropped
    RETRIED = "retried"  # back to the dead-letter queue: a live lease or a passing fault


class DeadLetters:
    """Settles a batch of dead-letter copies; returns a partial batch response."""

    def __init__(
        self,
        store: MessageStore,
        *,
        visibility: Visibility | None = None,
        main_queue_url: str | None = None,
        lease_s: int = LEASE_S,
        write_tries: int = 3,
        write_pause_s: float = 0.02,
    ) -> None:
        self.store = store
        self.visibility = visibility
        # The queue whose copies may end records here; without it, any copy SQS moved (none sent by hand).
        self.main_queue_url = main_queue_url
        self.lease_s = lease_s  # how long its lease holds: its two writes, and their tries
        self.write_tries = write_tries  # each status write, while it fails with a passing fault
        self.write_pause_s = write_pause_s
        self.stats: Counter[str] = Counter()  # outcomes since start, across invocations

    def handle(self, event: Mapping[str, Any], context: Any = None) -> BatchResponse:
        """Settle every copy of the batch; list the messageIds to receive again."""
        failures: list[dict[str, str]] = []
        counts = dict.fromkeys(Settled, 0)
        records = event.get("Records") if isinstance(event, Mapping) else None
        for record in records if isinstance(records, list) else []:
            copy = sqs_copy(record)
            if copy is None:
                log.error("dead_letter_malformed", reason="no messageId")
                continue
            outcome = self.settle(copy)
            counts[outcome] += 1
            if outcome is Settled.RETRIED:
                failures.append({"itemIdentifier": copy.sqs_id})
        self.stats.update({outcome.value: n for outcome, n in counts.items()})
        emit_metrics({MESSAGES_FAILED: counts[Settled.FAILED]})
        log.info("dead_letters_settled", **{outcome.value: n for outcome, n in counts.items()})
        return {"batchItemFailures": failures}

    def settle(self, copy: SqsCopy) -> Settled:
        """End one copy's record FAILED, unless SQS did not move it here or its record ended, is held or was re-sent."""
        if not self._moved_from_the_main_queue(copy):
            return Settled.FORGED
        try:
            message_id = message_id_of(copy.record.get("body"))
        except MalformedEntryError as exc:
            # No message named: anyone's bytes. Nothing to settle; the log keeps the trace.
            log.error("dead_letter_unreadable", sqs_message_id=copy.sqs_id, reason=exc.detail)
            return Settled.FORGED
        try:
            record = self.store.get(message_id)
        except NotFoundError:
            log.warning("dead_letter_without_record", message_id=message_id)  # expired after it ended, or forged
            return Settled.ENDED
        except OutboxError as exc:
            return self._retry(copy, message_id, exc.code)
        if record.status in ENDED:
            return Settled.ENDED
        if _older_than_a_redrive(record, copy):
            log.info("dead_letter_stale", message_id=message_id)
            return Settled.STALE
        return self._fail(copy, message_id)

    def _moved_from_the_main_queue(self, copy: SqsCopy) -> bool:
        """Whether SQS's redrive moved this copy here, from the main queue (what the copy's system attribute says)."""
        attributes = copy.record.get("attributes")
        source = attributes.get(SOURCE_ATTRIBUTE) if isinstance(attributes, Mapping) else None
        if not isinstance(source, str) or not source:
            log.error("dead_letter_not_moved", sqs_message_id=copy.sqs_id, reason="sent to the queue, not moved by SQS")
            return False
        if self.main_queue_url is not None and not same_queue(source, self.main_queue_url):
            log.error("dead_letter_not_moved", sqs_message_id=copy.sqs_id, reason="moved from another queue")
            return False
        return True

    def _fail(self, copy: SqsCopy, message_id: str) -> Settled:
        """Take the lease, then end the record FAILED as its holder: two conditional writes."""
        lease = Lease(f"{BY}/{copy.owner}", iso(utc_now() + timedelta(seconds=self.lease_s)))
        try:
            self._tried(
                lambda: self.store.transition(message_id, Status.PROCESSING, by=BY, expected=STARTABLE, lease=lease)
            )
        except InvalidTransitionError as exc:
            if exc.current is None or exc.current in ENDED:
                return Settled.ENDED  # its holder ended it meanwhile
            # A live lease holds it: its holder may still end it; look again once the lease has run out.
            delay_s = until_lease_ends(exc.lease_until, at_least=RETRY_DELAY_S)
            return self._retry(copy, message_id, "held", delay_s=delay_s)
        except OutboxError as exc:  # the lease may have been taken, its answer lost: give it back
            with contextlib.suppress(OutboxError):
                self.store.release(message_id, lease)
            return self._retry(copy, message_id, exc.code)
        # A try whose answer was lost is its own effect to the store: this lease, this end (counted once).
        try:
            self._tried(
                lambda: self.store.transition(
                    message_id, Status.FAILED, by=BY, reason=REASON, expected=PROCESSING, lease=lease
                )
            )
        except InvalidTransitionError as exc:  # the lease was taken over meanwhile: the new holder decides
            if exc.current is None or exc.current in ENDED:
                return Settled.ENDED
            return self._retry(copy, message_id, "held")
        except OutboxError as exc:  # a passing fault: give the lease back, so the next receive can take it at once
            with contextlib.suppress(OutboxError):  # else the lease runs out by itself
                self.store.release(message_id, lease)
            return self._retry(copy, message_id, exc.code)
        log.warning("message_failed", message_id=message_id, reason="dead letter")
        return Settled.FAILED

    def _tried(self, write: Callable[[], TransitionResult]) -> TransitionResult:
        return tried(write, tries=self.write_tries, pause_s=self.write_pause_s)

    def _retry(self, copy: SqsCopy, message_id: str, why: str, *, delay_s: int = RETRY_DELAY_S) -> Settled:
        log.info("dead_letter_retried", message_id=message_id, why=why)
        if self.visibility is not None:
            self.visibility.delay(copy.record, delay_s)
        return Settled.RETRIED


def same_queue(arn: str, url: str) -> bool:
    """Whether a queue ARN and a queue URL name one queue: the same account and name.

    A URL's path is ``/<account>/<name>`` (on AWS and on the emulator alike); a redrive never
    crosses a region, so the account and the name decide.
    """
    parts = arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs":
        return False
    path = urlsplit(url).path.strip("/").split("/")
    return len(path) == 2 and path == [parts[4], parts[5]]


def _older_than_a_redrive(record: MessageRecord, copy: SqsCopy) -> bool:
    """Whether the copy belongs to an earlier send of its message: a re-drive or a re-send came after it.

    Every deliberate re-send (a replay's re-drive, the sweeper's re-send of a stranded message)
    gives the record a new send generation first, and a FIFO copy names its generation in its
    deduplication id: such a copy is older when its generation is lower than the record's. No
    clock is compared. A copy that names none (a standard queue's) or a record never re-sent this
    way is judged by the times.

    What ``SentTimestamp`` means depends on the queue. On a standard queue SQS keeps the first
    send's when the copy moves to the dead-letter queue: the copy is older if the record went
    FAILED after it (a re-drive's own copy is sent after that FAILED, before its flip). On a FIFO
    queue SQS resets it at the move: the copy is older if the record was re-driven (the line
    after a FAILED one) after the copy had reached the dead-letter queue.
    """
    attributes = copy.record.get("attributes")
    dedup = attributes.get("MessageDeduplicationId") if isinstance(attributes, Mapping) else None
    generation = generation_of(dedup, record.message_id) if isinstance(dedup, str) and record.send_generation else None
    if generation is not None:
        return generation < record.send_generation
    raw = attributes.get("SentTimestamp") if isinstance(attributes, Mapping) else None
    try:
        at = datetime.fromtimestamp(int(raw) / 1000, UTC) if raw is not None else None
    except (TypeError, ValueError, OverflowError):
        at = None
    if at is None:
        return False
    history = record.history
    if str(copy.record.get("eventSourceARN", "")).endswith(".fifo"):
        redrives = (line for before, line in itertools.pairwise(history) if before.status is Status.FAILED)
        return any(datetime.fromisoformat(line.at) >= at for line in redrives)
    return any(line.status is Status.FAILED and datetime.fromisoformat(line.at) >= at for line in history)
