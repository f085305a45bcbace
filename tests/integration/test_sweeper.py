"""The sweeper on moto: what the stream never relayed is relayed without an operator, reading only what is new."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from moto import mock_aws

from outbox import ConfigurationError, Outbox, Status, cli, metrics
from outbox.adapters.sweep import DynamoDBSweepSource
from outbox.domain.keys import in_flight_pk, iso, utc_now
from outbox.domain.layout import TableLayout
from outbox.ports import PendingKey, SweptRecord
from outbox.service.relay import Relay, RelayPolicy
from outbox.service.sweep import StrandedBounds, Sweeper
from tests.integration.conftest import Stack, build_stack


@pytest.fixture
def fifo_stack_4() -> Iterator[Stack]:
    """A FIFO stack (4 buckets), for group order."""
    with mock_aws():
        built = build_stack(fifo=True)
        yield built
        built.relay.close()


def _source(stack: Stack) -> DynamoDBSweepSource:
    return DynamoDBSweepSource(stack.layout, stack.dynamodb, page_size=7)


def _sweeper(stack: Stack, *, later: timedelta = timedelta(minutes=10)) -> Sweeper:
    """A sweeper whose clock runs ``later`` than now, so the messages written now are old enough."""
    relay = Relay(stack.store, stack.publisher, by="sweeper")
    return Sweeper(_source(stack), relay, buckets=4, clock=lambda: utc_now() + later)


def _outbox(stack: Stack) -> Outbox:
    return Outbox(stack.resources.table_name, client=stack.dynamodb, buckets=4)


def _entries(stack: Stack) -> list[dict[str, Any]]:
    return [i for i in stack.all_items() if i["pk"]["S"].startswith("OUTBOX#")]


def test_a_message_whose_entry_is_gone_is_relayed_from_its_record(stack: Stack) -> None:
    """Invariant 2: trigger off and the outbox entry expired: the sweeper rebuilds the envelope and relays it."""
    outbox = _outbox(stack)
    message = outbox.message({"order": "o-1", "note": "ü"}, type="OrderPlaced", group_key="g-1")
    outbox.transact_write([], message)
    stack.stream_event()  # the stream is trimmed: the worker never sees it
    for entry in _entries(stack):  # TTL (or a person) deleted the entry
        stack.dynamodb.delete_item(TableName=stack.resources.table_name, Key={"pk": entry["pk"], "sk": entry["sk"]})

    report = _sweeper(stack).sweep()

    assert (report.pending, report.relayed, report.failed) == (1, 1, 0)
    (copy,) = stack.receive_all()
    assert copy["Body"] == message.envelope.body()  # the copy names its message; the consumer reads the record
    assert outbox.get(message.message_id).status is Status.QUEUED
    assert [h.by for h in outbox.get(message.message_id).history] == ["service", "sweeper"]


def test_a_sweep_that_finds_nothing_sends_nothing_and_never_reads_settled_records(stack: Stack) -> None:
    """Only PENDING records are in the index: settled ones cost a sweep nothing, one Query per bucket reads it all."""
    outbox = _outbox(stack)
    for n in range(20):
        outbox.transact_write([], outbox.message({"n": n}, type="T"))
    stack.worker.handle(stack.stream_event())  # the stream relays everything
    records = [i for i in stack.all_items() if i["pk"]["S"].startswith("MSG#")]
    assert len(records) == 20
    assert all(r["outbox_pk"]["S"].startswith("SENT#") for r in records)  # out of the buckets with PENDING

    stack.faults.calls.clear()
    report = _sweeper(stack).sweep()
    assert (report.scanned, report.pending, report.relayed) == (0, 0, 0)
    assert stack.faults.calls["Query"] == 4  # one per bucket, whatever the table holds
    assert (stack.faults.calls["BatchGetItem"], stack.faults.calls["SendMessageBatch"]) == (0, 0)
    assert stack.faults.calls["PutItem"] + stack.faults.calls["UpdateItem"] == 0  # a sweep keeps no state


def test_every_move_out_of_pending_takes_the_record_out_of_its_bucket(stack: Stack) -> None:
    """QUEUED (the worker) and PROCESSING (a copy ahead of its flip) go in flight; FAILED leaves the index."""
    outbox = _outbox(stack)
    messages = [outbox.message({"n": n}, type="T") for n in range(5)]
    for message in messages:
        outbox.transact_write([], message)
    flipped, taken, quarantined, waiting, done = (m.message_id for m in messages)
    stack.store.transition(flipped, Status.QUEUED, by="worker")
    stack.store.transition(taken, Status.PROCESSING, by="consumer")
    stack.store.transition(quarantined, Status.FAILED, by="worker", reason="poison")
    stack.store.transition(done, Status.QUEUED, by="worker")
    stack.store.transition(done, Status.PROCESSING, by="consumer")
    stack.store.transition(done, Status.COMPLETED, by="consumer")
    records = [r for r in stack.all_items() if r["pk"]["S"].startswith("MSG#")]
    indexed = {r["message_id"]["S"]: r["outbox_pk"]["S"] for r in records if "outbox_pk" in r}
    assert indexed == {waiting: indexed[waiting], flipped: in_flight_pk(flipped), taken: in_flight_pk(taken)}
    assert indexed[waiting].startswith("OUTBOX#")
    assert [r.message_id for bucket in range(4) for page in _source(stack).pending(bucket) for r in page] == [waiting]
    source = _source(stack)
    later = iso(utc_now() + timedelta(seconds=1))
    keys = [key for p in range(16) for page in source.in_flight_keys(p, later) for key in page]
    in_flight = {r.message_id: r.status for r in source.records(keys, consistent=False)}
    assert in_flight == {flipped: Status.QUEUED, taken: Status.PROCESSING}
    assert not [page for p in range(16) for page in source.in_flight_keys(p, iso(utc_now() - timedelta(minutes=1)))]


def test_a_young_pending_message_is_left_to_the_stream(stack: Stack) -> None:
    """A message younger than min_age is not relayed, and it counts as the oldest PENDING."""
    outbox = _outbox(stack)
    message = outbox.message({"n": 1}, type="T")
    outbox.transact_write([], message)
    report = _sweeper(stack, later=timedelta(seconds=30)).sweep()
    assert (report.scanned, report.relayed) == (0, 0)  # its record is not even read
    assert 25 <= report.oldest_pending_age_s <= 60
    assert outbox.get(message.message_id).status is Status.PENDING
    late = _sweeper(stack).sweep()  # ten minutes on: now it is the sweeper's
    assert (late.scanned, late.relayed) == (1, 1)


def test_the_oldest_messages_go_first_whatever_their_bucket(stack: Stack) -> None:
    """When sends keep failing no bucket starves: each sweep relays the oldest PENDING messages of the table."""
    outbox = _outbox(stack)
    written = []
    for n in range(40):
        message = outbox.message({"n": n}, type="T")
        outbox.transact_write([], message)
        written.append(message.message_id)
    stack.stream_event()
    buckets_of_first_ten = {_bucket(stack, m) for m in written[:10]}
    assert len(buckets_of_first_ten) > 1  # the oldest ten span buckets

    sends = iter(range(1_000))
    stack.faults.fail("SendMessageBatch", "InternalError", status=500, times=-1, when=lambda _: next(sends) > 0)
    report = _sweeper(stack).sweep()  # one batch gets through, then SQS fails
    assert (report.relayed, report.failed) == (10, 30)
    queued = {m for m in written if outbox.get(m).status is Status.QUEUED}
    assert queued == set(written[:10])


def _bucket(stack: Stack, message_id: str) -> int:
    (entry,) = [e for e in _entries(stack) if e["message_id"]["S"] == message_id]
    return int(entry["pk"]["S"].removeprefix("OUTBOX#"))


def test_a_group_is_swept_in_order(fifo_stack_4: Stack) -> None:
    """Invariant 8: stuck messages of one group reach a FIFO queue in the order they were written."""
    stack = fifo_stack_4
    outbox = _outbox(stack)
    ids = []
    for n in range(12):
        message = outbox.message({"n": n}, type="T", group_key="customer-7")
        outbox.transact_write([], message)
        ids.append(message.message_id)
    stack.stream_event()
    assert _sweeper(stack).sweep().relayed == 12
    assert stack.drain_in_order() == ids


def test_a_failed_send_leaves_the_message_pending_and_the_next_sweep_finishes(stack: Stack) -> None:
    """SQS down during a sweep: the message stays PENDING (in the index), and the next sweep relays it."""
    outbox = _outbox(stack)
    message = outbox.message({"n": 1}, type="T")
    outbox.transact_write([], message)
    stack.stream_event()
    stack.faults.fail("SendMessageBatch", "InternalError", status=500)
    failed = _sweeper(stack).sweep()
    assert (failed.relayed, failed.failed) == (0, 1)
    again = _sweeper(stack).sweep()
    assert (again.relayed, again.failed) == (1, 0)
    assert outbox.get(message.message_id).status is Status.QUEUED


def test_a_sweep_counts_what_it_relayed_quarantined_and_failed_in_the_alarmed_metrics(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A message SQS refuses for good (a sender fault) is quarantined by the sweep and counted where the alarm looks."""
    outbox = _outbox(stack)
    small, big = outbox.message({"n": 1}, type="T"), outbox.message({"n": "x" * 2_000}, type="T")
    outbox.transact_write([], small)
    outbox.transact_write([], big)
    stack.stream_event()
    stack.faults.refuse({big.message_id}, code="InvalidMessageContents", sender_fault=True)
    relay = Relay(stack.store, stack.publisher, by="sweeper")
    sweeper = Sweeper(_source(stack), relay, buckets=4, clock=lambda: utc_now() + timedelta(minutes=10))
    monkeypatch.setenv("OUTBOX_METRICS", "on")
    capsys.readouterr()

    report = sweeper.sweep()

    assert (report.relayed, report.quarantined, report.failed) == (1, 1, 0)
    emitted: dict[str, float] = {}
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    for document in documents:  # the EMF lines among the logs
        for declared in document["_aws"]["CloudWatchMetrics"]:
            assert (declared["Namespace"], declared["Dimensions"]) == (metrics.NAMESPACE, [sorted(metrics.DIMENSIONS)])
            emitted |= {m["Name"]: document[m["Name"]] for m in declared["Metrics"]}
    assert emitted[metrics.MESSAGES_QUARANTINED] == 1
    assert metrics.SWEEP_FAILURES not in emitted  # a count of 0 is not written
    assert emitted["MessagesSwept"] == 1
    assert emitted[metrics.OLDEST_PENDING_AGE] > 0
    assert outbox.get(big.message_id).status is Status.FAILED


def test_the_bucket_count_is_stored_once_and_a_different_one_refused(stack: Stack) -> None:
    """OUTBOX_BUCKETS can no longer silently split a table: the first count is kept, another is a clear error."""
    source = _source(stack)
    assert source.stored_buckets() == 4  # bootstrap stored it
    assert source.buckets(4) == 4
    with pytest.raises(ConfigurationError, match="keeps its outbox in 4 buckets, not 16"):
        source.buckets(16)
    with pytest.raises(ConfigurationError, match="set OUTBOX_BUCKETS=4"):
        Outbox(stack.resources.table_name, client=stack.dynamodb, buckets=16).message({}, type="T")


def test_a_table_without_the_record_index_is_a_clear_error() -> None:
    """A caller's table missing the index fails the sweep with one line saying what to add."""
    with mock_aws():
        from outbox.adapters.aws import dynamodb_client

        client = dynamodb_client()
        client.create_table(
            TableName="bare",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        with pytest.raises(ConfigurationError, match="has no index outbox-records"):
            list(DynamoDBSweepSource(TableLayout("bare"), client).pending(0))


def _stuck_for_the_command(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> tuple[Outbox, str]:
    """A message the stream passed over, and the stack's environment exported as a terminal would have it."""
    outbox = _outbox(stack)
    message = outbox.message({"n": 1}, type="T")
    outbox.transact_write([], message)
    stack.stream_event()
    for name, value in stack.resources.environment().items():
        monkeypatch.setenv(name, value)
    return outbox, message.message_id


def test_outbox_sweep_runs_one_sweep_from_a_terminal(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``outbox sweep`` relays what is stuck with the deployed code and prints the report; exit 0."""
    outbox, message_id = _stuck_for_the_command(stack, monkeypatch)
    assert cli.main(["sweep", "--min-age", "0s", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["relayed"], report["failed"]) == (1, 0)
    assert outbox.get(message_id).status is Status.QUEUED


def test_outbox_sweep_takes_the_deployed_minimum_age_by_default(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --min-age, OUTBOX_SWEEP_MIN_AGE_SECONDS (what the module's `environment` output exports) applies."""
    outbox, message_id = _stuck_for_the_command(stack, monkeypatch)
    monkeypatch.setenv("OUTBOX_SWEEP_MIN_AGE_SECONDS", "1")
    monkeypatch.setenv("OUTBOX_METRICS", "on")  # the command turns metric lines off: restored after the test
    relayed, deadline = 0, time.monotonic() + 60  # the message is 1 s old within a moment, however busy the machine
    while not relayed and time.monotonic() < deadline:
        assert cli.main(["sweep", "--json"]) == 0
        relayed = json.loads(capsys.readouterr().out)["relayed"]
        time.sleep(0.2)
    assert relayed == 1
    assert outbox.get(message_id).status is Status.QUEUED


def test_the_worker_learns_which_messages_moved_on_from_their_records(upper_stack: Stack) -> None:
    """``moved_on`` names QUEUED and FAILED records, not PENDING or unknown ones; 100 keys a request; any key names."""
    stack = upper_stack
    outbox = Outbox(stack.resources.table_name, client=stack.dynamodb, hash_key="PK", range_key="SK", buckets=4)
    messages = [outbox.message({"n": n}, type="T") for n in range(150)]
    for message in messages:
        outbox.transact_write([], message)
    ids = [message.message_id for message in messages]
    for message_id in ids[:60]:
        stack.store.transition(message_id, Status.QUEUED, by="sweeper")
    stack.store.transition(ids[60], Status.FAILED, by="sweeper", reason="quarantined")
    source = DynamoDBSweepSource(TableLayout(stack.resources.table_name, "PK", "SK"), stack.dynamodb)
    requests: list[int] = []
    stack.dynamodb.meta.events.register(
        "provide-client-params.dynamodb.BatchGetItem",
        lambda params, **_: requests.append(sum(len(t["Keys"]) for t in params["RequestItems"].values())),
    )

    moved = source.moved_on([*ids, "00000000-0000-4000-8000-000000000000"])

    assert moved == set(ids[:61])
    assert requests == [100, 51]


class _Unprocessed:
    """A DynamoDB client whose BatchGetItem leaves every key unprocessed (throttled reads)."""

    def __init__(self) -> None:
        self.calls = 0

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        return {"Responses": {}, "UnprocessedKeys": RequestItems}


def test_throttled_reads_end_after_a_few_tries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys left unprocessed are asked for again a few times: then the worker sends anyway, the sweeper stops."""
    from outbox.adapters import batch
    from outbox.domain.errors import ThrottledError

    pauses: list[float] = []
    monkeypatch.setattr(batch.time, "sleep", pauses.append)
    client = _Unprocessed()
    source = DynamoDBSweepSource(TableLayout("outbox"), client)  # type: ignore[arg-type]

    assert source.moved_on(["a", "b"]) == set()  # not read: counted PENDING, so sent
    assert client.calls == batch.UNPROCESSED_TRIES
    assert pauses == [0.05, 0.1, 0.2, 0.4][: batch.UNPROCESSED_TRIES - 1]  # between tries, none after the last
    with pytest.raises(ThrottledError):
        source.records([PendingKey("x", "a")])
    # Records in flight are read eventually consistent: one not read is left to the next sweep.
    assert source.records([PendingKey("x", "a")], consistent=False) == [SweptRecord("x", None, None)]


def _backlog(stack: Stack, n: int) -> list[str]:
    """``n`` messages the stream never relays (trimmed), written oldest first."""
    outbox = _outbox(stack)
    ids = []
    for i in range(n):
        message = outbox.message({"n": i}, type="T")
        outbox.transact_write([], message)
        ids.append(message.message_id)
    stack.stream_event()
    return ids


def _paged_sweeper(stack: Stack, *, page_size: int) -> Sweeper:
    """A sweeper reading the index 7 keys a Query and relaying ``page_size`` records at a time, ten minutes on."""
    relay = Relay(stack.store, stack.publisher, by="sweeper", policy=RelayPolicy(deadline_margin_ms=10))
    later = timedelta(minutes=10)
    return Sweeper(_source(stack), relay, buckets=4, page_size=page_size, clock=lambda: utc_now() + later)


def test_consecutive_sweeps_under_a_short_deadline_each_relay_the_oldest_until_the_backlog_drains(
    stack: Stack,
) -> None:
    """Invariant 2, the stream trimmed: each run has time for 20 requests, and each relays the next oldest pages."""
    ids = _backlog(stack, 60)
    sweeper = _paged_sweeper(stack, page_size=5)
    relayed: list[str] = []
    stack.sqs.meta.events.register(
        "provide-client-params.sqs.SendMessageBatch",
        lambda params, **_: relayed.extend(json.loads(e["MessageBody"])["message_id"] for e in params["Entries"]),
    )

    def twenty_requests() -> Callable[[], int]:
        """10 ms a request, 20 requests from now."""
        start = stack.faults.calls.total()
        return lambda: 10 * (20 - (stack.faults.calls.total() - start))

    runs = []
    while len(set(relayed)) < len(ids) and len(runs) < 20:
        runs.append(sweeper.sweep(time_left_ms=twenty_requests()))

    assert all(run.relayed > 0 for run in runs)
    assert len(runs) > 2
    assert all(run.deadline_reached for run in runs[:-1])
    assert relayed == ids  # oldest first, across buckets and runs, each once
    assert {_outbox(stack).get(m).status for m in ids} == {Status.QUEUED}
    sweeper.relay.close()


def test_a_sweep_reads_a_page_of_records_before_it_sends_never_the_backlog(stack: Stack) -> None:
    """The records behind the index (payloads) are read a page at a time, just before that page is sent."""
    _backlog(stack, 45)
    sweeper = _paged_sweeper(stack, page_size=10)
    unsent: list[int] = []  # records read and not yet sent, at each send
    read_and_sent = [0, 0]
    stack.dynamodb.meta.events.register(
        "provide-client-params.dynamodb.BatchGetItem",
        lambda params, **_: read_and_sent.__setitem__(
            0, read_and_sent[0] + sum(len(t["Keys"]) for t in params["RequestItems"].values())
        ),
    )

    def on_send(params: dict[str, Any], **_: Any) -> None:
        unsent.append(read_and_sent[0] - read_and_sent[1])
        read_and_sent[1] += len(params["Entries"])

    stack.sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", on_send)

    report = sweeper.sweep()

    assert report.relayed == 45
    assert unsent[0] <= 10
    assert max(unsent) <= 10
    sweeper.relay.close()


def test_a_sweep_with_no_time_left_makes_no_request(stack: Stack) -> None:
    """The deadline is checked before reading: a run started too late queries no index and reads no record."""
    _backlog(stack, 5)
    sweeper = _paged_sweeper(stack, page_size=10)
    stack.faults.calls.clear()

    report = sweeper.sweep(time_left_ms=lambda: 0)

    assert sum(stack.faults.calls.values()) == 0
    assert report.deadline_reached
    assert (report.scanned, report.relayed) == (0, 0)
    sweeper.relay.close()


# -- what a sweep reads of a record: what re-sending needs, never the payload --------------------

UNNEEDED = frozenset({"payload", "type"})  # the consumer reads them, by its lease write


@contextmanager
def _record_reads(client: Any) -> Iterator[list[frozenset[str] | None]]:
    """The attributes each BatchGetItem asks for (None: the whole item), as botocore sends it to the table.

    Read at botocore's boundary (the serialised request, before it leaves), and each answer checked
    after it came back: DynamoDB returns only what the ProjectionExpression names.
    """
    asked: list[frozenset[str] | None] = []
    answered: list[set[str]] = []

    def before_call(params: dict[str, Any], **_: Any) -> None:
        for request in json.loads(params["body"])["RequestItems"].values():
            expression, names = request.get("ProjectionExpression"), request.get("ExpressionAttributeNames", {})
            asked.append(None if expression is None else frozenset(names[p.strip()] for p in expression.split(",")))

    def after_call(parsed: dict[str, Any], **_: Any) -> None:
        answered.extend(set(item) for items in parsed.get("Responses", {}).values() for item in items)

    events = client.meta.events
    events.register("before-call.dynamodb.BatchGetItem", before_call)
    events.register("after-call.dynamodb.BatchGetItem", after_call)
    try:
        yield asked
    finally:
        events.unregister("before-call.dynamodb.BatchGetItem", before_call)
        events.unregister("after-call.dynamodb.BatchGetItem", after_call)
    assert not [attributes for attributes in answered if attributes & UNNEEDED]


def test_a_sweep_reads_no_payload_of_what_it_relays_or_resends(stack: Stack) -> None:
    """Both passes ask BatchGetItem for the id, status, group, trace and times only: the copy's body is the id."""
    # GIVEN one message the stream never relayed, and one relayed whose copy is gone, both 60 KB
    outbox = _outbox(stack)
    big = {"blob": "x" * 60_000}
    pending = outbox.message(big, type="Big", group_key="g-1")
    outbox.transact_write([], pending)
    stack.stream_event()  # trimmed: the worker never sees it
    in_flight = outbox.message(big, type="Big")
    outbox.transact_write([], in_flight)
    stack.worker.handle(stack.stream_event())
    stack.sqs.purge_queue(QueueUrl=stack.resources.queue_url)
    bounds = StrandedBounds(retention=timedelta(hours=1), visibility=timedelta(minutes=3))
    resender = Relay(stack.store, stack.publisher, by="sweeper", expected=frozenset())
    relay = Relay(stack.store, stack.publisher, by="sweeper")
    later = utc_now() + timedelta(hours=2)  # past the retention: no copy can be left
    sweeper = Sweeper(_source(stack), relay, buckets=4, clock=lambda: later, resender=resender, bounds=bounds)

    # WHEN a sweep relays the one and re-sends the other
    with _record_reads(stack.dynamodb) as asked:
        report = sweeper.sweep()

    # THEN it did both (on a clock two hours on, the copy it just relayed counts as gone too), and no
    # read of a record asked for a payload or a type
    assert (report.relayed, report.resent, report.failed) == (1, 2, 0)
    assert len(asked) >= 2  # the PENDING pass's page, then each in-flight partition's
    assert all(attributes is not None and not attributes & UNNEEDED for attributes in asked), asked
    assert {json.loads(copy["Body"])["message_id"] for copy in stack.receive_all()} == {
        pending.message_id,
        in_flight.message_id,
    }
    assert outbox.get(pending.message_id).status is Status.QUEUED
    assert outbox.get(pending.message_id).payload == big  # the record keeps what the consumer delivers


def test_the_workers_older_first_step_reads_no_payload(fifo_stack: Stack) -> None:
    """A group's message the stream lost is found, read and sent first without its payload being read."""
    outbox = _outbox(fifo_stack)
    big = {"blob": "x" * 60_000}
    lost = outbox.message(big, type="Big", group_key="g-1")
    outbox.transact_write([], lost)
    fifo_stack.stream_event()  # trimmed: the worker never sees it
    newer = outbox.message({"n": 1}, type="Small", group_key="g-1")
    outbox.transact_write([], newer)

    with _record_reads(fifo_stack.dynamodb) as asked:
        response = fifo_stack.worker.handle(fifo_stack.stream_event())

    assert response == {"batchItemFailures": []}
    assert fifo_stack.drain_in_order() == [lost.message_id, newer.message_id]
    assert asked  # the lost message's record was read
    assert all(attributes is not None and not attributes & UNNEEDED for attributes in asked), asked
