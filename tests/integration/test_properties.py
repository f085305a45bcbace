"""A stateful property test of the whole pipeline on moto, with faults at the botocore boundary.

Hypothesis interleaves accepts, stream deliveries (with throttling, timeouts, refused entries and a
crash between send and flip), redeliveries from a lower sequence number, the trigger switched off
and on, a trimmed stream, expired outbox entries, sweeps, replays, consumer batches, a second copy
arriving while the first is being delivered, FIFO batches whose group meets a failure, copies
whose last receive died (in the delivery, or with every status write throttled) moving to the
dead-letter queue, which the dead-letter function settles, copies lost by hand (the sweeper
re-sends what is in flight with no copy left), pairs of one group made in one millisecond (in one
transaction or two), writers whose clocks are 2 s ahead or behind, and batches cut short by
Lambda's batch size (what follows comes in the next one). Writes take effect with their answer
lost (a send, a flip, a consumer's lease, end or release, the dead-letter function's writes; on
the last allowed receive too); consumers, the worker and the dead-letter function die between two
AWS calls, and the next receive takes their run-out lease over. It
checks the invariants of docs/design.md after every step, and after a final drain by the stream and
the sweeper alone (no operator): every accepted message ends COMPLETED or FAILED.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from moto import mock_aws

from outbox import Outbox
from outbox.adapters.reader import DynamoDBOutboxReader
from outbox.adapters.sweep import DynamoDBSweepSource
from outbox.domain.clock import WriteClock
from outbox.domain.envelope import Envelope
from outbox.domain.errors import DeliveryError
from outbox.domain.keys import iso, utc_now
from outbox.domain.status import ENDED, Status, is_allowed
from outbox.faults import FaultInjector, SimulatedCrash, writes_status
from outbox.local import emulator
from outbox.service.consume import Consumer, ConsumerPolicy, sqs_copy
from outbox.service.dead_letter import DeadLetters
from outbox.service.relay import Relay, RelayPolicy
from outbox.service.replay import FLIP_FROM, Checkpoint, Replayer, Selection
from outbox.service.stream import StreamWorker
from outbox.service.sweep import StrandedBounds, Sweeper
from outbox.testing import FakeLambdaContext
from tests.conftest import FAKE_CREDENTIALS
from tests.integration.conftest import Stack, build_stack, sqs_event

FAULTS = [
    "none",
    "throttle_send",
    "timeout_send",
    "refuse_entry",
    "throttle_flip",
    "crash_after_send",
    "answer_lost_send",  # SendMessageBatch took effect, its answer lost: botocore sends it again
    "answer_lost_flip",  # PENDING -> QUEUED took effect, its answer lost: the retry meets the flip
    "crash_after_flip",  # the worker dies between a flip and its next AWS call
]
# Faults of a consumer's own writes: its lease or its end lands with the answer lost, retried by
# botocore or (the SDK's tries spent) by the consumer itself.
CONSUMER_FAULTS = ["none", "lease_lost", "lease_lost_to_us", "end_lost", "end_lost_to_us", "release_lost"]
# Where a receive dies (a timeout, out of memory): between two of its AWS calls, its lease run out.
DEATHS = ["after_lease", "in_delivery", "after_end"]
STATUS_FIELDS = {
    "status",
    "history",
    "updated_at",
    "attempts",
    "reason",
    "relay_attempts",
    "last_relay_failure",  # the relay failure counted last (its retry is not counted again)
    "lease_owner",
    "lease_until",
    "expires_at",  # an ended record's time to live
    "ended_lease_owner",  # the lease holder that ended it (its own retry recognises the end)
    "outbox_pk",  # the record index's keys: the outbox bucket while PENDING, in flight after, removed at the end
    "outbox_sk",
    "send_generation",  # a deliberate re-send's (replay, the sweeper's re-send of a stranded message)
    "sent_at",
}
BODIES = ["one", "two", "three"]
MAIN_QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:outbox-messages"


@pytest.fixture(scope="module")
def moto_stack() -> Iterator[Stack]:
    """One moto for the whole machine run; each example starts from an emptied table and queue."""
    # The emulator speed-ups are proven equal to moto's own behaviour in test_emulator.py.
    emulator.install_transaction_journal()
    emulator.install_fast_attribute_values()
    emulator.install_lazy_queue_attributes()
    emulator.install_dead_letter_source_arn()  # SQS's mark on a copy it moved to the dead-letter queue
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for name, value in FAKE_CREDENTIALS.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        stack = build_stack(policy=RelayPolicy(flip_concurrency=1, max_attempts=1_000))
        yield stack
        stack.relay.close()
    emulator.uninstall_transaction_journal()
    emulator.uninstall_fast_attribute_values()
    emulator.uninstall_lazy_queue_attributes()
    emulator.uninstall_dead_letter_source_arn()


class Pipeline(RuleBasedStateMachine):
    """The model: what was accepted, sent and observed; the system: the real handlers on moto."""

    stack: Stack

    def __init__(self) -> None:
        super().__init__()
        stack = self.stack
        for item in stack.dynamodb.scan(TableName=stack.resources.table_name)["Items"]:  # marks too
            stack.dynamodb.delete_item(TableName=stack.resources.table_name, Key={"pk": item["pk"], "sk": item["sk"]})
        for url in (stack.resources.queue_url, stack.resources.dlq_url):  # PurgeQueue allows one call a minute
            for message in stack.receive_all(url):
                stack.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        stack.stream_event()  # move past everything older than this example
        stack.faults.clear()
        stack.faults.injected.clear()  # what this example exercised, reported as Hypothesis events
        self.faults: FaultInjector = stack.faults
        self.accepted: dict[str, dict[str, Any]] = {}  # message_id -> record attributes at accept
        self.keys: dict[str, str] = {}  # idempotency key -> body used first
        self.sent: set[str] = set()
        self.seen_history: dict[str, list[str]] = {}
        self.pending: list[dict[str, Any]] = []  # stream records Lambda has not checkpointed past
        self.delivered: list[dict[str, Any]] = []
        self.bodies: dict[str, str] = {}
        self.expired: set[str] = set()  # messages whose outbox entry TTL (or a person) deleted
        self.trigger_on = True
        self.in_delivery: set[str] = set()
        self.completed_seen: set[str] = set()
        self.fail_group_once = False
        self.violations: list[str] = []
        self.first_sent: list[str] = []  # messages in the order SQS first accepted them
        self.dead_settled: set[str] = set()  # messages whose dead-letter copy the dead-letter function acknowledged
        # The dead-letter copies this harness moved, playing SQS's redrive: each gets SQS's mark of its source.
        self.moved_by_sqs: set[str] = set()
        self.dead_letters = DeadLetters(stack.store)
        source = DynamoDBSweepSource(stack.layout, stack.dynamodb, page_size=3)
        # Every entry counts as old enough to have been swept: each batch reads which moved on first.
        self.worker = StreamWorker(stack.relay, pending=source, swept_after=timedelta(0))
        self.consumer = Consumer(stack.store, self._deliver)
        sweep_relay = Relay(stack.store, stack.publisher, by="sweeper", policy=RelayPolicy(flip_concurrency=1))
        # The sweeper's clock runs ten minutes ahead: every message is past its minimum age, and every
        # message in flight past its stranded bounds (so each sweep re-sends them: copies the consumer absorbs).
        resender = Relay(stack.store, stack.publisher, by="sweeper", expected=frozenset())
        self.sweeper = Sweeper(
            source,
            sweep_relay,
            buckets=4,
            clock=lambda: utc_now() + timedelta(minutes=10),
            resender=resender,
            bounds=StrandedBounds(retention=timedelta(minutes=5), visibility=timedelta(minutes=1)),
        )
        stack.sqs.meta.events.register("after-call.sqs.SendMessageBatch", self._record_sent)
        self.writers = _Writers(stack)  # 8. same-millisecond pairs, skewed clocks: which writer, when committed
        self.worker = _GivenOrderKept(self.worker, self)

    @initialize(warm=st.booleans())
    def start(self, warm: bool) -> None:
        """Half the runs start with a message relayed, its copy waiting: consumer faults need one to act on."""
        if warm:
            self.accept("one", None, group=False)
            self.deliver("none")

    def _deliver(self, envelope: Envelope) -> None:
        """The consumer's delivery: 6. never two at once, never after COMPLETED, always under a held lease.

        A violation is noted, not raised: the consumer would take an exception for a failed delivery.
        """
        message_id = envelope.message_id
        record = self.stack.store.get(message_id)
        for broken, what in (
            (message_id in self.in_delivery, "delivered twice at once"),
            (message_id in self.completed_seen, "delivered after COMPLETED"),
            (record.status is not Status.PROCESSING or record.lease is None, "delivered without a held lease"),
        ):
            if broken:
                self.violations.append(f"{message_id} {what}")
        if self.fail_group_once and envelope.group_key is not None:
            self.fail_group_once = False
            raise DeliveryError("the group's first delivery fails once")
        self.in_delivery.add(message_id)
        try:
            self.second_copy(envelope)
        finally:
            self.in_delivery.discard(message_id)

    def second_copy(self, envelope: Envelope) -> None:
        """Meanwhile another copy of the same message reaches another consumer: it must not deliver it."""
        copy = {"MessageId": f"second-{envelope.message_id}", "ReceiptHandle": "rh", "Body": envelope.body()}
        response = Consumer(self.stack.store, self._deliver).handle(sqs_event([copy]))
        if response["batchItemFailures"] != [{"itemIdentifier": copy["MessageId"]}]:
            self.violations.append(f"{envelope.message_id}: a second copy was not sent back while the first was held")

    def _record_sent(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        entries = {e["Id"]: e for e in context.get("fault_params", {}).get("Entries", [])}
        for ok in parsed.get("Successful", []):
            message_id = json.loads(entries[ok["Id"]]["MessageBody"])["message_id"]
            if message_id not in self.sent:
                self.first_sent.append(message_id)
            self.sent.add(message_id)
            self.writers.call_sends.append(message_id)

    def teardown(self) -> None:
        """Final drain without an operator: the stream retries, the sweeper sweeps, the consumer consumes."""
        try:
            self.faults.clear()
            self.trigger_on = True
            for _ in range(5):
                self.deliver("none")
                if not self.pending:
                    break
            for _ in range(3):
                self.sweep()
            for _ in range(30):
                if not self._consume_batch():
                    break
            for _ in range(5):
                if not self._settle_dead_letters():
                    break
            assert not self.stack.receive_all(self.stack.resources.dlq_url), "dead letters left unsettled"
            records = self._records()
            for message_id in self.accepted:
                record = records[message_id]
                assert Status(record["status"]["S"]) in ENDED, (message_id, record["status"])
                if record["status"]["S"] == Status.FAILED:
                    assert record.get("reason", {}).get("S")
            self.invariants_hold()
            for kind in sorted(self.faults.injected):  # what this example exercised (Hypothesis events)
                event(f"exercised {kind}")
        finally:
            self.stack.sqs.meta.events.unregister("after-call.sqs.SendMessageBatch", self._record_sent)

    # -- rules ----------------------------------------------------------------------------------

    @rule(body=st.sampled_from(BODIES), key=st.none() | st.sampled_from(["k1", "k2"]), group=st.booleans())
    def accept(self, body: str, key: str | None, group: bool) -> None:
        """POST a message, maybe with an Idempotency-Key, maybe in a group."""
        payload = {"channel": "sms", "recipient": "+14155550100", "body": body} | ({"group_key": "g"} if group else {})
        response = self.stack.post(json.dumps(payload), key=key)
        status = response["statusCode"]
        if key is not None and key in self.keys:
            assert status == (200 if self.keys[key] == body + str(group) else 409), response
            return
        assert status == 202, response
        message_id = json.loads(response["body"])["message_id"]
        if key is not None:
            self.keys[key] = body + str(group)
        self._accepted_by(message_id, None)

    @rule(fault=st.sampled_from(FAULTS))
    def deliver(self, fault: str) -> None:
        """Lambda delivers everything after its checkpoint, with one kind of fault armed."""
        if not self.trigger_on:
            return  # a disabled trigger reads nothing; the stream keeps its records
        fresh = self.stack.stream_event()["Records"]
        self.delivered.extend(fresh)
        self.pending.extend(fresh)
        if not self.pending:
            return
        self._arm(fault)
        try:
            response = self.worker.handle({"Records": list(self.pending)}, FakeLambdaContext())
        except SimulatedCrash:
            return  # a function error: the whole batch is delivered again
        finally:
            self.faults.clear()
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        assert all(failed)
        index = next((i for i, r in enumerate(self.pending) if r["dynamodb"]["SequenceNumber"] in failed), None)
        self.pending = [] if index is None else self.pending[index:]

    @rule(data=st.data())
    def redeliver_older(self, data: st.DataObject) -> None:
        """A duplicate delivery from a lower sequence number, as after a partial failure."""
        if not self.delivered:
            return
        start = data.draw(st.integers(0, len(self.delivered) - 1))
        self.worker.handle({"Records": self.delivered[start:]}, FakeLambdaContext())

    @rule(on=st.booleans())
    def switch_trigger(self, on: bool) -> None:
        """The stream mapping is disabled or enabled again (it resumes from its checkpoint)."""
        self.trigger_on = on

    @rule()
    def trim_stream(self) -> None:
        """Records older than the stream's retention are gone: what Lambda had not checkpointed is lost to it."""
        self.stack.stream_event()
        self.pending = []

    @rule(data=st.data())
    def expire_entry(self, data: st.DataObject) -> None:
        """TTL deletes an outbox entry, relayed or not (the record stays, with its status)."""
        alive = sorted(set(self.accepted) - self.expired)
        if not alive:
            return
        message_id = data.draw(st.sampled_from(alive))
        (entry,) = [
            i
            for i in self.stack.all_items()
            if i["pk"]["S"].startswith("OUTBOX#") and i["message_id"]["S"] == message_id
        ]
        key = {"pk": entry["pk"], "sk": entry["sk"]}
        self.stack.dynamodb.delete_item(TableName=self.stack.resources.table_name, Key=key)
        self.expired.add(message_id)

    @rule(fault=st.sampled_from(["none", "throttle_send", "throttle_flip", "answer_lost_flip", "crash_after_flip"]))
    def sweep(self, fault: str = "none") -> None:
        """The scheduled sweeper runs (with a fault armed): whatever is PENDING is relayed from its record.

        A sweeper that dies between two AWS calls leaves the rest to its next run.
        """
        self._arm(fault)
        try:
            self.sweeper.sweep()
        except SimulatedCrash:
            pass  # the schedule runs it again
        finally:
            self.faults.clear()

    def _group_of(self, message_id: str) -> str | None:
        """The message's group key, as its record holds it (a copy names the message alone)."""
        item = self.stack.raw_item(f"MSG#{message_id}", "MSG")
        return item.get("group_key", {}).get("S") if item else None

    @rule()
    def consume_fifo_batch(self) -> None:
        """8. A FIFO batch of one group whose first delivery fails: nothing later of the group is delivered."""
        url = self.stack.resources.queue_url
        messages = self._receive(url)
        if not messages:
            return
        for message in messages:  # as a FIFO queue delivers them: one group
            message.setdefault("Attributes", {})["MessageGroupId"] = "g"
            message["Body"] = message["Body"]
        grouped = [self._group_of(json.loads(m["Body"])["message_id"]) == "g" for m in messages]  # the body: an id
        self.fail_group_once = any(grouped)
        response = self.consumer.handle(sqs_event(messages))
        failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
        first_failure = next((i for i, m in enumerate(messages) if m["MessageId"] in failed), None)
        if first_failure is not None:  # everything after the first failure came back undelivered
            assert failed == [m["MessageId"] for m in messages[first_failure:]]
        self.fail_group_once = False
        self._settle(messages, set(failed))

    @rule(holding=st.booleans())
    def last_receive_dies(self, holding: bool) -> None:
        """7. A copy's last allowed receive ends with no outcome; SQS moves the copy to the dead-letter queue.

        ``holding``: the invocation died in the delivery, holding the lease (a timeout, out of memory);
        else every status write was throttled, so it never took the lease.
        """
        sqs, url = self.stack.sqs, self.stack.resources.queue_url
        messages = self._receive(url, 1)
        if not messages:
            return

        def dies(_: Envelope) -> None:
            raise SimulatedCrash("the invocation timed out in the delivery")

        # Its lease lasts as long as its invocation could (none left), so the dead-letter function may take it over.
        dying = Consumer(self.stack.store, dies, policy=ConsumerPolicy(lease_margin_s=0, status_write_pause_s=0))
        if not holding:
            self.faults.fail("UpdateItem", "ProvisionedThroughputExceededException", times=-1)
        try:
            acknowledged = not dying.handle(sqs_event(messages), FakeLambdaContext(remaining_ms=0))["batchItemFailures"]
        except SimulatedCrash:
            acknowledged = False
        finally:
            self.faults.clear()
        (message,) = messages
        if acknowledged:  # a duplicate of an ended message: dropped, it never reaches the dead-letter queue
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            return
        moved = sqs.send_message(QueueUrl=self.stack.resources.dlq_url, MessageBody=message["Body"])  # as SQS moves it
        self.moved_by_sqs.add(moved["MessageId"])
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    @rule(fault=st.sampled_from(["none", "answer_lost", "dies_after_lease"]))
    def settle_dead_letters(self, fault: str = "none") -> None:
        """The dead-letter function takes a batch of the dead-letter queue; the rest comes back.

        ``answer_lost``: its lease and its FAILED write land unanswered (botocore retries them);
        ``dies_after_lease``: it dies holding the lease, which has run out when the copy comes back.
        """
        self._settle_dead_letters(fault)

    def _settle_dead_letters(self, fault: str = "none") -> int:
        url = self.stack.resources.dlq_url
        messages = self._receive(url)
        if not messages:
            return 0
        dead_letters = self.dead_letters
        if fault == "answer_lost":
            self.faults.answer_lost("UpdateItem", times=-1, when=writes_status("PROCESSING", "FAILED"))
        elif fault == "dies_after_lease":
            dead_letters = DeadLetters(self.stack.store, lease_s=0)
            self.faults.crash_after("UpdateItem", when=writes_status("PROCESSING"))
        try:
            event = sqs_event(messages)
            for record in event["Records"]:  # SQS's mark on what it moved (DeadLetterQueueSourceArn)
                if record["messageId"] in self.moved_by_sqs:
                    record["attributes"]["DeadLetterQueueSourceArn"] = MAIN_QUEUE_ARN
            response = dead_letters.handle(event)
        except SimulatedCrash:
            self._settle(messages, {m["MessageId"] for m in messages}, url)  # a function error: all come back
            return len(messages)
        finally:
            self.faults.clear()
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        records = self._records()
        for message in messages:
            message_id = json.loads(message["Body"])["message_id"]
            if message["MessageId"] in failed:
                continue
            history = [h["M"]["status"]["S"] for h in records[message_id]["history"]["L"]]
            if records[message_id]["status"]["S"] in ENDED:
                self.dead_settled.add(message_id)
            else:  # 7. let go of while not ended: only a copy older than a re-drive, which the re-drive's copy decides
                assert Status.FAILED in history[:-1], (message_id, history)
        self._settle(messages, failed, url)
        return len(messages)

    @rule(status=st.sampled_from(["PENDING", "FAILED"]))
    def replay(self, status: str = "PENDING") -> None:
        """An operator re-drives whatever is PENDING, or FAILED (FAILED -> QUEUED: a new life for it)."""
        stack = self.stack
        reader = DynamoDBOutboxReader(stack.layout, stack.dynamodb)
        relay = Relay(stack.store, stack.publisher, by="replay", expected=FLIP_FROM[status])
        selection = Selection.window(status=status)
        selection = Selection(selection.since, _later(selection.until), selection.status)
        try:
            pending = DynamoDBSweepSource(stack.layout, stack.dynamodb)
            Replayer(reader, relay, pending=pending).run(Checkpoint(selection))
        finally:
            relay.close()
        records = self._records()
        self.dead_settled = {m for m in self.dead_settled if records[m]["status"]["S"] in ENDED}  # re-driven since

    @rule()
    def lose_a_copy(self) -> None:
        """2. A copy is gone by hand (purged, deleted, past retention): its record, in flight, has no copy left.

        The sweeper re-sends it under a new send generation (no operator): the final drain ends it.
        """
        url = self.stack.resources.queue_url
        for message in self._receive(url, 1):
            self.stack.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    @rule(fault=st.sampled_from(CONSUMER_FAULTS))
    def consume(self, fault: str = "none") -> None:
        """The consumer takes one batch (one of its writes may land unanswered); acknowledged copies are deleted."""
        self._arm_consumer(fault)
        try:
            self._consume_batch()
        finally:
            self.faults.clear()

    @rule(fault=st.sampled_from(CONSUMER_FAULTS))
    def last_receive(self, fault: str) -> None:
        """2, 6, 7. A copy's last allowed receive, one of its writes landing unanswered.

        Acknowledged, its record has ended (or another live lease holds it); sent back, SQS moves
        it to the dead-letter queue. Never acknowledged while its record can go nowhere.
        """
        url = self.stack.resources.queue_url
        messages = self._receive(url, 1)
        if not messages:
            return
        last = Consumer(self.stack.store, self._deliver, policy=ConsumerPolicy(max_receive_count=1))
        self._arm_consumer(fault)
        try:
            acknowledged = not last.handle(sqs_event(messages))["batchItemFailures"]
        finally:
            self.faults.clear()
        (message,) = messages
        message_id = json.loads(message["Body"])["message_id"]
        if acknowledged:  # its record has ended, or another receive's live lease holds it (never this one's)
            record = self.stack.store.get(message_id)
            own = _owner(message)
            held = record.lease is not None and record.lease.until > iso(utc_now()) and record.lease.owner != own
            if record.status not in ENDED and not held:
                self.violations.append(f"{message_id} acknowledged on its last receive, left {record.status.value}")
            self.stack.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            return
        moved = self.stack.sqs.send_message(
            QueueUrl=self.stack.resources.dlq_url, MessageBody=message["Body"]
        )  # SQS moves it
        self.moved_by_sqs.add(moved["MessageId"])
        self.stack.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    @rule(point=st.sampled_from(DEATHS))
    def receive_dies(self, point: str) -> None:
        """2, 6. A receive dies between two AWS calls (not its last): the copy comes back, a later receive takes over.

        Its lease lasts as long as its invocation could (none left), so it has run out when the copy
        is received again: the next receive takes PROCESSING over (PROCESSING -> PROCESSING).
        """
        url = self.stack.resources.queue_url
        messages = self._receive(url, 1)
        if not messages:
            return

        def dies(_: Envelope) -> None:
            raise SimulatedCrash("the invocation timed out in the delivery")

        # A lease runs out with its invocation: at once here, but for a receive that dies only after
        # its end (it delivers alive, while the lease holds: a second copy must not overtake it).
        remaining_ms = 60_000 if point == "after_end" else 0
        policy = ConsumerPolicy(lease_margin_s=0, status_write_pause_s=0)
        dying = Consumer(self.stack.store, dies if point == "in_delivery" else self._deliver, policy=policy)
        if point != "in_delivery":
            to = "PROCESSING" if point == "after_lease" else "COMPLETED"
            self.faults.crash_after("UpdateItem", when=writes_status(to))
        try:
            response = dying.handle(sqs_event(messages), FakeLambdaContext(remaining_ms=remaining_ms))
            failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        except SimulatedCrash:
            failed = {m["MessageId"] for m in messages}  # a function error: every copy of the batch comes back
        finally:
            self.faults.clear()
        self._settle(messages, failed)

    def _consume_batch(self) -> int:
        url = self.stack.resources.queue_url
        messages = self._receive(url)
        if not messages:
            return 0
        for message in messages:  # 6. dedupable: every copy of a message is the same body
            message_id = json.loads(message["Body"])["message_id"]
            assert self.bodies.setdefault(message_id, message["Body"]) == message["Body"]
        response = self.consumer.handle(sqs_event(messages))
        self._settle(messages, {f["itemIdentifier"] for f in response["batchItemFailures"]})
        return len(messages)

    def _arm_consumer(self, fault: str) -> None:
        """One of the consumer's writes takes effect with its answer lost (retried by botocore, or by the consumer)."""
        retried = not fault.endswith("_to_us")
        if fault.startswith("lease_lost"):
            self.faults.answer_lost("UpdateItem", retried=retried, when=writes_status("PROCESSING"))
        elif fault.startswith("end_lost"):
            self.faults.answer_lost("UpdateItem", retried=retried, when=writes_status("COMPLETED", "FAILED"))
        elif fault == "release_lost":
            self.faults.answer_lost("UpdateItem", when=lambda p: p.get("UpdateExpression") == "SET #lease_until = :now")

    def _settle(self, messages: list[dict[str, Any]], failed: set[str], url: str | None = None) -> None:
        """What the mapping does after the function: delete the acknowledged, show the rest again."""
        sqs, url = self.stack.sqs, url or self.stack.resources.queue_url
        for message in messages:
            if message["MessageId"] in failed:
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
            else:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    @rule(together=st.booleans())
    def accept_pair(self, together: bool) -> None:
        """8. Two messages of group g made by the library in one millisecond, in one transaction or two."""
        outbox = self.writers.outbox(None)
        with pytest.MonkeyPatch.context() as frozen:
            frozen.setattr("outbox.domain.keys.datetime", _Frozen.at(utc_now()))
            pair = [outbox.message({"n": n}, type="Pair", group_key="g") for n in range(2)]
        assert pair[0].envelope.created_at == pair[1].envelope.created_at
        for batch in [pair] if together else [[m] for m in pair]:
            outbox.transact_write([], *batch)
            for message in batch:
                self._accepted_by(message.message_id, None)

    @rule(size=st.integers(1, 4))
    def deliver_a_batch_of(self, size: int) -> None:
        """8. Lambda's batch size: the oldest ``size`` records not handled yet; what follows waits for the next."""
        if not self.trigger_on:
            return
        fresh = self.stack.stream_event()["Records"]
        self.delivered.extend(fresh)
        self.pending.extend(fresh)
        batch = self.pending[:size]
        if not batch:
            return
        response = self.worker.handle({"Records": batch}, FakeLambdaContext())
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        index = next((i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed), len(batch))
        self.pending = self.pending[index:]

    @rule(skew_s=st.sampled_from([2.0, -2.0]), skewed_first=st.booleans())
    def accept_across_clocks(self, skew_s: float, skewed_first: bool) -> None:
        """8. Two processes write to group g one after the other, one of them on a clock 2 s ahead or behind."""
        for skew in [skew_s, None] if skewed_first else [None, skew_s]:
            outbox = self.writers.outbox(skew)
            message = outbox.message({"skew_s": skew}, type="Skewed", group_key="g")
            outbox.transact_write([], message)
            self._accepted_by(message.message_id, skew)

    def _accepted_by(self, message_id: str, skew_s: float | None) -> None:
        record = self.stack.raw_item(f"MSG#{message_id}", "MSG")
        assert record is not None
        self.accepted[message_id] = {k: v for k, v in record.items() if k not in STATUS_FIELDS}
        self.writers.committed(message_id, skew_s)

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def invariants_hold(self) -> None:
        """Invariants 1, 3, 4, 5, 6, 7 (dead letters) and 8 (send order) hold after every step."""
        assert not self.violations, self.violations
        items = self.stack.all_items()
        records = {i["message_id"]["S"]: i for i in items if i["pk"]["S"].startswith("MSG#")}
        entries = [i for i in items if i["pk"]["S"].startswith("OUTBOX#")]
        # 1. atomic accept: one record and one entry per accepted message (until it expires), nothing else
        assert set(records) == set(self.accepted)
        assert sorted(e["message_id"]["S"] for e in entries) == sorted(set(self.accepted) - self.expired)
        for message_id, record in records.items():
            history = [h["M"]["status"]["S"] for h in record["history"]["L"]]
            # 3. send, then flip: QUEUED only after SQS accepted the message
            if Status.QUEUED in history:
                assert message_id in self.sent, message_id
            # 4. forward only: a lifecycle path that only ever grows
            assert history[0] == Status.PENDING
            assert all(is_allowed(Status(a), Status(b)) for a, b in itertools.pairwise(history))
            assert history[: len(self.seen_history.get(message_id, []))] == self.seen_history.get(message_id, [])
            self.seen_history[message_id] = history
            # 5. metadata preserved
            assert {k: v for k, v in record.items() if k not in STATUS_FIELDS} == self.accepted[message_id]
            # 6. a lease exists exactly while PROCESSING; who ended it under a lease, only once ended
            assert ("lease_owner" in record) is (record["status"]["S"] == Status.PROCESSING), record
            assert "ended_lease_owner" not in record or record["status"]["S"] in ENDED, record
            if any(a == b == Status.PROCESSING for a, b in itertools.pairwise(history)):
                event("a lease was taken over (PROCESSING -> PROCESSING)")
            # personal data kept short: a TTL exactly while the record has ended
            assert ("expires_at" in record) is (record["status"]["S"] in {Status.COMPLETED, Status.FAILED}), record
            if record["status"]["S"] == Status.COMPLETED:
                self.completed_seen.add(message_id)
            # the record index holds a record until it ends: in its outbox bucket exactly while it is PENDING
            assert ("outbox_pk" in record) is (record["status"]["S"] not in ENDED), record
            in_bucket = record.get("outbox_pk", {}).get("S", "").startswith("OUTBOX#")
            assert in_bucket is (record["status"]["S"] == Status.PENDING), record
        # 7. a copy the dead-letter function let go of leaves its record ended (no re-drive of FAILED here)
        for message_id in self.dead_settled:
            assert records[message_id]["status"]["S"] in ENDED, (message_id, records[message_id]["status"])
        # 8. a group is sent in the order it was written, whatever the stream lost (across writers: see _Writers)
        group = [m for m, record in self.accepted.items() if record.get("group_key", {}).get("S") == "g"]
        sent = [m for m in self.first_sent if m in set(group)]
        assert self.writers.out_of_order(group, sent) == [], "group g sent out of order"

    def _arm(self, fault: str) -> None:
        if fault == "answer_lost_send":
            self.faults.answer_lost("SendMessageBatch")
        elif fault == "answer_lost_flip":
            self.faults.answer_lost("UpdateItem", when=writes_status("QUEUED"))
        elif fault == "crash_after_flip":
            self.faults.crash_after("UpdateItem", when=writes_status("QUEUED"))
        elif fault == "throttle_send":
            self.faults.fail("SendMessageBatch", "ThrottlingException")
        elif fault == "timeout_send":
            self.faults.timeout("SendMessageBatch")
        elif fault == "refuse_entry":
            self.faults.refuse(None, code="InternalError", times=1)
        elif fault == "throttle_flip":
            self.faults.fail("UpdateItem", "ProvisionedThroughputExceededException")
        elif fault == "crash_after_send":
            self.faults.crash_after("SendMessageBatch")

    def _receive(self, url: str, count: int = 10) -> list[dict[str, Any]]:
        """One receive of up to ``count`` copies, with their attributes, as a mapping's poll."""
        messages: list[dict[str, Any]] = self.stack.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=count, AttributeNames=["All"]
        ).get("Messages", [])
        return messages

    def _records(self) -> dict[str, dict[str, Any]]:
        items = self.stack.all_items()
        return {i["message_id"]["S"]: i for i in items if i["pk"]["S"].startswith("MSG#")}


class _Frozen(datetime):
    """``datetime`` whose ``now`` stands still (``at`` makes one)."""

    instant = datetime(2026, 1, 1, tzinfo=UTC)

    @classmethod
    def at(cls, instant: datetime) -> type[_Frozen]:
        """A frozen ``datetime`` at ``instant``."""
        return type("Frozen", (cls,), {"instant": instant})

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _Frozen:
        """The frozen instant."""
        return cls.fromtimestamp(cls.instant.timestamp(), tz)


class _Writers:
    """8. Who wrote each message and when it committed; what "in order" demands of two writers.

    The API and the library share the process's write clock (one writer, ``None``); each skew
    is another process with a clock that far off. One writer's messages must be sent in the
    order written. Two writers' may differ when their clocks differ by more than the time between
    the commits, or, after the stream lost one of them, when the commits are closer than twice the
    worker's clock-skew allowance (2 s) and the rounding of the stream's commit time (1 s).
    """

    SKEW_ALLOWANCE_S = 2.0

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.clocks: dict[float | None, WriteClock] = {}
        self.writer: dict[str, float | None] = {}  # message_id -> its writer's skew (None: the process)
        self.at: dict[str, float] = {}  # message_id -> when its transaction committed (monotonic)
        self.call_sends: list[str] = []  # what SQS accepted during the current worker call

    def outbox(self, skew_s: float | None) -> Outbox:
        """The library writing with the process's clock (None) or with one ``skew_s`` off, as another process."""
        if skew_s is not None and skew_s not in self.clocks:
            self.clocks[skew_s] = WriteClock(lambda: utc_now() + timedelta(seconds=skew_s))
        clock = {"clock": self.clocks[skew_s]} if skew_s is not None else {}
        return Outbox(self.stack.resources.table_name, client=self.stack.dynamodb, buckets=4, **clock)

    def committed(self, message_id: str, skew_s: float | None) -> None:
        """``message_id`` was written just now by the writer of ``skew_s``."""
        self.writer[message_id], self.at[message_id] = skew_s, time.monotonic()

    def out_of_order(self, written: list[str], sent: list[str]) -> list[tuple[str, str]]:
        """Pairs (a written before b) that were sent b first though invariant 8 orders them."""
        first = {m: i for i, m in enumerate(sent)}
        return [
            (a, b)
            for a, b in itertools.combinations(written, 2)
            if a in first and b in first and first[b] < first[a] and self._ordered(a, b)
        ]

    def _ordered(self, a: str, b: str) -> bool:
        skew_a, skew_b = self.writer.get(a), self.writer.get(b)
        if skew_a == skew_b:
            return True
        apart = abs((skew_a or 0.0) - (skew_b or 0.0))
        return self.at[b] - self.at[a] > apart + 2 * self.SKEW_ALLOWANCE_S + 1.0


class _GivenOrderKept:
    """8. Around the stream worker: it never sends a message ahead of one the stream gave it in the batch.

    While a message of group g the batch holds is not sent yet, nothing committed after it is
    sent: neither a later entry of the batch nor a PENDING message found beside it.
    """

    def __init__(self, worker: StreamWorker, pipeline: Pipeline) -> None:
        self.worker = worker
        self.pipeline = pipeline

    def handle(self, event: dict[str, Any], context: Any = None) -> Any:
        """The worker's answer; a send ahead of an entry the stream gave is noted as a violation."""
        pipeline = self.pipeline
        order = {m: i for i, m in enumerate(pipeline.accepted)}  # commit order: one writer at a time
        given = [
            image["message_id"]["S"]
            for record in event["Records"]
            if record["dynamodb"]["Keys"]["pk"]["S"].startswith("OUTBOX#")
            and (image := record["dynamodb"].get("NewImage", {})).get("group_key", {}).get("S") == "g"
        ]
        done = set(pipeline.sent)
        pipeline.writers.call_sends = []
        try:
            return self.worker.handle(event, context)
        finally:
            grouped = {m for m, record in pipeline.accepted.items() if record.get("group_key", {}).get("S") == "g"}
            for message_id in pipeline.writers.call_sends:
                ahead = [g for g in given if g not in done and order[g] < order.get(message_id, -1)]
                ahead = ahead if message_id in grouped else []  # other groups keep no order with g
                if ahead:
                    pipeline.violations.append(f"the worker sent {message_id} ahead of {ahead[0]}, given earlier")
                done.add(message_id)


def _owner(message: dict[str, Any]) -> str:
    """The lease owner the consumer uses for this receive of ``message``."""
    copy = sqs_copy(sqs_event([message])["Records"][0])
    assert copy is not None
    return copy.owner


def _later(until: str) -> str:
    """The replay window reaches into the future: entries written this very millisecond count too."""
    return iso(datetime.fromisoformat(until) + timedelta(minutes=1))


def test_pipeline_keeps_its_invariants_under_faults(moto_stack: Stack) -> None:
    """Invariant 2 (nothing lost), with 1, 3, 4, 5, 6, 7 and 8: every interleaving ends delivered or FAILED."""
    Pipeline.stack = moto_stack
    run = Pipeline.TestCase
    run.settings = settings(
        max_examples=int(os.environ.get("OUTBOX_PROPERTY_EXAMPLES", "200")),
        stateful_step_count=8,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    run("runTest").runTest()
