"""A stateful property test of the whole pipeline on moto, with faults at the botocore boundary.

Hypothesis interleaves accepts, stream deliveries (with throttling, timeouts, refused entries and a
crash between send and flip), redeliveries from a lower sequence number, replays and consumer
batches, and checks the invariants of DESIGN.md after every step and after a final drain.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from moto import mock_aws

from outbox.adapters.reader import DynamoDBOutboxReader
from outbox.domain.record import iso
from outbox.domain.status import Status, is_allowed
from outbox.faults import FaultInjector, SimulatedCrash
from outbox.local import emulator
from outbox.relay import Relay, RelayPolicy
from outbox.replay import FLIP_FROM, Checkpoint, Replayer, Selection
from outbox.testing import FakeLambdaContext
from tests.conftest import FAKE_CREDENTIALS
from tests.integration.conftest import Stack, build_stack, sqs_event
from worker.consumer import Consumer
from worker.handler import StreamWorker

FAULTS = ["none", "throttle_send", "timeout_send", "refuse_entry", "throttle_flip", "crash_after_send"]
STATUS_FIELDS = {"status", "history", "updated_at", "attempts", "reason", "relay_attempts"}
BODIES = ["one", "two", "three"]


@pytest.fixture(scope="module")
def moto_stack() -> Iterator[Stack]:
    """One moto for the whole machine run; each example starts from an emptied table and queue."""
    # The emulator speed-ups are proven equal to moto's own behaviour in test_emulator.py.
    emulator.install_transaction_journal()
    emulator.install_fast_attribute_values()
    emulator.install_lazy_queue_attributes()
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


class Pipeline(RuleBasedStateMachine):
    """The model: what was accepted, sent and observed; the system: the real handlers on moto."""

    stack: Stack

    def __init__(self) -> None:
        super().__init__()
        stack = self.stack
        for item in stack.all_items():
            stack.dynamodb.delete_item(TableName=stack.resources.table_name, Key={"pk": item["pk"], "sk": item["sk"]})
        for message in stack.receive_all():  # PurgeQueue allows one call a minute
            stack.sqs.delete_message(QueueUrl=stack.resources.queue_url, ReceiptHandle=message["ReceiptHandle"])
        stack.stream_event()  # move past everything older than this example
        stack.faults.clear()
        self.faults: FaultInjector = stack.faults
        self.accepted: dict[str, dict[str, Any]] = {}  # message_id -> record attributes at accept
        self.keys: dict[str, str] = {}  # idempotency key -> body used first
        self.sent: set[str] = set()
        self.seen_history: dict[str, list[str]] = {}
        self.pending: list[dict[str, Any]] = []  # stream records Lambda has not checkpointed past
        self.delivered: list[dict[str, Any]] = []
        self.bodies: dict[str, str] = {}
        self.worker = StreamWorker(stack.relay)
        self.consumer = Consumer(stack.store)
        stack.sqs.meta.events.register("after-call.sqs.SendMessageBatch", self._record_sent)

    def _record_sent(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        entries = {e["Id"]: e for e in context.get("fault_params", {}).get("Entries", [])}
        for ok in parsed.get("Successful", []):
            self.sent.add(json.loads(entries[ok["Id"]]["MessageBody"])["message_id"])

    def teardown(self) -> None:
        """Final drain: stream retries until checkpointed, one replay, consume until empty; then check."""
        try:
            self.faults.clear()
            for _ in range(5):
                self.deliver("none")
                if not self.pending:
                    break
            self.replay()
            for _ in range(30):
                if not self._consume_batch():
                    break
            records = self._records()
            for message_id in self.accepted:
                record = records[message_id]
                assert record["status"]["S"] in {Status.COMPLETED, Status.FAILED}, (message_id, record["status"])
                if record["status"]["S"] == Status.FAILED:
                    assert record.get("reason", {}).get("S")
            self.invariants_hold()
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
        record = self.stack.raw_item(f"MSG#{message_id}", "MSG")
        assert record is not None
        self.accepted[message_id] = {k: v for k, v in record.items() if k not in STATUS_FIELDS}

    @rule(fault=st.sampled_from(FAULTS))
    def deliver(self, fault: str) -> None:
        """Lambda delivers everything after its checkpoint, with one kind of fault armed."""
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

    @rule()
    def replay(self) -> None:
        """An operator re-drives whatever is PENDING."""
        stack = self.stack
        reader = DynamoDBOutboxReader(stack.resources.table_name, client=stack.dynamodb, buckets=4)
        relay = Relay(stack.store, stack.publisher, by="replay", expected=FLIP_FROM["PENDING"])
        selection = Selection.build(since=None, until=None, min_age="0", status="PENDING")
        selection = Selection(selection.since, _later(selection.until), selection.status)
        try:
            Replayer(reader, relay).run(Checkpoint(selection))
        finally:
            relay.close()

    @rule()
    def consume(self) -> None:
        """The consumer takes one batch; what it acknowledges is deleted, the rest comes back."""
        self._consume_batch()

    def _consume_batch(self) -> int:
        sqs, url = self.stack.sqs, self.stack.resources.queue_url
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
        if not messages:
            return 0
        for message in messages:  # 6. dedupable: every copy of a message is the same body
            message_id = json.loads(message["Body"])["message_id"]
            assert self.bodies.setdefault(message_id, message["Body"]) == message["Body"]
        response = self.consumer.handle(sqs_event(messages))
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] in failed:
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
            else:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def invariants_hold(self) -> None:
        """Invariants 1, 3, 4 and 5 hold after every step (6 is checked on every consumed copy)."""
        items = self.stack.all_items()
        records = {i["message_id"]["S"]: i for i in items if i["pk"]["S"].startswith("MSG#")}
        entries = [i for i in items if i["pk"]["S"].startswith("OUTBOX#")]
        # 1. atomic accept: one record and one entry per accepted message, nothing else
        assert set(records) == set(self.accepted)
        assert sorted(e["message_id"]["S"] for e in entries) == sorted(self.accepted)
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

    def _arm(self, fault: str) -> None:
        if fault == "throttle_send":
            self.faults.fail("SendMessageBatch", "ThrottlingException")
        elif fault == "timeout_send":
            self.faults.timeout("SendMessageBatch")
        elif fault == "refuse_entry":
            self.faults.refuse(None, code="InternalError", times=1)
        elif fault == "throttle_flip":
            self.faults.fail("UpdateItem", "ProvisionedThroughputExceededException")
        elif fault == "crash_after_send":
            self.faults.crash_after("SendMessageBatch")

    def _records(self) -> dict[str, dict[str, Any]]:
        items = self.stack.all_items()
        return {i["message_id"]["S"]: i for i in items if i["pk"]["S"].startswith("MSG#")}


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
