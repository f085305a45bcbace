"""The emulator speed-ups behave exactly like unpatched moto, and fail loudly if moto's internals move."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from outbox.adapters.aws import streams_client
from outbox.local import emulator

TABLE = "t"


def _key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "x"}}


def _put(pk: str, **attrs: Any) -> dict[str, Any]:
    return {"Put": {"TableName": TABLE, "Item": _key(pk) | attrs}}


def _transactions() -> list[list[dict[str, Any]]]:
    """Commits, cancellations (first, middle and last item failing), a validation error."""
    absent = {"ConditionExpression": "attribute_not_exists(pk)"}
    return [
        [_put("A", n={"N": "1"}), _put("B", h={"L": [{"M": {"s": {"S": "PENDING"}}}]})],
        [_put("C"), {"ConditionCheck": {"TableName": TABLE, "Key": _key("A"), **absent}}],
        [
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": _key("A"),
                    "UpdateExpression": "SET n = :v",
                    "ExpressionAttributeValues": {":v": {"N": "2"}},
                }
            },
            {
                "Put": {
                    "TableName": TABLE,
                    "Item": _key("B"),
                    **absent,
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
        ],
        [{"Put": {"TableName": TABLE, "Item": _key("A"), **absent}}, _put("D")],
        [_put("E"), {"Delete": {"TableName": TABLE, "Key": _key("E")}}],
        [
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": _key("B"),
                    "UpdateExpression": "SET h = list_append(h, :x)",
                    "ExpressionAttributeValues": {":x": {"L": [{"M": {"s": {"S": "QUEUED"}}}]}},
                }
            },
            {"Delete": {"TableName": TABLE, "Key": _key("A")}},
        ],
    ]


def _run_scenario() -> dict[str, Any]:
    """Run every transaction on a fresh emulator; return errors, table contents and stream records."""
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        outcomes: list[Any] = []
        for items in _transactions():
            try:
                client.transact_write_items(TransactItems=items)
                outcomes.append("ok")
            except ClientError as exc:
                reasons = exc.response.get("CancellationReasons", [])
                outcomes.append((exc.response["Error"]["Code"], [(r.get("Code"), r.get("Item")) for r in reasons]))
        items = sorted(client.scan(TableName=TABLE)["Items"], key=lambda i: i["pk"]["S"])
        arn = client.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
        streams = streams_client()
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
        stream = [(r["eventName"], r["dynamodb"]["Keys"], r["dynamodb"].get("NewImage")) for r in records]
        return {"outcomes": outcomes, "items": items, "stream": stream}


@pytest.fixture
def journal() -> Iterator[None]:
    """The transaction journal installed for one test."""
    emulator.install_transaction_journal()
    yield
    emulator.uninstall_transaction_journal()


def test_journaled_transactions_match_moto_exactly() -> None:
    """Commit, cancellation, rollback and stream records are identical with and without the journal."""
    original = _run_scenario()
    emulator.install_transaction_journal()
    try:
        journaled = _run_scenario()
    finally:
        emulator.uninstall_transaction_journal()

    assert journaled == original
    assert original["outcomes"][0] == "ok"
    assert original["outcomes"][1][0] == "TransactionCanceledException"
    assert [i["pk"]["S"] for i in original["items"]] == ["B"]


def test_journal_replaces_the_table_snapshot(journal: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the journal, a transaction deep-copies no table: the speed-up is really in force."""
    from moto.dynamodb.models.table import Table

    copied: list[str] = []
    real = emulator.copy.deepcopy

    def spy(obj: Any, memo: Any = None) -> Any:
        if isinstance(obj, Table):
            copied.append(obj.name)
        return real(obj, memo)

    monkeypatch.setattr(emulator.copy, "deepcopy", spy)
    _run_scenario()

    assert copied == []


def test_moto_internals_the_journal_relies_on_are_still_there() -> None:
    """Fails when moto moves what the journal patches: the copy module, the backend method, item storage."""
    from moto.dynamodb import models
    from moto.dynamodb.models.table import StreamShard, Table

    assert models.copy is emulator.copy or isinstance(models.copy, emulator._SnapshotFreeCopy)
    assert callable(models.DynamoDBBackend.transact_write_items)
    assert "original_table_state" in models.DynamoDBBackend.transact_write_items.__code__.co_varnames
    assert {"items", "stream_shard", "hash_key_attr", "range_key_attr"} <= set(
        vars(Table).get("__init__").__code__.co_names
    )
    assert "items" in StreamShard.__init__.__code__.co_names


ATTRIBUTE_VALUES: dict[str, Any] = {
    "s": {"S": "héllo"},
    "n": {"N": "42"},
    "t": {"BOOL": True},
    "z": {"NULL": True},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2"]},
    "m": {"M": {"deep": {"L": [{"S": "x"}, {"M": {"n": {"N": "1"}}}]}}},
    "b": {"B": base64.b64decode(base64.b64encode(b"\x00\x01"))},
}


def _read_back(install: Callable[[], None] | None) -> Any:
    if install is not None:
        install()
    try:
        with mock_aws():
            client = boto3.client("dynamodb")
            client.create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            client.put_item(TableName=TABLE, Item={"pk": {"S": "k"}, **ATTRIBUTE_VALUES})
            got = client.get_item(TableName=TABLE, Key={"pk": {"S": "k"}})["Item"]
            scanned = client.scan(TableName=TABLE)["Items"]
            return got, scanned
    finally:
        emulator.uninstall_fast_attribute_values()


def test_fast_attribute_values_serialise_like_moto() -> None:
    """Every AttributeValue kind reads back the same through the fast path and moto's own serializer."""
    slow = _read_back(None)
    fast = _read_back(emulator.install_fast_attribute_values)

    assert fast == slow
    assert slow[0]["m"] == ATTRIBUTE_VALUES["m"]


def test_module_list_cache_returns_what_moto_lists() -> None:
    """The cached module list is exactly moto's own listing."""
    from moto import backends

    listed = tuple(backends.list_of_moto_modules())
    emulator.install_module_list_cache()

    assert tuple(backends.list_of_moto_modules()) == listed
    assert "dynamodb" in listed


def _queue_attributes(install: bool) -> list[list[tuple[str, Any]]]:
    """Every queue's attributes, in order, for several queue kinds, with messages in flight."""
    if install:
        emulator.install_lazy_queue_attributes()
    try:
        with mock_aws():
            sqs = boto3.client("sqs")
            dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            redrive = f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": 3}}'
            urls = [
                sqs.create_queue(QueueName="plain")["QueueUrl"],
                sqs.create_queue(QueueName="q.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"],
                sqs.create_queue(
                    QueueName="d.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
                )["QueueUrl"],
                sqs.create_queue(QueueName="r", Attributes={"RedrivePolicy": redrive, "KmsMasterKeyId": "k"})[
                    "QueueUrl"
                ],
            ]
            for url in urls:
                fifo = {"MessageGroupId": "g", "MessageDeduplicationId": "d"} if url.endswith(".fifo") else {}
                sqs.send_message(QueueUrl=url, MessageBody="x", **fifo)
                sqs.send_message(QueueUrl=url, MessageBody="y", DelaySeconds=0, **fifo)
                sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)
            from moto.sqs.models import sqs_backends

            queues = sqs_backends["123456789012"]["us-east-1"].queues
            listed = [
                [(k, v) for k, v in queues[name].attributes.items() if "Timestamp" not in k]
                for name in ("plain", "q.fifo", "d.fifo", "r")
            ]
            listed.append(sorted(sqs.get_queue_attributes(QueueUrl=urls[3], AttributeNames=["All"])["Attributes"]))
            return listed
    finally:
        emulator.uninstall_lazy_queue_attributes()


def test_lazy_queue_attributes_match_moto() -> None:
    """The lazy mapping holds the same attributes, values and order as moto's, and GetQueueAttributes agrees."""
    assert _queue_attributes(install=True) == _queue_attributes(install=False)
