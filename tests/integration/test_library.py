"""The library on moto: your items and the message in one transaction, on your own table, to your consumer."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest
from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from outbox import (
    ConfigurationError,
    DeliveryError,
    Envelope,
    NotFoundError,
    Outbox,
    OutboxMessage,
    Status,
    TransactionCancelledError,
    ValidationError,
    lambda_consumer,
)
from outbox.consumer import make_handler
from outbox.domain.errors import ItemPart
from outbox.service.consume import Consumer
from outbox.testing import stream_records
from tests.integration.conftest import ID_SECRET, Stack, sqs_event
from worker import consumer as consumer_module

ORDER = {"order_id": "o-1", "total": 42.5, "lines": [{"sku": "żółw-🐢", "qty": 2}], "gift": None}


def _outbox(stack: Stack) -> Outbox:
    resources = stack.resources
    return Outbox(
        resources.table_name,
        client=stack.dynamodb,
        hash_key=resources.hash_key,
        range_key=resources.range_key,
        buckets=4,  # what the stack's bootstrap stored
        id_secret=ID_SECRET,
    )


def _order_put(stack: Stack, order_id: str, *, must_be_new: bool = True) -> dict[str, Any]:
    """The caller's own business item, in the same table, under its own key scheme."""
    keys = stack.resources
    put: dict[str, Any] = {
        "TableName": keys.table_name,
        "Item": {keys.hash_key: {"S": f"ORDER#{order_id}"}, keys.range_key: {"S": "ORDER"}, "total": {"N": "42.5"}},
    }
    if must_be_new:
        put |= {"ConditionExpression": "attribute_not_exists(#h)", "ExpressionAttributeNames": {"#h": keys.hash_key}}
    return {"Put": put}


def _keys(stack: Stack) -> set[str]:
    return {item[stack.resources.hash_key]["S"] for item in stack.all_items()}


def test_the_order_and_its_event_commit_in_one_request(stack: Stack) -> None:
    """Invariant 1: one TransactWriteItems holds the caller's item, the PENDING record and the outbox entry."""
    outbox = _outbox(stack)
    message = outbox.message(ORDER, type="OrderPlaced", group_key="customer-7")
    before = stack.faults.calls["TransactWriteItems"]
    outbox.transact_write([_order_put(stack, "o-1")], message)
    assert stack.faults.calls["TransactWriteItems"] - before == 1
    keys = _keys(stack)
    assert {"ORDER#o-1", f"MSG#{message.message_id}"} <= keys
    assert sum(key.startswith("OUTBOX#") for key in keys) == 1
    record = outbox.get(message.message_id)
    assert (record.status, record.type, record.payload, record.group_key) == (
        Status.PENDING,
        "OrderPlaced",
        ORDER,
        "customer-7",
    )
    assert [h.status for h in record.history] == [Status.PENDING]


def test_a_failed_caller_condition_writes_nothing_and_names_the_item(stack: Stack) -> None:
    """Invariant 1: the caller's condition fails, so neither the order nor the message is written."""
    outbox = _outbox(stack)
    outbox.transact_write([_order_put(stack, "o-1")], outbox.message({"n": 1}, type="OrderPlaced"))
    before = _keys(stack)
    message = outbox.message({"n": 2}, type="OrderPlaced")
    with pytest.raises(TransactionCancelledError) as caught:
        outbox.transact_write([_order_put(stack, "o-2", must_be_new=False), _order_put(stack, "o-1")], message)
    (reason,) = caught.value.reasons
    assert (reason.index, reason.part, reason.code, reason.message_id) == (
        1,
        ItemPart.CALLER,
        "ConditionalCheckFailed",
        None,
    )
    assert "your item 1" in caught.value.detail
    assert caught.value.retryable is False
    assert _keys(stack) == before  # not o-2, not the message
    with pytest.raises(NotFoundError):
        outbox.get(message.message_id)
    assert [r for r in stack.stream_event()["Records"] if message.message_id in json.dumps(r)] == []


def test_the_same_idempotency_key_twice_is_a_duplicate_message(stack: Stack) -> None:
    """A message written again (same key, so same id) cancels its transaction and says which message."""
    outbox = _outbox(stack)
    first = outbox.message({"n": 1}, type="OrderPlaced", idempotency_key="order-o-1")
    outbox.transact_write([], first)
    again = outbox.message({"n": 1}, type="OrderPlaced", idempotency_key="order-o-1")
    assert again.message_id == first.message_id
    with pytest.raises(TransactionCancelledError) as caught:
        outbox.transact_write([_order_put(stack, "o-9")], again)
    assert caught.value.duplicate_message_ids == (first.message_id,)
    assert f"message {first.message_id} already exists" in caught.value.detail
    assert "ORDER#o-9" not in _keys(stack)


def test_a_transaction_conflict_is_retryable_and_says_so(stack: Stack) -> None:
    """A TransactionConflict cancellation is a retryable error; sending the same transaction again succeeds."""
    outbox = _outbox(stack)
    message = outbox.message({"n": 1}, type="OrderPlaced")
    reasons = [{"Code": "None"}, {"Code": "TransactionConflict", "Message": "conflict"}, {"Code": "None"}]
    stack.faults.fail("TransactWriteItems", "TransactionCanceledException", details={"CancellationReasons": reasons})
    with pytest.raises(TransactionCancelledError) as caught:
        outbox.transact_write([_order_put(stack, "o-1")], message)
    assert caught.value.retryable is True
    assert "send the same transaction again" in caught.value.detail
    (reason,) = caught.value.reasons
    assert (reason.part, reason.message_id) == (ItemPart.RECORD, message.message_id)
    outbox.transact_write([_order_put(stack, "o-1")], message)
    assert outbox.get(message.message_id).status is Status.PENDING


def test_more_than_100_items_is_refused_before_any_call(stack: Stack) -> None:
    """TransactWriteItems holds 100 items: 99 of yours and a message (2 items) are refused up front."""
    outbox = _outbox(stack)
    before = stack.faults.calls["TransactWriteItems"]
    with pytest.raises(ValidationError, match="101 items"):
        outbox.transact_write([_order_put(stack, f"o-{i}") for i in range(99)], outbox.message({}, type="T"))
    assert stack.faults.calls["TransactWriteItems"] == before


def test_the_low_level_items_work_in_your_own_request(stack: Stack) -> None:
    """``message.transact_items`` can go straight into your own client's TransactWriteItems."""
    outbox = _outbox(stack)
    message = outbox.message({"n": 1}, type="OrderPlaced")
    stack.dynamodb.transact_write_items(TransactItems=[_order_put(stack, "o-1"), *message.transact_items])
    assert outbox.get(message.message_id).status is Status.PENDING


def test_generic_payloads_reach_the_consumer_exactly_as_given_on_a_pk_sk_table(upper_stack: Stack) -> None:
    """Keys named PK/SK, the caller's items in the same stream, unicode, nested and large payloads: end to end."""
    stack = upper_stack
    outbox = _outbox(stack)
    payloads = [ORDER, {"deep": {"a": [1, {"b": [True, None, -0.5]}]}}, {"blob": "ü" * 100_000}]
    messages = [outbox.message(p, type="OrderPlaced", group_key=f"c-{i}") for i, p in enumerate(payloads)]
    for index, message in enumerate(messages):
        outbox.transact_write([_order_put(stack, f"o-{index}")], message)
    stack.dynamodb.put_item(TableName=stack.resources.table_name, Item={"PK": {"S": "OUTBOXED"}, "SK": {"S": "x"}})

    event = stack.stream_event()
    assert len(event["Records"]) == 3 * 3 + 1  # order, record, entry each; one more own item
    assert stack.worker.handle(event) == {"batchItemFailures": []}
    delivered: list[Envelope] = []
    handler = make_handler(delivered.append)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OUTBOX_TABLE_NAME", stack.resources.table_name)
        env.setenv("OUTBOX_HASH_KEY", "PK")
        env.setenv("OUTBOX_RANGE_KEY", "SK")
        assert handler(sqs_event(stack.receive_all()), None) == {"batchItemFailures": []}
    assert {e.message_id: (e.type, e.payload) for e in delivered} == {
        m.message_id: ("OrderPlaced", p) for m, p in zip(messages, payloads, strict=True)
    }
    assert {e.group_key for e in delivered} == {"c-0", "c-1", "c-2"}
    assert all(outbox.get(m.message_id).status is Status.COMPLETED for m in messages)


class Order(Model):
    """A caller's own PynamoDB model, in the outbox's table."""

    class Meta:
        table_name = "outbox"
        region = "us-east-1"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    total = NumberAttribute()


def test_pynamodb_users_add_the_message_to_their_own_transaction(stack: Stack) -> None:
    """``add_to`` puts the message into a PynamoDB TransactWrite: both commit, or neither."""
    outbox = _outbox(stack)
    message = outbox.message(ORDER, type="OrderPlaced")
    with TransactWrite(connection=Connection(region="us-east-1")) as transaction:
        transaction.save(Order("ORDER#o-1", "ORDER", total=42.5), condition=Order.pk.does_not_exist())
        outbox.add_to(transaction, message)
    assert outbox.get(message.message_id).payload == ORDER
    assert Order.get("ORDER#o-1", "ORDER").total == 42.5

    failing = outbox.message({"n": 2}, type="OrderPlaced")

    def place_the_same_order_again() -> None:
        with TransactWrite(connection=Connection(region="us-east-1")) as transaction:
            transaction.save(Order("ORDER#o-1", "ORDER", total=1), condition=Order.pk.does_not_exist())
            outbox.add_to(transaction, failing)

    with pytest.raises(TransactWriteError):
        place_the_same_order_again()
    with pytest.raises(NotFoundError):
        outbox.get(failing.message_id)


def test_a_copy_0_1_0_sent_is_delivered_as_its_record_holds_it(stack: Stack) -> None:
    """A body 0.1.0 sent (the whole envelope, schema 2) still in the queue after the upgrade names its message."""
    outbox = _outbox(stack)
    message = outbox.message(ORDER, type="OrderPlaced")
    outbox.transact_write([], message)
    body = json.loads(message.envelope.to_json()) | {"schema_version": 2, "payload": {"not": "the record's"}}
    stack.sqs.send_message(QueueUrl=stack.resources.queue_url, MessageBody=json.dumps(body))
    (copy,) = stack.receive_all()
    delivered: list[Envelope] = []
    Consumer(stack.store, delivered.append).handle(sqs_event([copy]))
    assert delivered == [message.envelope]
    assert stack.store.get(message.message_id).status is Status.COMPLETED


def _delivery_target(envelope: Envelope) -> None:
    """What OUTBOX_DELIVERY names in the next test."""
    if envelope.payload.get("fail"):
        raise DeliveryError("refused for good", retryable=False)


@pytest.mark.parametrize("deployed", [consumer_module, lambda_consumer], ids=lambda m: m.__name__)
def test_outbox_delivery_names_the_deployed_consumers_function(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, deployed: ModuleType
) -> None:
    """The deployed consumers call OUTBOX_DELIVERY's function; DeliveryError(retryable=False) ends FAILED.

    ``worker.consumer`` runs from the module's zip, ``outbox.lambda_consumer`` from one ``outbox package`` built.
    """
    outbox = _outbox(stack)
    good, bad = outbox.message({"ok": 1}, type="T"), outbox.message({"fail": 1}, type="T")
    outbox.transact_write([], good, bad)
    stack.worker.handle(stack.stream_event())
    monkeypatch.setenv("OUTBOX_TABLE_NAME", stack.resources.table_name)
    monkeypatch.setenv("OUTBOX_DELIVERY", f"{__name__}:_delivery_target")
    deployed.default_consumer.cache_clear()
    try:
        assert deployed.handler(sqs_event(stack.receive_all()), None) == {"batchItemFailures": []}
        assert deployed.default_consumer().deliver is _delivery_target
    finally:
        deployed.default_consumer.cache_clear()
    assert outbox.get(good.message_id).status is Status.COMPLETED
    failed = outbox.get(bad.message_id)
    assert (failed.status, failed.reason) == (Status.FAILED, "delivery failed: refused for good")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("no_such_module_here:deliver", "there is no module no_such_module_here"),
        (f"{__name__}:missing", "has no function missing"),
        ("not a reference", "must be package.module:function"),
    ],
)
def test_a_bad_outbox_delivery_fails_at_start_with_one_line(
    value: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong OUTBOX_DELIVERY is a ConfigurationError of one line, at the consumer's cold start."""
    monkeypatch.setenv("OUTBOX_TABLE_NAME", "outbox")
    monkeypatch.setenv("OUTBOX_DELIVERY", value)
    consumer_module.default_consumer.cache_clear()
    try:
        with pytest.raises(ConfigurationError) as caught:
            consumer_module.handler({"Records": []}, None)
    finally:
        consumer_module.default_consumer.cache_clear()
    assert says in caught.value.detail
    assert "\n" not in caught.value.detail


def test_the_library_consumer_needs_a_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    """``outbox.lambda_consumer`` without OUTBOX_DELIVERY is one line naming the setting, not a log-only consumer."""
    monkeypatch.setenv("OUTBOX_TABLE_NAME", "outbox")
    monkeypatch.delenv("OUTBOX_DELIVERY", raising=False)
    lambda_consumer.default_consumer.cache_clear()
    try:
        with pytest.raises(ConfigurationError) as caught:
            lambda_consumer.handler({"Records": []}, None)
    finally:
        lambda_consumer.default_consumer.cache_clear()
    assert caught.value.detail.startswith("OUTBOX_DELIVERY is not set")
    assert "\n" not in caught.value.detail


def test_stream_records_reads_the_whole_stream_or_what_follows_a_position(stack: Stack) -> None:
    """outbox.testing.stream_records: every record from the trim horizon, or only those after a sequence number."""
    # GIVEN two orders accepted after everything the stack's bootstrap wrote
    outbox = _outbox(stack)
    before = stream_records(stack.streams, stack.resources.stream_arn)
    for order_id in ("o-1", "o-2"):
        outbox.transact_write([_order_put(stack, order_id)], outbox.message({"order_id": order_id}, type="Order"))

    # WHEN the stream is read from the start, and after the last record seen before them
    everything = stream_records(stack.streams, stack.resources.stream_arn)
    since = stream_records(stack.streams, stack.resources.stream_arn, after=before[-1]["dynamodb"]["SequenceNumber"])

    # THEN the second read holds exactly the new records: each order, its record and its outbox entry
    assert everything[: len(before)] == before
    assert since == everything[len(before) :]
    assert len(since) == 6


def _plain_table(stack: Stack, name: str, *, stream: bool) -> None:
    """A table of the service's own with PK/SK keys, a stream or none."""
    extra: dict[str, Any] = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}}
    stack.dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in ("PK", "SK")],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
        **(extra if stream else {}),
    )


@pytest.mark.parametrize(
    ("table", "keys", "expected"),
    [
        ("nowhere", ("pk", "sk"), "table nowhere does not exist in us-east-1: set OUTBOX_TABLE_NAME and the region"),
        ("orders", ("pk", "sk"), "its keys are PK (hash), SK (range), not pk (hash), sk (range): pass its key names"),
        ("quiet", ("PK", "SK"), "its stream must be on with view type NEW_IMAGE or NEW_AND_OLD_IMAGES"),
        ("orders", ("PK", "SK"), "it has no index outbox-records"),
    ],
)
def test_a_table_that_cannot_hold_the_outbox_is_named_before_a_message_is_written(
    stack: Stack, table: str, keys: tuple[str, str], expected: str
) -> None:
    """Wrong table, wrong key names, no stream, no record index: one line naming the table and the fix."""
    _plain_table(stack, "orders", stream=True)
    _plain_table(stack, "quiet", stream=False)
    outbox = Outbox(table, client=stack.dynamodb, hash_key=keys[0], range_key=keys[1], buckets=4)
    stack.faults.calls.clear()

    with pytest.raises(ConfigurationError) as caught:
        outbox.message({"order_id": "o-1"}, type="OrderPlaced")

    assert expected in caught.value.detail
    assert "\n" not in caught.value.detail
    assert not {"PutItem", "TransactWriteItems", "UpdateItem"} & set(stack.faults.calls)


def test_outbox_transaction_turns_a_pynamodb_cancellation_into_the_librarys_error(stack: Stack) -> None:
    """Your condition fails, or the key was used: TransactionCancelledError naming each item, no payload in any text."""
    outbox = _outbox(stack)
    first = outbox.message({"card": "4111-secret"}, type="OrderPlaced", idempotency_key="order-7")
    with outbox.transaction(connection=Connection(region="us-east-1")) as transaction:
        transaction.save(Order("ORDER#o-7", "ORDER", total=1), condition=Order.pk.does_not_exist())
        outbox.add_to(transaction, first)

    def write(order_id: str, message: OutboxMessage) -> None:
        with outbox.transaction() as transaction:
            transaction.save(Order(order_id, "ORDER", total=1), condition=Order.pk.does_not_exist())
            outbox.add_to(transaction, message)

    again = outbox.message({"card": "4111-secret"}, type="OrderPlaced", idempotency_key="order-7")
    with pytest.raises(TransactionCancelledError) as caught:
        write("ORDER#o-8", again)
    assert caught.value.duplicate_message_ids == (first.message_id,)
    texts = [str(caught.value), repr(caught.value), str(caught.value.__cause__)]
    assert not [text for text in texts if "4111-secret" in text]

    with pytest.raises(TransactionCancelledError) as caught:
        write("ORDER#o-7", outbox.message({"n": 1}, type="OrderPlaced"))
    assert [(r.part, r.code) for r in caught.value.reasons] == [(ItemPart.CALLER, "ConditionalCheckFailed")]
