"""Chaos run: N messages through the local stack, AWS faulted, the trigger off, entries expired; then a Jepsen count.

    python -m bench.chaos --messages 10000 --fault-rate 0.2 [--fifo] [--json]

Faults, injected at the botocore boundary of the real handlers' clients (``outbox.faults``), the
sweeper's included: throttling and 5xx on TransactWriteItems, UpdateItem and SendMessageBatch,
timeouts, per-entry SendMessageBatch refusals, a write that took effect with its answer lost (on
every DynamoDB and SQS write, the SQS mappings' deletes included: botocore's retry meets its own
effect), and a function dying right after a call took effect (after SQS accepted a batch, before
any flip; after a flip, a lease, an end or an early delete: the next receive takes the lease over
once it ran out). Deaths (``Deaths``, ``--deaths``): ``--fault-rate`` of the consumer's and the
dead-letter function's invocations die, each after one of its writes picked uniformly among those
its batch makes, or after its last (a Lambda timeout or out-of-memory kills an invocation, whatever
its batch size); the worker and the sweeper die after a share of their writes (4 % of UpdateItems,
3.3 % of SendMessageBatches). ``--deaths per-call`` kills the SQS-triggered functions that way too
(the model before 2026-12-07: a consumer invocation of n copies then dies with probability about
1 - 0.96^(2.5n)). The stream runner redelivers from the lowest failed sequence number (duplicate deliveries).
Clients send ``--rate`` messages a second (10: about half of what the local stream runner relays
under 20 % faults on a busy 2-core machine, so that the stream keeps up, as on AWS where it lags
by a second and the sweeper's minimum age is minutes) and retry a 5xx with the same
Idempotency-Key, as a real client would.

Disruptions, once half the messages are accepted (each can be turned off):

- the trigger is disabled for ``--pause-s`` (``--no-pause``): the stream runner does not read the
  stream at all, as Lambda with a disabled event source mapping; re-enabled, it resumes from its
  checkpoint, except that the oldest stream records it had not handled yet that are older than
  ``--retention-s`` (the sweeper's minimum age plus 1.5 sweep intervals: a healthy sweeper has
  had its turn at them), at most those of ``--trim`` of the messages (``--trim 0``), were trimmed
  meanwhile: only the sweeper can relay those messages;
- halfway through the pause, the outbox entries of ``--expire`` of the messages, chosen at random
  with the seed among the accepted messages still PENDING, are deleted, as TTL would
  (``--no-expiry``): the sweeper relays from the record alone.

Beside the HTTP clients, library writers (``--pairs``, ``--skewed``; 0 turns them off) write into
the stack's table with ``Outbox``: pairs of one group made in one millisecond, in one transaction
or (every other pair) two, by a writer of their own; and single grouped messages from two writers
whose clocks run 2 s ahead and 2 s behind. Their writes are not faulted.

No operator replays (``--with-replays`` runs one every 2 s during the fault phase). When the
consumers have finished every accepted message (or stopped making progress), the faults stop and
the sweeper (every 2 s, for messages PENDING 5 s or more) and the consumers settle what is left;
then the table, the dead-letter queue and every delivery are checked. Keys of the tally:

- ``lost``: accepted, but no record, or no copy ever reached the consumer;
- ``unexpected``: records no accepted request created;
- ``duplicates``: messages whose copies reached the consumer more than once (redelivery; the
  consumer drops or retries the extra copies, so this is expected and not a violation);
- ``stuck_after_sweep``: accepted messages whose record is not terminal (COMPLETED or FAILED)
  once the sweeper and consumers have settled, with no operator replay;
- ``stranded``: of those, the ones in flight (QUEUED or PROCESSING) with no copy left in either
  queue and no live lease: nothing would ever end them (the mappings stop receiving first, then
  the queues are drained; a copy still invisible is credited to one of them);
- ``lease_takeovers``: PROCESSING -> PROCESSING steps in the histories (a receive, or the
  dead-letter function, took over a lease that ran out or was given back): ``--lease-s`` keeps
  leases short, so that the lease of a receive that died is taken over within the run;
- ``applied_unanswered``, ``deaths``: how often a write took effect with its answer lost (then
  retried by botocore, meeting its own effect) and a function died between two AWS calls; a 0
  in a run with faults means the fault model was not exercised;
- ``backward_transitions``: steps of a record's history its lifecycle does not allow;
- ``changed_records``: payload changed, or not exactly one outbox entry (none for an expired one);
- ``dead_letter_non_terminal``: copies that reached the dead-letter queue (handed to the
  dead-letter function, or still there at the end) whose record is not terminal;
  ``dead_letter`` counts those copies, ``dead_letter_outcomes`` what the dead-letter function did;
- ``concurrent_deliveries``: times the delivery function was entered for a message while another
  call for the same message was still running (each call sleeps ``--widen-ms`` to widen windows);
- ``out_of_order`` (FIFO only, else null): message A of a group *precedes* message B of the same
  group when A's 202 reached its client before B's first request was sent (real-time order; two
  overlapping requests are not ordered), or A was made just before B in one of ``--pairs``'s
  pairs (same millisecond; one transaction or two). Across writers (the API, the pair writer, the
  two skewed ones) only when B was sent more than the difference of their clocks plus
  ``CROSS_WRITER_MARGIN_S`` after A's answer: the worker puts another writer's lost message first
  only when it was made twice its 2 s skew allowance (plus the stream's 1 s rounding) earlier.
  A delivery call for B is out of order when some A that precedes B had no delivery call started
  yet, although A was delivered later; the count is of such delivery calls. A message never
  delivered (it ended FAILED) orders nothing.
  ``out_of_order_by_queue`` counts those where SQS had accepted A before B: the queue, not the
  relay, put B first (the embedded moto server's FIFO queue does, see ``SerialReceives``);
- ``copies_per_message``: SQS copies handed to the consumer (every receive) per accepted message;
  ``consumer_outcomes`` splits them (completed, failed, retried: given back to SQS, duplicates:
  dropped), ``left_pending`` says who moved each record out of PENDING; ``copies_by_cause`` says
  why each copy was received (per message, summing to ``copies_per_message``): a message's first
  receive, a consumer invocation that died (its whole batch comes back: delivered before the
  death or not), a copy the consumer gave back (``retried_<cause>``), a re-send;
  ``consumer_invocations`` how many invocations died and their batch sizes. The consumer dies
  after its early deletes too (as after its status writes);
- ``requests_per_message``: AWS requests of the handlers and the SQS mappings per accepted
  message, by operation (the local mappings' idle long polls included).

``--details FILE`` writes every violation with the message's sends, receives, delivery calls and
record history.

Exit 1 if any of lost, unexpected, stuck_after_sweep, stranded, backward_transitions,
changed_records, dead_letter_non_terminal, concurrent_deliveries or out_of_order is non-zero.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

import boto3
from botocore.config import Config

from outbox import Outbox
from outbox.adapters.reader import DynamoDBOutboxReader
from outbox.bootstrap import Resources
from outbox.domain.clock import WriteClock
from outbox.domain.envelope import NOTIFICATION_TYPE, Envelope
from outbox.domain.errors import OutboxError
from outbox.domain.keys import OUTBOX_PREFIX, RECORD_PREFIX, bucket_of, iso, utc_now
from outbox.domain.layout import TableLayout
from outbox.domain.status import ENDED, Status, is_allowed
from outbox.faults import FaultInjector, SimulatedCrash
from outbox.local.demo import Client, sample_payload
from outbox.local.stack import LOCAL_CREDENTIALS, LocalStack, StackConfig
from outbox.local.stream_runner import Invoke, StreamRunner
from outbox.notifications.notification import parse_notification
from outbox.ports import MessageStore, Publisher, Visibility
from outbox.service.relay import Relay
from outbox.service.replay import FLIP_FROM, Checkpoint, Replayer, Selection
from outbox.testing import stream_records

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

    from outbox.adapters.publisher import SqsPublisher
    from outbox.adapters.store import DynamoDBMessageStore
    from outbox.adapters.visibility import SqsVisibility

# Every write the code makes: ``answer_lost`` (it took effect, its answer was lost, botocore retries
# it) on each; ``crash_after`` kills the function between that call and its next (a worker or a
# sweeper after a send or a flip, a consumer or the dead-letter function after its lease or its end).
KINDS = {
    "TransactWriteItems": ["throttle", "5xx", "timeout", "answer_lost"],
    "UpdateItem": ["throttle", "5xx", "timeout", "answer_lost", "crash_after"],
    "SendMessageBatch": ["throttle", "5xx", "timeout", "refuse", "crash_after", "answer_lost"],
    "ChangeMessageVisibility": ["answer_lost"],  # the consumer's and dead-letter function's retry delays
    "DeleteMessageBatch": ["answer_lost"],  # the SQS mappings (the local runners) delete what was acknowledged
    "ChangeMessageVisibilityBatch": ["answer_lost"],  # ... and show again what a function error left
}
TERMINAL = frozenset(status.value for status in ENDED)
VIOLATIONS = (
    "lost",
    "unexpected",
    "stuck_after_sweep",
    "stranded",
    "backward_transitions",
    "changed_records",
    "dead_letter_non_terminal",
    "concurrent_deliveries",
    "out_of_order",
)
GLOSS = {
    "duplicates": (
        "messages received more than once: extra copies the consumer dropped or retried, expected under"
        " redelivery, not a violation"
    ),
    "copies_per_message": (
        "SQS copies received per accepted message (target <= 1.3 at 20 % faults; copies_by_cause says why)"
    ),
    "stuck_after_sweep": "not COMPLETED/FAILED after the sweeper alone, no operator replay",
    "stranded": "not ended, no copy in either queue, no live lease: nothing would ever end it",
    "lease_takeovers": "PROCESSING -> PROCESSING: a receive took over a lease that ran out (or was given back)",
    "applied_unanswered": "writes that took effect with their answer lost (botocore retried them)",
    "deaths": "functions that died between two AWS calls (after a send, a flip, a lease or an end)",
    "dead_letter_non_terminal": "DLQ copies whose record is not COMPLETED/FAILED",
    "concurrent_deliveries": "two delivery calls of one message at the same moment",
    "out_of_order": "delivery calls before an earlier-accepted message of the group (FIFO only)",
    "library_writes": "messages the library writers wrote: same-millisecond pairs, skewed clocks",
    "out_of_order_by_queue": "of which SQS had the earlier message first: the queue reordered them",
    "copies_dropped": "copies the consumer dropped as duplicates",
    "copies_by_cause": "copies_per_message split by why each copy was received (per message; sums to it)",
    "requests_per_message": "AWS requests of the handlers and the SQS mappings per accepted message, by operation",
    "consumer_invocations": "consumer invocations, those that died (their batch comes back whole), batch sizes",
    "sends_per_message": "copies SQS accepted from the worker and the sweeper per accepted message",
    "senders": "messages by who sent them, in order",
    "expired_entries": "outbox entries deleted (TTL) while their message was PENDING",
    "trimmed_records": "outbox stream records lost to retention while the trigger was off",
    "left_pending": "each record's first move out of PENDING, and who made it",
    "pending_s": "how long records stayed PENDING (accept to first move)",
}


def arm(injector: FaultInjector, rate: float, deaths: Deaths) -> None:
    """Fault ``rate`` of the calls of each operation, split evenly across its kinds (``deaths`` says when one dies)."""
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
            elif kind == "answer_lost":
                injector.answer_lost(operation, times=-1, probability=share)
            else:
                injector.crash_after(operation, times=-1, when=deaths.due(share))


@dataclass
class _Fate:
    """One invocation's death: after its ``death_at``-th write (0: it lives); its writes so far."""

    death_at: int
    writes: int = 0


class Deaths:
    """When a function dies between two of its AWS calls.

    A Lambda timeout or an out-of-memory kills an invocation, whatever its batch size. So each
    invocation of an SQS-triggered function (the consumer, the dead-letter function) dies with
    probability ``rate``, after one of its writes picked uniformly among those a batch of its size
    makes (``writes_per_copy`` each), or after its last write when it makes fewer (a timeout with its
    work done: its whole batch comes back). The worker and the sweeper, whose flips run in a pool of
    threads, die after a ``share`` of their writes; so does every function with ``per_call`` (the
    model before 2026-12-07, under which a consumer invocation's chance to die grew with its batch).
    """

    def __init__(self, rate: float, *, seed: int, per_call: bool = False) -> None:
        self.rate = rate
        self.per_call = per_call
        self.at_end = 0  # invocations that died after their last write
        self._random = random.Random(seed)  # noqa: S311 - seeded dice
        self._lock = threading.Lock()
        self._local = threading.local()

    def due(self, share: float) -> Callable[[dict[str, Any]], bool]:
        """The ``when`` of a ``crash_after`` rule: this write is the one the calling invocation dies after."""

        def now(_: dict[str, Any]) -> bool:
            fate: _Fate | None = getattr(self._local, "fate", None)
            if fate is None:
                with self._lock:
                    return self._random.random() < share
            fate.writes += 1
            return fate.writes == fate.death_at

        return now

    def dying(self, invoke: Invoke, writes_per_copy: float) -> Invoke:
        """``invoke``, each of its invocations given its fate (none with ``per_call``)."""
        if self.per_call:
            return invoke

        def wrapped(event: dict[str, Any], context: Any) -> Any:
            writes = max(1, math.ceil(len(event.get("Records", [])) * writes_per_copy))
            with self._lock:
                death_at = self._random.randint(1, writes) if self._random.random() < self.rate else 0
            fate = self._local.fate = _Fate(death_at)
            try:
                result = invoke(event, context)
            finally:
                self._local.fate = None
            if death_at and fate.writes < death_at:  # its death point never came: it dies at the end
                with self._lock:
                    self.at_end += 1
                raise SimulatedCrash("died after its last write")
            return result

        return wrapped


def crash_is_function_error(invoke: Invoke) -> Invoke:
    """A simulated crash is what Lambda sees as a function error."""

    def wrapped(event: Any, context: Any) -> Any:
        try:
            return invoke(event, context)
        except SimulatedCrash as crash:
            raise RuntimeError("the function crashed") from crash

    return wrapped


class SendLog:
    """Every message SQS accepted from a publisher client: when, from whom (for ``--details``)."""

    def __init__(self, origin: float) -> None:
        self.origin = origin
        self.sends: dict[str, list[tuple[float, str]]] = {}  # message_id -> (seconds since origin, sender)
        self._lock = threading.Lock()

    def attach(self, client: Any, sender: str) -> None:
        """Note what ``client``'s SendMessageBatch calls got accepted."""

        def params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            context["chaos_send_params"] = params

        def after(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            at = time.monotonic() - self.origin
            bodies = {e["Id"]: e["MessageBody"] for e in context.get("chaos_send_params", {}).get("Entries", [])}
            with self._lock:
                for success in parsed.get("Successful", []):
                    try:
                        message_id = str(json.loads(bodies[success["Id"]])["message_id"])
                    except (KeyError, ValueError, TypeError):
                        continue
                    self.sends.setdefault(message_id, []).append((at, sender))

        client.meta.events.register("provide-client-params.sqs.SendMessageBatch", params)
        client.meta.events.register("after-call.sqs.SendMessageBatch", after)

    def first(self, message_id: str) -> float:
        """When SQS first accepted the message (infinity if never)."""
        with self._lock:
            return min((at for at, _ in self.sends.get(message_id, [])), default=float("inf"))


class SerialReceives:
    """An SQS client whose ReceiveMessage calls run one at a time (every other call passes through).

    The embedded moto server does not keep a FIFO group to one receiver: each ReceiveMessage
    notes the groups in flight when it starts and, long-polling, never looks again, so two
    concurrent receives hand out two messages of one group (seen: B received 0.15 s after A of
    its group, while A was still in flight). A run with ``--fifo`` serialises the consumers'
    receives, so that ``out_of_order`` counts the outbox's order, not the emulator's.
    """

    def __init__(self, client: Any, lock: threading.Lock) -> None:
        self.client = client
        self.lock = lock

    def receive_message(self, **kwargs: Any) -> Any:
        """One receive at a time."""
        with self.lock:
            return self.client.receive_message(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@dataclass
class DeliveryLog:
    """Every call of the consumer's delivery function, in the order they started, and their overlaps."""

    widen_s: float = 0.005
    calls: list[str] = field(default_factory=list)  # message_id of each call, in start order
    started: list[float] = field(default_factory=list)  # when each call started, seconds since ``origin``
    origin: float = field(default_factory=time.monotonic)
    first: dict[str, int] = field(default_factory=dict)  # message_id -> index of its first call
    concurrent: int = 0
    overlaps: list[str] = field(default_factory=list)  # message_id of each call that overlapped another
    _inflight: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, deliver: Callable[[Envelope], None]) -> Callable[[Envelope], None]:
        """``deliver``, logged; each call sleeps ``widen_s`` first so that overlaps have room to show."""

        def wrapped(envelope: Envelope) -> None:
            message_id = envelope.message_id
            with self._lock:
                self.first.setdefault(message_id, len(self.calls))
                self.calls.append(message_id)
                self.started.append(time.monotonic() - self.origin)
                if self._inflight[message_id]:
                    self.concurrent += 1
                    self.overlaps.append(message_id)
                self._inflight[message_id] += 1
            try:
                time.sleep(self.widen_s)
                deliver(envelope)
            finally:
                with self._lock:
                    self._inflight[message_id] -= 1

        return wrapped


class Trigger:
    """The stream trigger, disabled and re-enabled as Lambda's event source mapping is.

    Disabled, the runner reads nothing (its poll does nothing, after the poll in progress ends).
    Re-enabled, it resumes from its checkpoint, minus what retention trimmed meanwhile: the
    oldest outbox INSERTs it had not handled yet (in a batch being retried, buffered, or not
    read) that are older than the retention are dropped, with every record before them, and the
    checkpoint moves past them.
    """

    def __init__(self, runner: StreamRunner) -> None:
        self.runner = runner
        self.enabled = True
        self.trimmed: list[str] = []  # message_ids of the outbox INSERTs lost
        self._lock = threading.Lock()
        self._poll = runner.poll_once
        runner.poll_once = self._poll_once  # type: ignore[method-assign]

    def _poll_once(self) -> int:
        with self._lock:
            return self._poll() if self.enabled else 0

    def disable(self) -> None:
        """Stop reading; returns once the poll in progress has ended."""
        with self._lock:
            self.enabled = False

    def _unread(self, shard_id: str, position: str | None) -> list[dict[str, Any]]:
        """Every record of the shard after ``position`` (the runner's client: the runner is paused)."""
        return stream_records(self.runner.streams, self.runner.stream_arn, after=position, shard_id=shard_id)

    def enable(self, *, trim_before: datetime | None = None, limit: int = 0) -> None:
        """Read again, past what retention trimmed.

        The oldest outbox INSERTs not handled yet that were written before ``trim_before``, at most ``limit``.
        """
        with self._lock:
            if trim_before is not None and limit > 0:
                cutoff = iso(trim_before)
                for shard in list(self.runner.shards.values()):
                    if shard.finished:
                        continue
                    mark = None
                    for record in (
                        [r for b in shard.pending for r in b.records]
                        + shard.buffer
                        + self._unread(shard.shard_id, shard.position)
                    ):
                        if not _entry_id(record):
                            continue
                        if limit == 0 or _created_at(record) > cutoff:
                            break
                        mark, limit = str(record["dynamodb"]["SequenceNumber"]), limit - 1
                    if mark is not None:
                        self._trim(shard.shard_id, mark)
            self.enabled = True

    def _trim(self, shard_id: str, mark: str) -> None:
        shard = self.runner.shards.get(shard_id)
        if shard is None:
            return
        last = int(mark)
        lost = [r for batch in shard.pending for r in batch.records] + shard.buffer
        lost += [r for r in self._unread(shard_id, shard.position) if _seq(r) <= last]
        self.trimmed += [_entry_id(r) for r in lost if _seq(r) <= last and _entry_id(r)]
        for batch in shard.pending:
            batch.records = [r for r in batch.records if _seq(r) > last]
        kept = [batch for batch in shard.pending if batch.records]
        shard.pending.clear()
        shard.pending.extend(kept)
        shard.buffer = [r for r in shard.buffer if _seq(r) > last]
        if shard.position is None or int(shard.position) < last:
            shard.position = mark
        if shard.checkpoint is None or int(shard.checkpoint) < last:
            shard.checkpoint = mark


# The harness's own reads (whole-table scans, queue drains) wait on an emulator the pipeline keeps
# busy: a page of a 20,000-item scan took over the handlers' 5 s read timeout on a loaded machine.
PATIENT = Config(connect_timeout=10, read_timeout=120, retries={"mode": "standard", "max_attempts": 5})


def patient(service: str) -> Any:
    """A client of the stack's endpoint (AWS_ENDPOINT_URL) for the harness's own reads."""
    return boto3.session.Session().client(service, config=PATIENT)  # type: ignore[call-overload]


def dynamodb_of(store: MessageStore) -> DynamoDBClient:
    """The client of a handler's store: the stack's handlers run the DynamoDB adapter."""
    return cast("DynamoDBMessageStore", store).client


def visibility_client(visibility: Visibility | None) -> SQSClient:
    """The client of a function's visibility changes: the stack's functions run the SQS adapter."""
    return cast("SqsVisibility", _required(visibility, "the function's visibility")).client


def sqs_of(publisher: Publisher) -> SQSClient:
    """The client of a handler's publisher: the stack's handlers run the SQS adapter."""
    return cast("SqsPublisher", publisher).client


def scan(table: str, prefix: str, hash_key: str = "pk", projection: str | None = None) -> Iterator[dict[str, Any]]:
    """Every item whose hash key starts with ``prefix``, page by page (``projection``: only those attributes)."""
    client = patient("dynamodb")
    kwargs: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "begins_with(#pk, :p)",
        "ExpressionAttributeNames": {"#pk": hash_key},
        "ExpressionAttributeValues": {":p": {"S": prefix}},
        "ConsistentRead": True,
    }
    if projection:
        names = {f"#a{i}": name for i, name in enumerate(projection.split(","))}
        kwargs["ProjectionExpression"] = ", ".join(names)
        kwargs["ExpressionAttributeNames"] |= names
    while True:
        page = client.scan(**kwargs)
        yield from page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _seq(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"])


def _created_at(record: dict[str, Any]) -> str:
    """The created_at of an outbox INSERT stream record ('' if it has none)."""
    return str(record.get("dynamodb", {}).get("NewImage", {}).get("created_at", {}).get("S", ""))


def _entry_id(record: dict[str, Any]) -> str:
    """The message_id of an outbox INSERT stream record, else ''."""
    change = record.get("dynamodb", {})
    if record.get("eventName") != "INSERT" or not change.get("Keys", {}).get("pk", {}).get("S", "").startswith(
        OUTBOX_PREFIX
    ):
        return ""
    return str(change.get("NewImage", {}).get("message_id", {}).get("S", ""))


def expire_entries(resources: Resources, accepted: dict[str, Any], wanted: int, rng: random.Random) -> list[str]:
    """Delete the outbox entries of ``wanted`` accepted messages, chosen among those still PENDING."""
    pending = {
        item["message_id"]["S"]
        for item in scan(resources.table_name, RECORD_PREFIX)
        if item["status"]["S"] == Status.PENDING and item["message_id"]["S"] in accepted
    }
    entries = {
        item["message_id"]["S"]: {k: item[k] for k in (resources.hash_key, resources.range_key)}
        for item in scan(resources.table_name, OUTBOX_PREFIX)
        if item["message_id"]["S"] in pending
    }
    chosen = rng.sample(sorted(entries), min(wanted, len(entries)))
    client = patient("dynamodb")
    for message_id in chosen:
        client.delete_item(TableName=resources.table_name, Key=entries[message_id])
    return chosen


@dataclass
class Disruptions:
    """What the run did to the pipeline besides faults."""

    messages: int
    pause_s: float
    expire: float
    trim: float
    retention_s: float
    seed: int
    expired: list[str] = field(default_factory=list)
    error: str | None = None
    paused_at: float = 0.0

    def run(self, trigger: Trigger, resources: Resources, accepted: dict[str, Any], half: int) -> None:
        """Once ``half`` messages are accepted: pause the trigger, expire entries midway, resume (trimmed)."""
        try:
            while len(accepted) < half:
                time.sleep(0.05)
            if self.pause_s > 0:
                trigger.disable()
                self.paused_at = time.monotonic()
                time.sleep(self.pause_s / 2)
            if self.expire > 0:
                wanted = round(self.expire * self.messages)
                self.expired = expire_entries(resources, dict(accepted), wanted, random.Random(self.seed))  # noqa: S311 - seeded dice
            if self.pause_s > 0:
                time.sleep(max(0.0, self.paused_at + self.pause_s - time.monotonic()))
                trimmed = round(self.trim * self.messages)
                trigger.enable(trim_before=utc_now() - timedelta(seconds=self.retention_s), limit=trimmed)
        except Exception as exc:  # noqa: BLE001 - reported in the tally, never a stray traceback
            self.error = f"{type(exc).__name__}: {exc}"
            trigger.enable()


@dataclass
class Replays:
    """Optional operator replays beside the worker (``--with-replays``); interruptions are counted, not printed."""

    table: str
    worker: Any  # the stack's stream worker: its store and publisher
    interrupted: Counter[str] = field(default_factory=Counter)
    runs: int = 0

    def once(self, statuses: tuple[str, ...] = ("PENDING",)) -> None:
        """One operator replay of each status, min-age 0."""
        worker = self.worker
        reader = DynamoDBOutboxReader(TableLayout(self.table), dynamodb_of(worker.relay.store))
        for status in statuses:
            relay = Relay(worker.relay.store, worker.relay.publisher, by="replay", expected=FLIP_FROM[status])
            selection = Selection.window(status=status)
            try:
                Replayer(reader, relay).run(Checkpoint(selection))
            except (Exception, SimulatedCrash) as exc:  # noqa: BLE001 - a replay process dying is part of the chaos
                self.interrupted[type(exc).__name__] += 1
            finally:
                relay.close()
        self.runs += 1

    def every(self, interval_s: float, stop: threading.Event) -> None:
        """Replay until ``stop``."""
        while not stop.wait(interval_s):
            self.once()


@dataclass
class Sent:
    """What the clients sent: accepted messages, client-side times, HTTP statuses."""

    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # message_id -> payload
    first_sent: dict[str, float] = field(default_factory=dict)  # message_id -> first attempt started
    answered: dict[str, float] = field(default_factory=dict)  # message_id -> its 202 received
    statuses: Counter[int] = field(default_factory=Counter)
    writer: dict[str, str] = field(default_factory=dict)  # message_id -> a library writer (else the API's)
    made_after: dict[str, str] = field(default_factory=dict)  # second of a same-millisecond pair -> the first


def send_all(client: Client, n: int, run_id: str, sent: Sent, *, rate: float = 0.0, attempts: int = 50) -> None:
    """POST n messages (at most ``rate`` a second, if set), each with its own Idempotency-Key.

    A 5xx is retried with the same key.
    """
    lock = threading.Lock()
    origin = time.monotonic()

    def one(i: int) -> None:
        payload = sample_payload(i, groups=11)
        headers = {"content-type": "application/json", "idempotency-key": f"chaos-{run_id}-{i}"}
        body = json.dumps(payload).encode()
        if rate > 0:
            time.sleep(max(0.0, origin + i / rate - time.monotonic()))
        started = time.monotonic()
        for attempt in range(attempts):
            try:
                status, answer = client.post(body, headers)
            except OSError:
                status, answer = 599, {}
            with lock:
                sent.statuses[status] += 1
            if status in (200, 202):
                message_id = str(answer["message_id"])
                with lock:
                    sent.first_sent[message_id] = started
                    sent.answered[message_id] = time.monotonic()
                    sent.accepted[message_id] = payload
                return
            time.sleep(min(1.0, 0.05 * 2**attempt))

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(one, range(n)))


CROSS_WRITER_MARGIN_S = 5.0  # twice the worker's clock-skew allowance (2 s), and the stream's 1 s rounding
WRITER_SKEWS = {"api": 0.0, "pairs": 0.0, "ahead": 2.0, "behind": -2.0}


@dataclass
class LibraryWriters:
    """Writers beside the API: same-millisecond pairs of a group, and two processes whose clocks are 2 s off."""

    table: str
    pairs: int
    skewed: int
    written: Counter[str] = field(default_factory=Counter)
    error: str | None = None

    def run(self, sent: Sent, rate: float) -> None:
        """Write them all, spread over the API's sending time (``rate``: the API's messages a second)."""
        pair_time = [utc_now()]
        client = patient("dynamodb")
        outboxes = {
            "pairs": Outbox(self.table, client=client, clock=WriteClock(lambda: pair_time[0]), by="pairs"),
            "ahead": Outbox(self.table, client=client, clock=WriteClock(lambda: utc_now() + timedelta(seconds=2))),
            "behind": Outbox(self.table, client=client, clock=WriteClock(lambda: utc_now() - timedelta(seconds=2))),
        }
        jobs = [("pairs", i) for i in range(self.pairs)] + [
            ("ahead" if i % 2 else "behind", i) for i in range(self.skewed)
        ]
        random.Random(len(jobs)).shuffle(jobs)  # noqa: S311 - seeded dice
        origin, pace = time.monotonic(), (rate / 10 if rate > 0 else 0.0)
        try:
            for n, (name, i) in enumerate(jobs):
                if pace:
                    time.sleep(max(0.0, origin + n / pace - time.monotonic()))
                pair_time[0] = utc_now()
                count = 2 if name == "pairs" else 1
                grouped = sample_payload(5 * (1000 + i), groups=11)  # every 5th is grouped
                payloads = [grouped | {"body": f"{name} {i}.{k}"} for k in range(count)]
                started = time.monotonic()
                messages = [
                    outboxes[name].message(
                        parse_notification(p).to_dict(), type=NOTIFICATION_TYPE, group_key=p["group_key"]
                    )
                    for p in payloads
                ]
                for batch in [messages] if name != "pairs" or i % 2 == 0 else [[m] for m in messages]:
                    _write(outboxes[name], batch)
                answered = time.monotonic()
                for message, payload in zip(messages, payloads, strict=True):  # one key each: no lock needed
                    sent.first_sent[message.message_id] = started
                    sent.answered[message.message_id] = answered
                    sent.writer[message.message_id] = name
                    sent.accepted[message.message_id] = payload
                if count == 2:
                    sent.made_after[messages[1].message_id] = messages[0].message_id
                self.written[name] += count
        except Exception as exc:  # noqa: BLE001 - reported in the tally, never a stray traceback
            self.error = f"{type(exc).__name__}: {exc}"


def _write(outbox: Outbox, messages: list[Any], attempts: int = 5) -> None:
    """One transaction, tried again on an AWS error (an emulator busy with the pipeline)."""
    for attempt in range(attempts):
        try:
            outbox.transact_write([], *messages)
            return
        except OutboxError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt)


def _ordered_across(sent: Sent, earlier: str, later: str) -> bool:
    """Whether invariant 8 orders two messages of one group (``earlier`` answered before ``later`` was sent)."""
    one, other = sent.writer.get(earlier, "api"), sent.writer.get(later, "api")
    if one == other:
        return True
    apart = abs(WRITER_SKEWS[one] - WRITER_SKEWS[other]) + CROSS_WRITER_MARGIN_S
    return sent.answered[earlier] + apart < sent.first_sent[later]


def records_by_id(table: str, hash_key: str = "pk") -> dict[str, str]:
    """message_id -> status of every record (a projected scan)."""
    return {
        item["message_id"]["S"]: item["status"]["S"]
        for item in scan(table, RECORD_PREFIX, hash_key, projection="message_id,status")
    }


def drain_queue(url: str) -> Iterator[dict[str, Any]]:
    """Receive (and delete) everything in a queue; a FIFO queue hides a group while one of its messages is in flight."""
    client = patient("sqs")
    empty = 0
    while empty < 2:
        messages = client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=300, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            empty += 1
            continue
        empty = 0
        yield from messages
        client.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        )


def queue_depth(url: str) -> int:
    """Messages in the queue, visible or in flight."""
    names: Any = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = patient("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes.get(name, 0)) for name in names)


def dead_letters(url: str) -> list[str]:
    """The message_id of every copy in the dead-letter queue (received and deleted)."""
    return [_message_id(message["Body"]) for message in drain_queue(url)]


def _message_id(body: object) -> str:
    """The message_id a copy's body names, or ``<unreadable>``."""
    try:
        return str(json.loads(str(body))["message_id"])
    except (ValueError, KeyError, TypeError):
        return "<unreadable>"


def out_of_order(sent: Sent, log: DeliveryLog) -> list[tuple[int, str, str]]:
    """Delivery calls of a grouped message B made while some A of its group that precedes it had none yet.

    Returns (index of the call, B, the earliest-accepted such A) per such call; see the module doc.
    """
    groups: dict[str, list[str]] = {}
    for message_id, payload in sent.accepted.items():
        if payload.get("group_key"):
            groups.setdefault(payload["group_key"], []).append(message_id)
    for members in groups.values():
        members.sort(key=lambda m: sent.answered[m])
    group_of = {m: g for g, ms in groups.items() for m in ms}
    found = []
    for index, message_id in enumerate(log.calls):
        group = group_of.get(message_id)
        if group is None:
            continue
        pair = sent.made_after.get(message_id)
        for earlier in [*([pair] if pair else []), *_answered_before(sent, groups[group], message_id)]:
            if earlier != pair and not _ordered_across(sent, earlier, message_id):
                continue
            if log.first.get(earlier, -1) > index:
                found.append((index, message_id, earlier))
                break
    return found


def _answered_before(sent: Sent, members: list[str], message_id: str) -> Iterator[str]:
    """The members (sorted by answer) answered before ``message_id``'s first request was sent."""
    for member in members:
        if sent.answered[member] >= sent.first_sent[message_id]:
            return  # sorted by answer: no later member precedes it either
        yield member


def count(
    sent: Sent, records: dict[str, dict[str, Any]], entries: Counter[str], deliveries: Counter[str], expired: set[str]
) -> dict[str, Any]:
    """The Jepsen-style tally over the whole table (records and outbox entries) and every copy."""
    accepted = sent.accepted
    backward = changed = stuck = failed = 0
    moved_by: Counter[str] = Counter()
    lags: list[float] = []  # accept to the first move out of PENDING, per message
    for message_id, payload in accepted.items():
        record = records.get(message_id)
        if record is None:
            continue
        steps = [h["M"] for h in record["history"]["L"]]
        history = [step["status"]["S"] for step in steps]
        if len(steps) > 1:
            moved_by[f"{history[1]} by {steps[1].get('by', {}).get('S', '?')}"] += 1
            lags.append(_seconds_between(steps[0]["at"]["S"], steps[1]["at"]["S"]))
        if history[0] != Status.PENDING:
            backward += 1
        backward += sum(not is_allowed(Status(a), Status(b)) for a, b in itertools.pairwise(history))
        expected_entries = 0 if message_id in expired else 1
        if (
            record["payload"]["S"] != parse_notification(payload).canonical_json()
            or entries[message_id] != expected_entries
        ):
            changed += 1
        stuck += record["status"]["S"] not in TERMINAL
        failed += record["status"]["S"] == Status.FAILED
    copies = sum(deliveries[m] for m in accepted)
    return {
        "messages": len(accepted),
        "lost": sum(1 for m in accepted if m not in records or deliveries[m] == 0),
        "unexpected": len(set(records) - set(accepted)),
        "duplicates": sum(1 for m in accepted if deliveries[m] > 1),
        "stuck_after_sweep": stuck,
        "backward_transitions": backward,
        "changed_records": changed,
        "failed": failed,
        "copies_per_message": round(copies / len(accepted), 3) if accepted else 0.0,
        "left_pending": dict(moved_by.most_common()),
        "pending_s": _quantiles(lags),
    }


def copies_by_cause(sent: Sent, harness: Harness, outcomes: dict[str, int]) -> dict[str, float]:
    """``copies_per_message`` split by why each copy was received: per accepted message, summing to it.

    ``first_receive``: a message's first copy received; ``died_*``: copies of a consumer invocation
    that died, received again (``delivered``: the invocation had delivered that message before it
    died); ``retried_<cause>``: copies the consumer gave back (``RetryCause``); ``resent``: copies
    of a second SQS message of one message (a re-send: sweeper, replay, the relay's retries that
    were not deduplicated); ``unexplained``: the rest (a copy whose visibility ran out while it was
    being processed, copies received last whose retry never came back; may be negative).
    """
    accepted = sent.accepted
    if not accepted:
        return {}
    receives = sum(harness.deliveries[m] for m in accepted)
    first = sum(1 for m in accepted if harness.deliveries[m])
    causes: dict[str, int] = {
        "died_delivered": harness.died_copies["delivered"],
        "died_not_delivered": harness.died_copies["not_delivered"],
        **{k: n for k, n in sorted(outcomes.items()) if k.startswith("retried_") and n},
        "resent": sum(max(0, len(harness.sqs_copies.get(m, ())) - 1) for m in accepted),
    }
    causes["unexplained"] = receives - first - sum(causes.values())
    return {key: round(n / len(accepted), 3) for key, n in {"first_receive": first, **causes}.items()}


def requests_per_message(calls: dict[str, int], messages: int) -> dict[str, float]:
    """AWS requests per accepted message, by operation and in all (each costs money), faulted ones included."""
    if not messages:
        return {}
    per = {operation: round(n / messages, 3) for operation, n in sorted(calls.items())}
    return per | {"all": round(sum(calls.values()) / messages, 3)}


def invocation_summary(invocations: Counter[str]) -> dict[str, float]:
    """Consumer invocations: how many, how many died, their mean and largest batch."""
    calls = invocations["invocations"]
    return {
        "invocations": calls,
        "died": invocations["died"],
        "died_share": round(invocations["died"] / calls, 3) if calls else 0.0,
        "mean_batch": round(invocations["copies"] / calls, 2) if calls else 0.0,
        "largest_batch": invocations["longest"],
    }


def stranded(sent: Sent, records: dict[str, dict[str, Any]], *, copies: set[str], unseen: int = 0) -> list[str]:
    """Accepted messages in flight (QUEUED or PROCESSING) with no copy in either queue and no live lease.

    Nothing would ever end them: no receive is coming, no lease holder, and the sweeper reads
    PENDING only. ``copies`` names the messages with a copy left in the main or dead-letter queue;
    ``unseen`` copies no receive could see (still invisible) are credited to as many of these, so
    with copies unseen the count is a lower bound (a run that settled leaves none).
    """
    now = iso(utc_now())
    found = []
    for message_id in sent.accepted:
        record = records.get(message_id)
        if record is None or record["status"]["S"] not in (Status.QUEUED, Status.PROCESSING):
            continue
        live = record.get("lease_until", {}).get("S", "") > now
        if not live and message_id not in copies:
            found.append(message_id)
    return found[unseen:]


def lease_takeovers(sent: Sent, records: dict[str, dict[str, Any]]) -> int:
    """PROCESSING -> PROCESSING steps in the accepted messages' histories: a receive took over another's lease."""
    steps = 0
    for message_id in sent.accepted:
        history = [line["M"]["status"]["S"] for line in records.get(message_id, {}).get("history", {}).get("L", [])]
        steps += sum(a == b == Status.PROCESSING for a, b in itertools.pairwise(history))
    return steps


def exercised(faults: dict[str, int], kind: str) -> int:
    """How many faults of ``kind`` were injected, over every operation."""
    return sum(n for key, n in faults.items() if key.endswith(f":{kind}"))


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _quantiles(values: list[float]) -> dict[str, float]:
    """p50, p99 and max, rounded to 0.1 s."""
    if not values:
        return {}
    ordered = sorted(values)
    pick: Callable[[float], float] = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": round(pick(0.5), 1), "p99": round(pick(0.99), 1), "max": round(ordered[-1], 1)}


def swept_by_bucket(sent: Sent, records: dict[str, dict[str, Any]], buckets: int = 16) -> dict[int, dict[str, float]]:
    """For the messages the sweeper moved out of PENDING: how long they had waited, per outbox bucket."""
    waited: dict[int, list[float]] = {}
    for message_id, payload in sent.accepted.items():
        steps = [h["M"] for h in records.get(message_id, {}).get("history", {}).get("L", [])]
        if len(steps) > 1 and steps[1].get("by", {}).get("S") == "sweeper":
            bucket = bucket_of(payload.get("group_key") or message_id, buckets)
            waited.setdefault(bucket, []).append(_seconds_between(steps[0]["at"]["S"], steps[1]["at"]["S"]))
    return {bucket: {"n": len(w)} | _quantiles(w) for bucket, w in sorted(waited.items())}


def sweep_summary(sweeps: list[dict[str, Any]]) -> dict[str, Any]:
    """How many sweeps ran, what they relayed, how many were cut short, the longest wait they saw."""
    return {
        "runs": len(sweeps),
        "relayed": sum(s.get("relayed", 0) for s in sweeps),
        "already_moved": sum(s.get("already_moved", 0) for s in sweeps),
        "with_failures": sum(1 for s in sweeps if s.get("failed") or "error" in s),
        "max_pending": max((s.get("pending", 0) for s in sweeps), default=0),
        "max_oldest_pending_age_s": round(max((s.get("oldest_pending_age_s", 0.0) for s in sweeps), default=0.0), 1),
    }


def history(record: dict[str, Any] | None) -> list[str]:
    """A record's history as 'STATUS by at' lines."""
    if record is None:
        return []
    lines = []
    for step in record["history"]["L"]:
        line = step["M"]
        lines.append(f"{line['status']['S']} by {line.get('by', {}).get('S', '?')} at {line['at']['S']}")
    return lines


def wait_for(predicate: Callable[[], bool], progress: Callable[[], Any], timeout_s: float, stall_s: float) -> bool:
    """Poll ``predicate`` until true, the timeout, or ``progress()`` has not changed for ``stall_s``."""
    deadline = time.monotonic() + timeout_s
    last, since = progress(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < stall_s:
        if predicate():
            return True
        time.sleep(0.5)
        if (now := progress()) != last:
            last, since = now, time.monotonic()
    return False


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fifo", action="store_true", help="a FIFO queue: out_of_order is counted")
    parser.add_argument(
        "--rate", type=float, default=10.0, help="messages a second the clients send (0: as fast as they can)"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the pipeline to drain")
    parser.add_argument("--stall", type=float, default=90.0, help="stop waiting after this long without progress")
    parser.add_argument("--pause-s", type=float, default=10.0, help="how long the trigger is disabled mid-run")
    parser.add_argument("--no-pause", action="store_true", help="never disable the trigger")
    parser.add_argument(
        "--trim", type=float, default=0.05, help="at most this share of messages lose their stream record in the pause"
    )
    parser.add_argument(
        "--retention-s",
        type=float,
        help=(
            "stream records older than this when the trigger comes back are trimmed"
            " (default: sweep min age + 1.5 intervals)"
        ),
    )
    parser.add_argument("--expire", type=float, default=0.02, help="share of messages whose entry expires")
    parser.add_argument("--no-expiry", action="store_true", help="no outbox entry expires")
    parser.add_argument("--with-replays", action="store_true", help="an operator replay every 2 s during faults")
    parser.add_argument("--pairs", type=int, help="same-millisecond pairs of a group (default: messages / 40)")
    parser.add_argument("--skewed", type=int, help="messages from writers 2 s ahead / behind (default: messages / 20)")
    parser.add_argument("--widen-ms", type=float, default=5.0, help="each delivery call sleeps this long first")
    parser.add_argument(
        "--lease-s",
        type=float,
        default=15.0,
        help="consumer invocations' deadline (their lease: that and 5 s) and the dead-letter function's lease",
    )
    parser.add_argument(
        "--consumer-batch-size",
        type=int,
        default=10,
        help="copies per consumer invocation (the SQS mapping's batch size: the module's consumer_batch_size)",
    )
    parser.add_argument(
        "--acknowledge-after",
        type=int,
        help="the consumer's early deletes: finished copies a request (0: none; default: the consumer's policy)",
    )
    parser.add_argument(
        "--deaths",
        choices=("per-invocation", "per-call"),
        default="per-invocation",
        help=(
            "per-invocation: --fault-rate of the consumer's and dead-letter function's invocations die, at a"
            " point among their writes; per-call: every function dies after a share of its writes"
        ),
    )
    parser.add_argument("--sweep-interval", type=float, default=2.0)
    parser.add_argument("--sweep-min-age", type=int, default=5)
    parser.add_argument(
        "--concurrent-receives", action="store_true", help="FIFO: let the emulator's racy receives run concurrently"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--details", help="write every violation (with record histories) to this JSON file")
    args = parser.parse_args(argv)
    if args.messages < 1 or not 0 <= args.fault_rate < 1 or not 0 <= args.expire < 1 or not 0 <= args.trim <= 1:
        parser.error("--messages must be positive, --fault-rate and --expire in [0, 1), --trim in [0, 1]")
    return args


@dataclass
class Harness:
    """The wrappers put around the stack's functions for one run."""

    deliveries: Counter[str] = field(default_factory=Counter)  # message_id -> copies the consumer was handed
    receipts: dict[str, list[str]] = field(default_factory=dict)  # message_id -> "time runner seq receives" per copy
    log: DeliveryLog = field(default_factory=DeliveryLog)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sweeps: list[dict[str, Any]] = field(default_factory=list)  # each sweep's report, when and how long
    dead: list[str] = field(default_factory=list)  # message_id of every copy handed to the dead-letter function
    started: float = field(default_factory=time.monotonic)
    sends: SendLog | None = None
    trigger: Trigger | None = None
    sqs_copies: dict[str, set[str]] = field(default_factory=dict)  # message_id -> SQS messageIds received
    invocations: Counter[str] = field(default_factory=Counter)  # consumer invocations, died, copies, longest
    died_copies: Counter[str] = field(default_factory=Counter)  # copies of died invocations: delivered or not
    _invocation: threading.local = field(default_factory=threading.local)

    def counting(self, invoke: Invoke, runner: int) -> Invoke:
        """Count (and note) every copy the consumer is handed, by message_id, and what became of its invocation."""

        def wrapped(event: dict[str, Any], context: Any) -> Any:
            at = time.monotonic() - self.started
            records = event.get("Records", [])
            with self.lock:
                for record in records:
                    message_id = _message_id(record.get("body"))
                    self.deliveries[message_id] += 1
                    self.sqs_copies.setdefault(message_id, set()).add(str(record.get("messageId")))
                    attributes = record.get("attributes", {})
                    self.receipts.setdefault(message_id, []).append(
                        f"{at:.3f}s runner {runner} seq {attributes.get('SequenceNumber', '-')}"
                        f" receive {attributes.get('ApproximateReceiveCount', '?')}"
                    )
            delivered: set[str] = set()
            acknowledged: set[str] = set()  # SQS messageIds the consumer deleted early
            self._invocation.delivered, self._invocation.acknowledged = delivered, acknowledged
            try:
                return invoke(event, context)
            except Exception:
                # The batch comes back (Lambda: after the visibility timeout): every copy not
                # deleted early is received again, those it had delivered included.
                with self.lock:
                    self.invocations["died"] += 1
                    for record in records:
                        if str(record.get("messageId")) in acknowledged:
                            continue
                        finished = _message_id(record.get("body")) in delivered
                        self.died_copies["delivered" if finished else "not_delivered"] += 1
                raise
            finally:
                with self.lock:
                    self.invocations["invocations"] += 1
                    self.invocations["copies"] += len(records)
                    self.invocations["longest"] = max(self.invocations["longest"], len(records))

        return wrapped

    def noting_acknowledged(self, visibility: Any) -> None:
        """Note the copies the consumer deletes early in this thread's invocation (a death after its delete too)."""
        acknowledge = visibility.acknowledge

        def wrapped(records: Any) -> None:
            try:
                acknowledge(records)
            finally:  # the early delete's own errors are caught inside: only a death gets here by raising
                noted: set[str] | None = getattr(self._invocation, "acknowledged", None)
                if noted is not None:
                    noted.update(str(record.get("messageId")) for record in records)

        visibility.acknowledge = wrapped

    def noting_delivered(self, deliver: Callable[[Envelope], None]) -> Callable[[Envelope], None]:
        """``deliver``, noting each message it delivered in this thread's consumer invocation."""

        def wrapped(envelope: Envelope) -> None:
            deliver(envelope)
            delivered: set[str] | None = getattr(self._invocation, "delivered", None)
            if delivered is not None:
                delivered.add(envelope.message_id)

        return wrapped

    def noting_dead_letters(self, invoke: Invoke) -> Invoke:
        """Note the message_id of every copy the dead-letter function is handed."""

        def wrapped(event: dict[str, Any], context: Any) -> Any:
            with self.lock:
                self.dead.extend(_message_id(record.get("body")) for record in event.get("Records", []))
            return invoke(event, context)

        return wrapped

    def install(
        self,
        stack: LocalStack,
        *,
        serial_receives: bool,
        lease_s: float = 30.0,
        consumer_batch_size: int = 10,
        deaths: Deaths | None = None,
    ) -> Trigger:
        """Crashes as function errors, copies counted, deliveries logged, the trigger switchable, leases short.

        ``lease_s``: each consumer invocation's deadline (its lease runs that long, and the
        consumer's margin), and the dead-letter function's lease, so that a receive that died
        holding a lease is taken over within the run. ``consumer_batch_size``: the SQS mapping's
        batch size (the Terraform module's ``consumer_batch_size``, 10 by default). ``deaths``: the
        SQS-triggered functions' invocations die as it says (none die of it without one).
        """
        dying = deaths.dying if deaths is not None else lambda invoke, _: invoke
        # Each copy: the consumer's lease and end, and its share of an early delete; the dead-letter
        # function's lease and FAILED.
        acknowledge_after = stack.functions.consumer.policy.acknowledge_after
        consumer_writes = 2 + (1 / acknowledge_after if acknowledge_after else 0)
        runner = _required(stack.stream_runner, "the stack's stream runner")
        runner.invoke = crash_is_function_error(runner.invoke)
        receiving = threading.Lock()
        self.sends = SendLog(self.started)
        self.sends.attach(sqs_of(stack.functions.worker.relay.publisher), "worker")
        self.sends.attach(sqs_of(stack.functions.sweeper.relay.publisher), "sweeper")
        for index, sqs_runner in enumerate(stack.consumer_runners):
            sqs_runner.invoke = self.counting(crash_is_function_error(dying(sqs_runner.invoke, consumer_writes)), index)
            sqs_runner.function_timeout_s = lease_s
            sqs_runner.batch_size = consumer_batch_size
            if serial_receives:
                sqs_runner.sqs = SerialReceives(sqs_runner.sqs, receiving)
        dead_letter_runner = _required(stack.dead_letter_runner, "the stack's dead-letter runner")
        dead_letter_runner.invoke = self.noting_dead_letters(
            crash_is_function_error(dying(dead_letter_runner.invoke, 2))
        )
        stack.functions.dead_letters.lease_s = round(lease_s)
        the_consumer = stack.functions.consumer
        the_consumer.deliver = self.noting_delivered(self.log.wrap(the_consumer.deliver))
        self.noting_acknowledged(_required(the_consumer.visibility, "the consumer's visibility"))
        stack.schedule = self.noting_sweeps(crash_is_function_error(stack.schedule))  # the sweeper, each schedule
        self.trigger = Trigger(runner)
        return self.trigger

    @staticmethod
    def stop_receiving(stack: LocalStack) -> None:
        """The SQS mappings receive nothing more (a poll under way ends), so that the queues can be read as left."""

        def idle() -> int:
            time.sleep(0.1)
            return 0

        for sqs_runner in [*stack.consumer_runners, _required(stack.dead_letter_runner, "the dead-letter runner")]:
            sqs_runner.poll_once = idle  # type: ignore[method-assign]

    def noting_sweeps(self, invoke: Invoke) -> Invoke:
        """Keep each sweep's report (or its error), with its start and duration."""

        def wrapped(event: Any, context: Any) -> Any:
            at = time.monotonic()
            note: dict[str, Any] = {"at_s": round(at - self.started, 3)}
            try:
                report = invoke(event, context)
                note |= report
                return report
            except Exception as exc:
                note["error"] = type(exc).__name__
                raise
            finally:
                note["took_s"] = round(time.monotonic() - at, 3)
                self.sweeps.append(note)

        return wrapped


def settle(stack: LocalStack, sent: Sent, harness: Harness, timeout_s: float, stall_s: float) -> None:
    """Without faults or an operator: wait until every message is terminal, the stream idle, the queue empty."""
    resources = stack.require_resources()
    runner = _required(stack.stream_runner, "the stack's stream runner")
    stats = stack.functions.consumer.stats
    last_scan = [0.0, -1]  # when, how many non-terminal

    def done() -> bool:
        # A whole-table scan holds the emulator's DynamoDB lock: only when the consumer's own count
        # says it is finished, or every 30 s, so that settling is not slowed by watching it.
        finished = stats["completed"] + stats["failed"] >= len(sent.accepted)
        if time.monotonic() - last_scan[0] < (5.0 if finished else 30.0):
            return False
        try:
            statuses = records_by_id(resources.table_name, resources.hash_key)
            empty = queue_depth(resources.queue_url) == 0
        except Exception:  # noqa: BLE001 - a slow emulator: look again later
            last_scan[0] = time.monotonic()
            return False
        last_scan[:] = [time.monotonic(), sum(statuses.get(m) not in TERMINAL for m in sent.accepted)]
        idle = all(not s.pending and not s.buffer for s in runner.shards.values())
        return last_scan[1] == 0 and idle and empty

    def progress() -> tuple[float, ...]:
        return (
            stats["completed"],
            stats["failed"],
            stats["duplicates"],
            sum(harness.deliveries.values()),
            last_scan[1],
        )

    wait_for(done, progress, timeout_s, stall_s)


def write_details(
    path: str,
    *,
    sent: Sent,
    records: dict[str, dict[str, Any]],
    harness: Harness,
    trimmed: set[str],
    expired: set[str],
    dead: list[str],
    disorder: list[tuple[int, str, str]],
) -> None:
    """Every violation, with what the run did to each message and its record's history, as JSON."""
    statuses = {m: r["status"]["S"] for m, r in records.items()}

    def about(message_id: str) -> dict[str, Any]:
        return {
            "message_id": message_id,
            "group": sent.accepted.get(message_id, {}).get("group_key"),
            "trimmed": message_id in trimmed,
            "expired": message_id in expired,
            "copies": harness.deliveries[message_id],
            "sent": [f"{at:.3f}s by {who}" for at, who in harness.sends.sends.get(message_id, [])]
            if harness.sends
            else [],
            "receipts": harness.receipts.get(message_id, []),
            "delivery_calls": [
                f"{at:.3f}s" for m, at in zip(harness.log.calls, harness.log.started, strict=True) if m == message_id
            ],
            "history": history(records.get(message_id)),
        }

    details = {
        "stuck": [about(m) for m in sent.accepted if statuses.get(m) not in TERMINAL],
        "dead_letter_non_terminal": [about(m) for m in dead if statuses.get(m) not in TERMINAL],
        "concurrent": [about(m) for m in harness.log.overlaps],
        "out_of_order": [{"call": i, "delivered": about(b), "before": about(a)} for i, b, a in disorder],
        "trimmed": sorted(trimmed),
        "expired": sorted(expired),
        "sweeps": harness.sweeps,
        "swept_pending_s_by_bucket": swept_by_bucket(sent, records),
    }
    with open(path, "w", encoding="utf-8") as out:
        json.dump(details, out, indent=1)


@dataclass
class Observed:
    """What the run left behind, read before the stack stopped."""

    records: dict[str, dict[str, Any]]
    entries: Counter[str]
    dead: list[str]  # every copy that reached the dead-letter queue, settled or left there
    dead_outcomes: dict[str, int]
    outcomes: dict[str, int]
    stream: dict[str, int]
    faults: dict[str, int]
    calls: dict[str, int]  # AWS requests of the handlers and the SQS mappings, by operation
    replays: Replays
    library: LibraryWriters
    queued: set[str] = field(default_factory=set)  # message_id of every copy left in the queue
    unseen_copies: int = 0  # copies left in the queue that no receive could see (still invisible)
    deaths_at_end: int = 0  # invocations that died after their last write


def drive(args: argparse.Namespace, sent: Sent, harness: Harness, disruptions: Disruptions) -> Observed:
    """Run the stack through faults and disruptions, then settle it with no operator, and read what is left."""
    config = StackConfig(
        api_port=0,
        fifo=args.fifo,
        batch_size=20,  # under 20 % faults most batches fail somewhere: smaller ones, and a short backoff cap
        retry_backoff_max_s=1.0,
        sweep_interval_s=args.sweep_interval,
        sweep_min_age_s=args.sweep_min_age,
    )
    with LocalStack(config) as stack:
        resources = stack.require_resources()
        # The harness's own clients (boto3, PATIENT) find the stack through the environment.
        os.environ.update({**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": stack.emulator.endpoint_url})
        functions = stack.functions
        clients = [
            dynamodb_of(functions.api.acceptor.store),
            dynamodb_of(functions.worker.relay.store),
            sqs_of(functions.worker.relay.publisher),
            dynamodb_of(functions.consumer.store),
            dynamodb_of(functions.sweeper.relay.store),
            sqs_of(functions.sweeper.relay.publisher),
            dynamodb_of(functions.dead_letters.store),
            visibility_client(functions.consumer.visibility),
            visibility_client(functions.dead_letters.visibility),
            stack.clients.sqs,  # the SQS mappings': they delete what was acknowledged
        ]
        injector = FaultInjector(*clients, seed=args.seed)
        deaths = Deaths(args.fault_rate, seed=args.seed + 2, per_call=args.deaths == "per-call")
        arm(injector, args.fault_rate, deaths)
        # The consumer's early deletes are calls it can die after, as after its status writes (the
        # mappings' deletes are not a function's): their own injector, on the consumer's client only.
        early_acks = FaultInjector(visibility_client(functions.consumer.visibility), seed=args.seed + 1)
        crash_share = args.fault_rate / len(KINDS["UpdateItem"])
        early_acks.crash_after("DeleteMessageBatch", times=-1, when=deaths.due(crash_share))
        if args.acknowledge_after is not None:
            functions.consumer.policy = replace(functions.consumer.policy, acknowledge_after=args.acknowledge_after)
        trigger = harness.install(
            stack,
            serial_receives=args.fifo and not args.concurrent_receives,
            lease_s=args.lease_s,
            consumer_batch_size=args.consumer_batch_size,
            deaths=deaths,
        )
        disrupter = threading.Thread(
            target=disruptions.run, args=(trigger, resources, sent.accepted, args.messages // 2), daemon=True
        )
        disrupter.start()
        replays = Replays(resources.table_name, functions.worker)
        stop_replays = threading.Event()
        replayer = threading.Thread(target=replays.every, args=(2.0, stop_replays), daemon=True)
        if args.with_replays:
            replayer.start()
        writers = LibraryWriters(
            resources.table_name,
            args.messages // 40 if args.pairs is None else args.pairs,
            args.messages // 20 if args.skewed is None else args.skewed,
        )
        library = threading.Thread(target=writers.run, args=(sent, args.rate), daemon=True)
        library.start()
        send_all(Client(stack.api_url), args.messages, iso(utc_now()), sent, rate=args.rate)
        library.join()
        disrupter.join()
        stats = functions.consumer.stats
        wait_for(
            lambda: stats["completed"] + stats["failed"] >= len(sent.accepted),
            lambda: (stats["completed"], stats["failed"], sum(harness.deliveries.values())),
            args.timeout / 2,
            args.stall,
        )
        stop_replays.set()
        if replayer.is_alive():
            replayer.join()
        injector.clear()
        early_acks.clear()
        settle(stack, sent, harness, args.timeout / 2, args.stall)
        harness.stop_receiving(stack)
        time.sleep(2.0)  # let the last consumer batches finish their writes
        records = {item["message_id"]["S"]: item for item in scan(resources.table_name, RECORD_PREFIX)}
        return Observed(
            records=records,
            entries=Counter(item["message_id"]["S"] for item in scan(resources.table_name, OUTBOX_PREFIX)),
            dead=harness.dead + dead_letters(resources.dlq_url),
            dead_outcomes=dict(functions.dead_letters.stats),
            outcomes=dict(functions.consumer.stats),
            stream=dict(trigger.runner.stats),
            faults=dict(injector.injected + early_acks.injected),
            calls=dict(injector.calls),
            replays=replays,
            library=writers,
            queued={_message_id(message["Body"]) for message in drain_queue(resources.queue_url)},
            unseen_copies=queue_depth(resources.queue_url),
            deaths_at_end=deaths.at_end,
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the stack, run the chaos, return the tally."""
    started = time.monotonic()
    sent = Sent()
    harness = Harness(log=DeliveryLog(widen_s=args.widen_ms / 1000, origin=started), started=started)
    disruptions = Disruptions(
        messages=args.messages,
        pause_s=0.0 if args.no_pause else args.pause_s,
        expire=0.0 if args.no_expiry else args.expire,
        trim=0.0 if args.no_pause else args.trim,
        retention_s=args.retention_s
        if args.retention_s is not None
        else args.sweep_min_age + 1.5 * args.sweep_interval,
        seed=args.seed,
    )
    seen = drive(args, sent, harness, disruptions)
    trigger = _required(harness.trigger, "the harness's trigger")
    send_log = _required(harness.sends, "the harness's send log")
    trimmed, expired = set(trigger.trimmed), set(disruptions.expired)
    statuses = {m: r["status"]["S"] for m, r in seen.records.items()}
    tally = count(sent, seen.records, seen.entries, harness.deliveries, expired)
    disorder = out_of_order(sent, harness.log) if args.fifo else []
    by_queue = sum(send_log.first(a) < send_log.first(b) for _, b, a in disorder)
    sends = sum(len(send_log.sends.get(m, [])) for m in sent.accepted)
    senders = Counter("+".join(who for _, who in sorted(send_log.sends.get(m, []))) or "-" for m in sent.accepted)
    left = stranded(sent, seen.records, copies=seen.queued | set(seen.dead), unseen=seen.unseen_copies)
    tally |= {
        "stranded": len(left),
        "lease_takeovers": lease_takeovers(sent, seen.records),
        "applied_unanswered": exercised(seen.faults, "answer_lost"),
        "deaths": exercised(seen.faults, "crash_after") + seen.deaths_at_end,
        "sends_per_message": round(sends / len(sent.accepted), 3) if sent.accepted else 0.0,
        "senders": dict(senders.most_common()),
        "dead_letter_non_terminal": sum(statuses.get(m) not in TERMINAL for m in seen.dead),
        "concurrent_deliveries": harness.log.concurrent,
        "out_of_order": len(disorder) if args.fifo else None,
        "out_of_order_by_queue": by_queue if args.fifo else None,
        "dead_letter": len(seen.dead),
        "dead_letter_outcomes": seen.dead_outcomes,
        "copies_by_cause": copies_by_cause(sent, harness, seen.outcomes),
        "consumer_invocations": invocation_summary(harness.invocations),
        "requests_per_message": requests_per_message(seen.calls, len(sent.accepted)),
        "copies_dropped": seen.outcomes.get("duplicates", 0),
        "consumer_outcomes": seen.outcomes,
        "stream_runner": seen.stream,
        "sweeps": sweep_summary(harness.sweeps),
        "delivery_calls": len(harness.log.calls),
        "expired_entries": len(expired),
        "trimmed_records": len(trimmed),
        "trigger_paused_s": disruptions.pause_s,
        "fifo": args.fifo,
        "fault_rate": args.fault_rate,
        "faults_injected": sum(seen.faults.values()),
        "http_statuses": {str(k): v for k, v in sorted(sent.statuses.items())},
        "wall_s": round(time.monotonic() - started, 1),
    }
    if args.with_replays:
        tally |= {"replays": seen.replays.runs, "replays_interrupted": sum(seen.replays.interrupted.values())}
    tally["library_writes"] = dict(seen.library.written)
    if seen.library.error:
        tally["library_error"] = seen.library.error
    if disruptions.error:
        tally["disruption_error"] = disruptions.error
    if args.details:
        write_details(
            args.details,
            sent=sent,
            records=seen.records,
            harness=harness,
            trimmed=trimmed,
            expired=expired,
            dead=seen.dead,
            disorder=disorder,
        )
    return tally | {"faults_by_kind": seen.faults}


def main(argv: list[str] | None = None) -> int:
    """Run the chaos and print the tally (the last line is JSON with --json)."""
    args = parse_args(argv)
    os.environ.setdefault("LOG_LEVEL", "CRITICAL")  # the tally is the output; faults make every handler log
    os.environ.setdefault("OUTBOX_METRICS", "off")
    tally = run(args)
    violations = sum(tally[k] or 0 for k in VIOLATIONS)
    if args.json:
        print(json.dumps(tally))
    else:
        faults = tally.pop("faults_by_kind")
        for key, value in tally.items():
            gloss = f"  ({GLOSS[key]})" if key in GLOSS else ""
            print(f"{key:26s} {value}{gloss}")
        print(f"faults by kind: {faults}")
        print("OK" if not violations else f"VIOLATIONS: {violations}")
    sys.stdout.flush()
    sys.stderr.flush()
    # The verdict is the last line: threads of the stopped stack still winding down (a consumer
    # retrying against the stopped emulator) and the interpreter's exit print nothing after it.
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, sys.stdout.fileno())
    os.dup2(quiet, sys.stderr.fileno())
    os.close(quiet)
    return 1 if violations else 0


_T = TypeVar("_T")


def _required(value: _T | None, what: str) -> _T:
    """``value``, which the run has set up by now; a RuntimeError naming ``what`` if it has not."""
    if value is None:
        raise RuntimeError(f"{what} is not set up")
    return value


if __name__ == "__main__":
    raise SystemExit(main())
