"""The public Outbox API without AWS: the items it builds, the one request it sends, the errors it raises."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from outbox import ConfigurationError, Outbox, OutboxMessage, TransactionCancelledError, ValidationError
from outbox.domain.errors import AwsError, ItemPart
from outbox.domain.message import IdKey

SECRET = "library-tests-id-secret-0123456789abcdef"


class TransactionClient:
    """Keeps every TransactWriteItems request; answers with ``error`` once when one is set."""

    def __init__(self) -> None:
        self.requests: list[list[dict[str, Any]]] = []
        self.error: dict[str, Any] | None = None

    def get_item(self, **_: Any) -> dict[str, Any]:
        return {"Item": {"buckets": {"N": "8"}}}  # the table keeps 8 buckets, as the outbox below

    def describe_table(self, *, TableName: str) -> dict[str, Any]:
        """A table that can hold the outbox: PK/SK strings, a NEW_IMAGE stream, the record index."""
        index = {
            "IndexName": "outbox-records",
            "KeySchema": [
                {"AttributeName": "outbox_pk", "KeyType": "HASH"},
                {"AttributeName": "outbox_sk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
        return {
            "Table": {
                "TableName": TableName,
                "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
                "AttributeDefinitions": [
                    {"AttributeName": "PK", "AttributeType": "S"},
                    {"AttributeName": "SK", "AttributeType": "S"},
                ],
                "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
                "GlobalSecondaryIndexes": [index],
            }
        }

    def transact_write_items(self, *, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:
        self.requests.append(TransactItems)
        if self.error is not None:
            error, self.error = self.error, None
            raise ClientError(error, "TransactWriteItems")
        return {}


def _cancelled(*codes: str) -> dict[str, Any]:
    reasons = [{"Code": code} | ({"Message": f"{code}!"} if code != "None" else {}) for code in codes]
    return {"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}, "CancellationReasons": reasons}


@pytest.fixture
def client() -> TransactionClient:
    """A client that records."""
    return TransactionClient()


@pytest.fixture
def outbox(client: TransactionClient) -> Outbox:
    """An outbox on a PK/SK table over the recording client."""
    return Outbox(
        "shop",
        client=client,  # type: ignore[arg-type]
        hash_key="PK",
        range_key="SK",
        buckets=8,
        id_secret=SECRET,
    )


def test_a_message_is_a_record_and_an_entry_under_the_tables_own_key_names(outbox: Outbox) -> None:
    """Two Puts: the PENDING record (never over an existing one) and the outbox entry holding the exact body."""
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    message = outbox.message({"order_id": "o-1"}, type="OrderPlaced", group_key="c-7", trace_id=traceparent)
    record, entry = (item["Put"] for item in message.transact_items)
    assert record["TableName"] == entry["TableName"] == "shop"
    assert record["Item"]["PK"] == {"S": f"MSG#{message.message_id}"}
    assert record["Item"]["SK"] == {"S": "MSG"}
    assert record["Item"]["status"] == {"S": "PENDING"}
    assert record["Item"]["type"] == {"S": "OrderPlaced"}
    assert json.loads(record["Item"]["payload"]["S"]) == {"order_id": "o-1"}
    assert record["ConditionExpression"] == entry["ConditionExpression"] == "attribute_not_exists(#pk)"
    assert record["ExpressionAttributeNames"] == entry["ExpressionAttributeNames"] == {"#pk": "PK"}
    assert record["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    assert entry["Item"]["PK"]["S"].startswith("OUTBOX#")
    assert entry["Item"]["SK"]["S"].endswith(f"#{message.message_id}")
    assert json.loads(entry["Item"]["envelope"]["S"]) == {"message_id": message.message_id, "schema_version": 3}
    trace = "Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=b7ad6b7169203331;Sampled=1"  # the traceparent, as X-Ray's
    assert record["Item"]["trace_id"] == entry["Item"]["trace_id"] == {"S": trace}
    assert (entry["Item"]["group_key"], record["Item"]["group_key"]) == ({"S": "c-7"}, {"S": "c-7"})
    assert "pk" not in record["Item"]
    assert "pk" not in entry["Item"]


def test_a_message_takes_the_current_lambda_trace_and_drops_a_malformed_one(
    outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26: without a trace given, the invocation's ``_X_AMZN_TRACE_ID``; a malformed trace never refuses one."""
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:0"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", header)
    assert outbox.message({"a": 1}, type="T").envelope.trace_id == header
    assert outbox.message({"a": 1}, type="T", trace_id="not a trace").envelope.trace_id is None
    monkeypatch.delenv("_X_AMZN_TRACE_ID")
    assert outbox.message({"a": 1}, type="T").envelope.trace_id is None


def test_a_group_keeps_to_one_bucket(outbox: Outbox) -> None:
    """Every message of one group lands in the same outbox partition, so its order can be kept."""
    buckets = {
        outbox.message({"n": n}, type="T", group_key="c-7").transact_items[1]["Put"]["Item"]["PK"]["S"]
        for n in range(20)
    }
    assert len(buckets) == 1


def test_an_idempotency_key_always_names_the_same_message(outbox: Outbox) -> None:
    """The same key gives the same message id (so a second write is refused); no key gives a new one."""
    assert outbox.message({}, type="T", idempotency_key="k").message_id == IdKey(SECRET).message_id("k", None)
    assert outbox.message({}, type="T").message_id != outbox.message({}, type="T").message_id
    with pytest.raises(ValidationError):
        outbox.message({}, type="T", idempotency_key="has space")


def test_transact_write_sends_one_request_with_the_callers_items_first(
    outbox: Outbox, client: TransactionClient
) -> None:
    """Exactly one TransactWriteItems: the caller's items in their order, then each message's two."""
    mine = [{"Put": {"TableName": "shop", "Item": {"PK": {"S": f"ORDER#{i}"}, "SK": {"S": "O"}}}} for i in range(3)]
    first, second = outbox.message({"n": 1}, type="T"), outbox.message({"n": 2}, type="T")
    outbox.transact_write(mine, first, second)
    (request,) = client.requests
    assert request == [*mine, *first.transact_items, *second.transact_items]


def test_a_cancellation_names_each_failed_item_in_the_callers_order(outbox: Outbox, client: TransactionClient) -> None:
    """Reasons map to the caller's items by position, then to each message's record and entry."""
    message = outbox.message({"n": 1}, type="T")
    client.error = _cancelled("None", "ConditionalCheckFailed", "ConditionalCheckFailed", "None")
    with pytest.raises(TransactionCancelledError) as caught:
        outbox.transact_write([{"Put": {}}, {"Put": {}}], message)
    error = caught.value
    assert [(r.index, r.part, r.message_id) for r in error.reasons] == [
        (1, ItemPart.CALLER, None),
        (2, ItemPart.RECORD, message.message_id),
    ]
    assert error.duplicate_message_ids == (message.message_id,)
    assert error.retryable is False
    assert error.code == "TRANSACTION_CANCELLED"


@pytest.mark.parametrize(
    ("codes", "retryable"),
    [
        (("TransactionConflict", "None", "None"), True),
        (("None", "ThrottlingError", "None"), True),
        (("TransactionConflict", "ConditionalCheckFailed", "None"), False),
        ((), False),
    ],
)
def test_only_passing_cancellations_are_retryable(
    outbox: Outbox, client: TransactionClient, codes: tuple[str, ...], retryable: bool
) -> None:
    """A conflict or throttle alone may pass on a second try; a failed condition never will."""
    client.error = _cancelled(*codes)
    with pytest.raises(TransactionCancelledError) as caught:
        outbox.transact_write([{"Put": {}}], outbox.message({}, type="T"))
    assert caught.value.retryable is retryable


def test_other_aws_errors_are_translated(outbox: Outbox, client: TransactionClient) -> None:
    """A fault that is not a cancellation is the library's own AwsError, never a ClientError."""
    client.error = {"Error": {"Code": "ValidationException", "Message": "bad"}}
    with pytest.raises(AwsError):
        outbox.transact_write([], outbox.message({}, type="T"))


def test_more_than_100_items_is_refused_before_any_call(outbox: Outbox, client: TransactionClient) -> None:
    """100 items is the limit: 98 of yours and one message fit, 99 do not, and nothing is sent."""
    outbox.transact_write([{"Put": {}}] * 98, outbox.message({}, type="T"))
    with pytest.raises(ValidationError, match="at most 100"):
        outbox.transact_write([{"Put": {}}] * 99, outbox.message({}, type="T"))
    assert len(client.requests) == 1


def test_an_invalid_message_is_refused_before_any_item_is_built(outbox: Outbox) -> None:
    """Payload, type and group key problems come back together as one ValidationError."""
    with pytest.raises(ValidationError) as caught:
        outbox.message({"x": float("inf")}, type="", group_key="")
    assert {e.field for e in caught.value.errors} == {"payload.x", "type", "group_key"}


def test_the_message_size_follows_the_configured_queue_limit(client: TransactionClient) -> None:
    """``max_message_bytes`` is the queue's limit: the same payload fits one outbox and not another."""
    keys = {"hash_key": "PK", "range_key": "SK", "buckets": 8}
    roomy = Outbox("shop", client=client, max_message_bytes=300_000, **keys)  # type: ignore[arg-type]
    tight = Outbox("shop", client=client, max_message_bytes=1_000, **keys)  # type: ignore[arg-type]
    assert isinstance(roomy.message({"x": "y" * 2_000}, type="T"), OutboxMessage)
    with pytest.raises(ValidationError, match="limit is 1000 bytes"):
        tight.message({"x": "y" * 2_000}, type="T")


def test_an_outbox_takes_the_region_from_aws_region_as_the_cli_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Outbox("t")` with only AWS_REGION set (as Lambda sets it) makes its client there; with none, one line."""
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    assert Outbox("t").store.client.meta.region_name == "eu-west-2"
    monkeypatch.delenv("AWS_REGION")
    with pytest.raises(ConfigurationError, match=r"^no AWS region: pass region=, or set AWS_REGION"):
        Outbox("t")


def test_library_errors_speak_the_librarys_language(outbox: Outbox, client: TransactionClient) -> None:
    """An `idempotency_key` argument is refused as such, in a message about a message, not an HTTP request."""
    with pytest.raises(ValidationError) as caught:
        outbox.message({"x": 1}, type="T", idempotency_key="has spaces")
    assert [e.field for e in caught.value.errors] == ["idempotency_key"]
    assert caught.value.detail == "invalid message: idempotency_key: must be 1 to 255 printable ASCII characters"
    without_secret = Outbox("shop", client=client, hash_key="PK", range_key="SK", buckets=8)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError) as missing:
        without_secret.message({"x": 1}, type="T", idempotency_key="k-1")
    assert missing.value.detail == (
        "an idempotency_key needs the id secret: give Outbox(id_secret=...), or set OUTBOX_ID_SECRET_ARN"
    )


def test_a_resource_client_or_table_is_refused_at_construction_in_one_line() -> None:
    """boto3's resource API converts values again: its client, a Table, refused before any message is made."""
    import boto3

    resource = boto3.resource("dynamodb", region_name="eu-west-1")
    cases: list[tuple[Any, Any, str]] = [
        ("orders", resource.meta.client, "a boto3 resource's client converts values"),
        ("orders", resource.Table("orders"), "a boto3 resource (dynamodb.Table) is not a client"),
        (resource.Table("orders"), None, "table_name must be the table's name (a str), not a dynamodb.Table"),
    ]
    for table_name, client, says in cases:
        with pytest.raises(ConfigurationError) as caught:
            Outbox(table_name, client=client)
        assert says in caught.value.detail
        assert "\n" not in caught.value.detail
    assert Outbox("orders", client=boto3.client("dynamodb", region_name="eu-west-1")).store.table_name == "orders"
