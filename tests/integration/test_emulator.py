"""The emulator's fixes behave exactly like moto as shipped, and fail loudly if moto's internals move.

Every fix is proven by ``differential``: one scenario on moto as shipped, then on moto with the fix,
and the two outcomes compared whole.
"""

from __future__ import annotations

import base64
import http.client
import json
import linecache
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from outbox.adapters.aws import streams_client
from outbox.local import emulator
from outbox.testing import stream_records

TABLE = "t"
T = TypeVar("T")
EVERY_FIX = tuple(install for install, _ in emulator._FIXES)


@contextmanager
def patched_moto(*installs: Callable[[], None]) -> Iterator[None]:
    """Install these fixes into moto; put moto back as shipped afterwards, whatever happens."""
    emulator.uninstall_all()
    try:
        for install in installs:
            install()
        yield
    finally:
        emulator.uninstall_all()


def differential(scenario: Callable[[], T], *installs: Callable[[], None]) -> T:
    """Run ``scenario`` on moto as shipped, then with ``installs`` (every fix when none are named).

    Asserts both outcomes are equal and returns moto's own, for the test to check it says something.
    """
    emulator.uninstall_all()
    shipped = scenario()
    with patched_moto(*(installs or EVERY_FIX)):
        fixed = scenario()
    assert fixed == shipped
    return shipped


def _key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "x"}}


def _put(pk: str, **attrs: Any) -> dict[str, Any]:
    return {"Put": {"TableName": TABLE, "Item": _key(pk) | attrs}}


def _create_table(
    client: Any, *, view: str | None = "NEW_AND_OLD_IMAGES", range_key: bool = True, index: bool = False
) -> Any:
    """The test table: pk (and sk) strings, on demand, a stream of ``view`` (None: none), a GSI on g."""
    keys = [("pk", "HASH"), ("sk", "RANGE")] if range_key else [("pk", "HASH")]
    attributes = [name for name, _ in keys] + (["g"] if index else [])
    request: dict[str, Any] = {
        "TableName": TABLE,
        "KeySchema": [{"AttributeName": name, "KeyType": kind} for name, kind in keys],
        "AttributeDefinitions": [{"AttributeName": name, "AttributeType": "S"} for name in attributes],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if view is not None:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
    if index:
        index_key = [{"AttributeName": "g", "KeyType": "HASH"}]
        request["GlobalSecondaryIndexes"] = [
            {"IndexName": "by-g", "KeySchema": index_key, "Projection": {"ProjectionType": "ALL"}}
        ]
    return client.create_table(**request)


def _records(client: Any, streams: Any) -> list[Any]:
    """Every record of the table's stream, from the trim horizon."""
    arn = client.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    return stream_records(streams, arn)


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


def _transaction_scenario() -> dict[str, Any]:
    """Run every transaction on a fresh moto; return errors, table contents and stream records."""
    with mock_aws():
        client = boto3.client("dynamodb")
        _create_table(client)
        outcomes: list[Any] = []
        for items in _transactions():
            try:
                client.transact_write_items(TransactItems=items)
                outcomes.append("ok")
            except ClientError as exc:
                reasons = exc.response.get("CancellationReasons", [])
                outcomes.append((exc.response["Error"]["Code"], [(r.get("Code"), r.get("Item")) for r in reasons]))
        items = sorted(client.scan(TableName=TABLE)["Items"], key=lambda i: i["pk"]["S"])
        records = _records(client, streams_client())
        stream = [(r["eventName"], r["dynamodb"]["Keys"], r["dynamodb"].get("NewImage")) for r in records]
        return {"outcomes": outcomes, "items": items, "stream": stream}


def test_journaled_transactions_match_moto_exactly() -> None:
    """Commit, cancellation, rollback and stream records are identical with and without the journal."""
    moto = differential(_transaction_scenario, emulator.install_transaction_journal)

    assert moto["outcomes"][0] == "ok"
    assert moto["outcomes"][1][0] == "TransactionCanceledException"
    assert [i["pk"]["S"] for i in moto["items"]] == ["B"]


def _tables_deep_copied(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run the transactions; the names of the tables deep-copied meanwhile (through moto's ``copy`` module)."""
    from moto.dynamodb.models.table import Table

    copied: list[str] = []
    real = emulator.copy.deepcopy

    def spy(obj: Any, memo: Any = None) -> Any:
        if isinstance(obj, Table):
            copied.append(obj.name)
        return real(obj, memo)

    monkeypatch.setattr(emulator.copy, "deepcopy", spy)
    _transaction_scenario()
    return copied


def test_journal_replaces_moto_table_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the journal, a transaction deep-copies no table: the fix is in force.

    As shipped, moto snapshots each touched table through its models' ``copy`` module: what the
    journal stands in for.
    """
    from moto.dynamodb import models

    emulator.uninstall_all()
    assert models.copy is emulator.copy
    assert _tables_deep_copied(monkeypatch) != []
    with patched_moto(emulator.install_transaction_journal):
        assert isinstance(models.copy, emulator._SnapshotFreeCopy)
        assert _tables_deep_copied(monkeypatch) == []


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


def _read_back() -> Any:
    """GetItem, Scan and the stream's records (images) of an item with every kind, and of a plain one."""
    with mock_aws():
        client = boto3.client("dynamodb")
        _create_table(client, range_key=False)
        client.put_item(TableName=TABLE, Item={"pk": {"S": "k"}, **ATTRIBUTE_VALUES})
        plain = {k: v for k, v in ATTRIBUTE_VALUES.items() if k != "b"}
        client.put_item(TableName=TABLE, Item={"pk": {"S": "p"}, **plain})
        client.put_item(TableName=TABLE, Item={"pk": {"S": "p"}, **plain, "s": {"S": "changed"}})
        got = client.get_item(TableName=TABLE, Key={"pk": {"S": "k"}})["Item"]
        scanned = client.scan(TableName=TABLE)["Items"]
        records = _records(client, streams_client())
        noise = {"ApproximateCreationDateTime", "SizeBytes"}  # a float time, and a length that holds it
        images = [(r["eventName"], {k: v for k, v in r["dynamodb"].items() if k not in noise}) for r in records]
        return got, scanned, images


def test_fast_attribute_values_serialise_like_moto() -> None:
    """Every AttributeValue kind reads back the same through the fast path and moto's own serializer."""
    moto = differential(_read_back, emulator.install_fast_attribute_values)

    assert moto[0]["m"] == ATTRIBUTE_VALUES["m"]
    assert [name for name, _ in moto[2]] == ["INSERT", "INSERT", "MODIFY"]
    assert moto[2][2][1]["OldImage"]["s"] == {"S": "héllo"}
    assert moto[2][0][1]["NewImage"]["b"] == ATTRIBUTE_VALUES["b"]  # binary: moto's own path


def test_module_list_cache_returns_what_moto_lists() -> None:
    """The cached module list is exactly moto's own listing, which moto's server asks for by module attribute."""
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    moto = differential(lambda: tuple(backends.list_of_moto_modules()), emulator.install_module_list_cache)

    assert "dynamodb" in moto
    assert "list_of_moto_modules" in DomainDispatcherApplication.get_backend_for_host.__code__.co_names


def _method_names() -> list[list[str]]:
    """Each handler class's names as moto lists them, asked twice, a caller changing its list in between."""
    from moto.core import responses
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
    from moto.sqs.responses import SQSResponse

    classes = (DynamoHandler, DynamoDBStreamsHandler, SQSResponse)
    first = [responses.method_names_from_class(clazz) for clazz in classes]
    responses.method_names_from_class(DynamoHandler).clear()
    return [*first, *(responses.method_names_from_class(clazz) for clazz in classes)]


def test_method_name_cache_lists_what_moto_lists() -> None:
    """Each handler class's names, as moto lists them; a fresh list per call, whatever a caller did to the last."""
    from moto.core import responses

    moto = differential(_method_names, emulator.install_method_name_cache)

    assert {"update_item", "transact_write_items", "query"} <= set(moto[0])
    assert moto[:3] == moto[3:]
    assert "method_names_from_class" in responses.BaseResponse.call_action.__code__.co_names


def _queue_attributes() -> list[list[tuple[str, Any]]]:
    """Every queue's attributes, in order, for several queue kinds, with messages in flight."""
    with mock_aws():
        sqs = boto3.client("sqs")
        dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": 3}}'
        urls = [
            sqs.create_queue(QueueName="plain")["QueueUrl"],
            sqs.create_queue(QueueName="q.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"],
            sqs.create_queue(QueueName="d.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})[
                "QueueUrl"
            ],
            sqs.create_queue(QueueName="r", Attributes={"RedrivePolicy": redrive, "KmsMasterKeyId": "k"})["QueueUrl"],
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


def test_lazy_queue_attributes_match_moto() -> None:
    """The lazy mapping holds the same attributes, values and order as moto's, and GetQueueAttributes agrees."""
    moto = differential(_queue_attributes, emulator.install_lazy_queue_attributes)

    assert ("RedrivePolicy", None) in moto[0]
    assert ("FifoQueue", "true") in moto[1]
    assert ("KmsMasterKeyId", "k") in moto[3]


def _update(pk: str, update: str, names: dict[str, str], values: dict[str, Any], **extra: Any) -> dict[str, Any]:
    request = {"TableName": TABLE, "Key": _key(pk), "UpdateExpression": update, "ExpressionAttributeNames": names}
    request |= {"ExpressionAttributeValues": values} if values else {}
    return request | {"ReturnValues": "UPDATED_OLD"} | extra


GUARD = {"ConditionExpression": "(attribute_exists (#0) AND #1 IN (:0, :1))"}
LIFECYCLE_NAMES = {"#0": "pk", "#1": "status", "#2": "updated_at", "#3": "history", "#4": "attempts"}


def _step(status: str, previous: tuple[str, str], *, add: bool = False, at: str = "t1") -> dict[str, Any]:
    """A transition as the store renders it: SET status, updated_at, history append; SET or ADD attempts."""
    values = {
        ":0": {"S": previous[0]},
        ":1": {"S": previous[1]},
        ":2": {"S": status},
        ":3": {"S": at},
        ":4": {"L": [{"M": {"status": {"S": status}, "at": {"S": at}}}]},
        ":5": {"N": "1" if add else "0"},
    }
    tail = " ADD #4 :5" if add else ", #4 = :5"
    update = f"SET #1 = :2, #2 = :3, #3 = list_append (#3, :4){tail}"
    return _update("A", update, LIFECYCLE_NAMES, values, ReturnValuesOnConditionCheckFailure="ALL_OLD", **GUARD)


STATUS = {"#0": "pk", "#1": "status"}
EQUALS = {"ConditionExpression": "(attribute_exists (#0) AND #1 = :0)"}


def S(text: str) -> dict[str, str]:
    """A string AttributeValue."""
    return {"S": text}


def _updates() -> list[dict[str, Any]]:
    """UpdateItems as the store renders them, between other shapes and failures (validation errors)."""
    relay_failure = _update(
        "A",
        "ADD #2 :1",
        {"#0": "pk", "#1": "status", "#2": "relay_attempts"},
        {":0": {"S": "PENDING"}, ":1": {"N": "1"}},
        ConditionExpression="(attribute_exists (#0) AND #1 = :0)",
    )
    return [
        relay_failure,
        relay_failure,
        _step("QUEUED", ("FAILED", "PENDING")),
        _step("QUEUED", ("FAILED", "PENDING"), at="t2"),  # condition fails: moto answers with ALL_OLD
        _step("PROCESSING", ("PROCESSING", "QUEUED"), add=True),
        _step("PROCESSING", ("PROCESSING", "QUEUED"), add=True, at="t3"),  # an unchanged status
        _update("MISSING", "SET #1 = :2", STATUS, {":0": S("x"), ":1": S("y"), ":2": S("z")}, **GUARD),
        _step("COMPLETED", ("PROCESSING", "QUEUED")) | {"ReturnValues": "NONE"},
        _update("A", "SET #1 = :2", STATUS, {":0": S("COMPLETED"), ":1": S("x"), ":2": S("y"), ":9": S("")}, **GUARD),
        _update("A", "SET #1 = :2", {"#0": "pk", "#1": "sk"}, {":0": S("y"), ":1": S("x"), ":2": S("y")}, **GUARD),
        _update("A", "REMOVE #1", {"#1": "reason"}, {}),
        _update("A", "SET #1 = list_append (#1, :0)", {"#1": "updated_at"}, {":0": {"L": []}}),
        _update("A", "SET n = :0", {}, {":0": {"N": "5"}}, ReturnValues="ALL_NEW"),
        _update("A", "ADD #2 :1", STATUS | {"#2": "updated_at"}, {":0": S("COMPLETED"), ":1": {"N": "1"}}, **EQUALS),
    ]  # fmt: skip


LEASE = {"#pk": "pk", "#status": "status", "#lease": "lease_until", "#at": "updated_at"}


def _lease(pk: str, to: str, now: str, **extra: Any) -> dict[str, Any]:
    """A hand-written claim: named placeholders, a condition with OR (its status, or an expired lease)."""
    values = {":to": S(to), ":from": S("PENDING"), ":now": S(now)}
    condition = "attribute_exists(#pk) AND (#status = :from OR #lease < :now)"
    update = "SET #status = :to, #at = :now, #lease = :now"
    return _update(pk, update, LEASE, values, ConditionExpression=condition, **extra)


def _expression_updates() -> list[dict[str, Any]]:
    """UpdateItems of many expression shapes, each expression sent more than once; some refused."""
    one, listed = {":one": {"N": "1"}}, {":v": S("v"), ":w": S("w")}
    remove = {"#m": "m", "#k": "k", "#l": "l", "#gone": "g"}
    return [
        *_updates(),
        _lease("B", "PROCESSING", "t5"),
        _lease("B", "QUEUED", "t4"),  # lease not expired, status not PENDING: the condition fails
        _lease("B", "QUEUED", "t9", ReturnValues="ALL_NEW"),  # lease expired
        _update("A", "SET #n = if_not_exists(#n, :one)", {"#n": "count"}, one),
        _update("A", "SET #n = #n + :one", {"#n": "count"}, one, ReturnValues="UPDATED_NEW"),
        _update("A", "SET #n = #n + :one", {"#n": "count"}, one, ReturnValues="ALL_OLD"),
        _update("A", "SET #l = :l", {"#l": "l"}, {":l": {"L": [S("a"), S("b"), S("c")]}}),
        _update("A", "SET #l[0] = :v, #m = :m", {"#l": "l", "#m": "m"}, {":v": S("v"), ":m": {"M": {"k": S("x")}}}),
        _update("A", "SET #m.#k = :w REMOVE #l[1], #gone", remove, {":w": S("w")}),
        _update("A", "ADD #ss :s", {"#ss": "ss"}, {":s": {"SS": ["x", "y"]}}),
        _update("A", "DELETE #ss :s", {"#ss": "ss"}, {":s": {"SS": ["x"]}}),
        _update("A", "ADD #ss :s", {"#ss": "ss"}, {":s": {"SS": ["z"]}}),
        _update("A", "SET #status = ", {"#status": "status"}, {}),  # refused: incomplete
        _update("A", "SET #status = ", {"#status": "status"}, {}),
        _update("A", "SET #a = :v, #a = :w", {"#a": "a"}, listed),  # refused: two paths overlap
        _update("A", "SET #a = :v, #a = :w", {"#a": "a"}, listed),
        _update("A", "FROB #a :v", {"#a": "a"}, {":v": S("v")}),  # refused: no such clause
    ]  # fmt: skip


def _expression_scenario() -> dict[str, Any]:
    """Every expression update, then the same shapes in transactions; answers, items and stream records."""
    with mock_aws():
        client = boto3.client("dynamodb")
        _create_table(client)
        for pk in ("A", "B", "L"):
            client.put_item(TableName=TABLE, Item=_key(pk) | {"status": S("PENDING"), "history": {"L": []}})
        outcomes: list[Any] = []
        for request in _expression_updates():
            try:
                response = client.update_item(**request)
                outcomes.append({k: v for k, v in response.items() if k != "ResponseMetadata"})
            except ClientError as exc:
                outcomes.append((exc.response["Error"], exc.response.get("Item")))
        for request in (_lease("L", "PROCESSING", "t1"), _lease("L", "QUEUED", "t0"), _lease("L", "COMPLETED", "t2")):
            update = {
                k: v for k, v in request.items() if k not in ("ReturnValues", "ReturnValuesOnConditionCheckFailure")
            }
            try:
                client.transact_write_items(TransactItems=[{"Update": update}, _put("C", n={"N": "1"})])
                outcomes.append("ok")
            except ClientError as exc:
                outcomes.append((exc.response["Error"]["Code"], exc.response.get("CancellationReasons")))
        items = sorted(client.scan(TableName=TABLE)["Items"], key=lambda i: i["pk"]["S"])
        noise = {"ApproximateCreationDateTime", "SizeBytes"}
        records = _records(client, streams_client())
        stream = [(r["eventName"], {k: v for k, v in r["dynamodb"].items() if k not in noise}) for r in records]
        return {"outcomes": outcomes, "items": items, "stream": stream}


def test_expression_caches_answer_like_moto() -> None:
    """Answers, refusals, items and stream records are moto's own, for every expression shape."""
    moto = differential(_expression_scenario, emulator.install_expression_caches)

    codes = [o[0].get("Code") if isinstance(o, tuple) and isinstance(o[0], dict) else None for o in moto["outcomes"]]
    assert codes[14:17] == [None, "ConditionalCheckFailedException", None]  # claimed, leased, lease expired
    assert moto["outcomes"][16]["Attributes"]["status"] == S("QUEUED")
    assert codes[26:31] == ["ValidationException"] * 5  # refused twice each, as moto refuses them
    assert moto["outcomes"][31:] == ["ok", moto["outcomes"][32], "ok"]
    assert moto["outcomes"][32][0] == "TransactionCanceledException"
    assert [i["status"] for i in moto["items"] if i["pk"] == S("L")] == [S("COMPLETED")]


def _tree(node: Any) -> Any:
    """A parse tree as plain data: each node's class, its attributes and its children, parent links checked."""
    from moto.dynamodb.parsing.ast_nodes import Node

    if not isinstance(node, Node):
        return node
    assert all(child.parent is node for child in node.children or [] if isinstance(child, Node))
    attributes = {k: v for k, v in vars(node).items() if k not in ("children", "parent")}
    return type(node), attributes, [_tree(child) for child in node.children or []]


def _nodes(node: Any) -> Iterator[Any]:
    """Every node of a parse tree."""
    from moto.dynamodb.parsing.ast_nodes import Node

    if isinstance(node, Node):
        yield node
        for child in node.children or []:
            yield from _nodes(child)


def test_update_expression_parsed_once_and_handed_out_as_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each string is parsed once, and every caller gets its own tree, equal to a fresh parse.

    The validators' copy of a tree equals ``deepcopy``'s.
    """
    import copy

    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from moto.dynamodb.parsing.tokens import ExpressionTokenizer

    expressions = {r["UpdateExpression"] for r in _expression_updates() if not r["UpdateExpression"].endswith("= ")}
    expressions -= {"FROB #a :v"}
    emulator.uninstall_all()
    fresh = {e: UpdateExpressionParser.make(e) for e in expressions}
    tokenized: list[str] = []
    real = ExpressionTokenizer.make_list
    monkeypatch.setattr(ExpressionTokenizer, "make_list", lambda e: tokenized.append(e) or real(e))
    with patched_moto(emulator.install_expression_caches):
        for _ in range(3):
            trees = {e: UpdateExpressionParser.make(e) for e in expressions}
            assert all(_tree(trees[e]) == _tree(fresh[e]) for e in expressions)
        again = {e: UpdateExpressionParser.make(e) for e in expressions}
        assert not any(set(map(id, _nodes(again[e]))) & set(map(id, _nodes(trees[e]))) for e in expressions)
        assert sorted(tokenized) == sorted(expressions)
        assert validators.deepcopy is emulator._copy_tree
        for tree in fresh.values():
            copied = validators.deepcopy(tree)
            assert _tree(copied) == _tree(copy.deepcopy(tree))
            assert not {id(node) for node in _nodes(copied)} & {id(node) for node in _nodes(tree)}


def _conditions() -> set[str]:
    """Every condition expression of the expression scenario, and a few more shapes."""
    sent = {r["ConditionExpression"] for r in _expression_updates() if "ConditionExpression" in r}
    return sent | {"attribute_not_exists(pk)", "size(#l) > :n AND begins_with(#s, :p)", "NOT (#a BETWEEN :x AND :y)"}


def _lexed(conditions: set[str]) -> dict[str, list[Any]]:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    return {c: list(ConditionExpressionParser(c, None, None)._lex_condition_expression()) for c in conditions}


def test_condition_lexing_cache_lexes_once_and_its_tokens_stay_as_moto_made_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lexer runs once per condition string; the kept tokens equal a fresh lexing, even after use."""
    from moto.dynamodb.comparisons import ConditionExpressionParser

    emulator.uninstall_all()
    fresh = _lexed(_conditions())
    lexed: list[str] = []
    real = ConditionExpressionParser._lex_condition_expression
    monkeypatch.setattr(ConditionExpressionParser, "_lex_condition_expression", lambda p: lexed.append(p) or real(p))
    with patched_moto(emulator.install_expression_caches):
        assert _lexed(_conditions()) == fresh
        _expression_scenario()
        assert _lexed(_conditions()) == fresh  # no caller changed a kept token
        assert all(token.children == [] for tokens in fresh.values() for token in tokens)
    assert len(lexed) == len(_conditions())


def test_node_types_are_computed_once_per_processor() -> None:
    """Each processor's node types are moto's own, computed on its first node and kept."""
    from moto.dynamodb.parsing import validators

    processors = [validators.ActionCountValidator(), validators.NoneExistingPathChecker()]
    emulator.uninstall_all()
    moto = [processor.nodes_to_be_processed() for processor in processors]
    with patched_moto(emulator.install_expression_caches):
        kept = [processor.nodes_to_be_processed() for processor in processors]
        assert [processor.nodes_to_be_processed() for processor in processors] == kept == moto
        assert all(processor.nodes_to_be_processed() is k for processor, k in zip(processors, kept, strict=True))


def test_moto_internals_the_expression_caches_rely_on_are_still_there() -> None:
    """Fails when moto moves what the caches replace, or when its lexing reads more than the string."""
    import copy

    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    emulator.uninstall_all()
    assert isinstance(vars(UpdateExpressionParser)["make"], classmethod)
    assert validators.deepcopy is copy.deepcopy
    assert "deepcopy" in validators.Validator.__init__.__code__.co_names
    assert "_lex_condition_expression" in ConditionExpressionParser.parse.__code__.co_names
    lexing = ConditionExpressionParser._lex_condition_expression, ConditionExpressionParser._lex_one_node
    read = {name for function in lexing for name in function.__code__.co_names}
    assert "condition_expression" in read
    assert not {"expression_attribute_names", "expression_attribute_values"} & read
    assert "nodes_to_be_processed" in DepthFirstTraverser.traverse_node_recursively.__code__.co_names


_VOLATILE = {
    "CreationDateTime",
    "LatestStreamLabel",
    "LatestStreamArn",
    "StreamArn",
    "StreamLabel",
    "ApproximateCreationDateTime",
    "SizeBytes",
    "eventID",
    "ShardIterator",
    "NextShardIterator",
    "TableId",
    "ResponseMetadata",
}


def _stable(value: Any) -> Any:
    """A response without what differs from run to run (times, ids, iterators, request metadata)."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


@contextmanager
def _serving(*, direct: bool = True) -> Iterator[str]:
    """An emulator server on a free loopback port, polled by a thread until the block ends; its URL.

    The thread that polls the server's sockets is the one that closes them (a socket closed under a
    poll fails in the server's thread, and pytest reports that in whichever test runs next).
    """
    server = emulator.make_emulator_server("127.0.0.1", 0, direct=direct)
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            server.asyncore.loop(timeout=0.05, map=server._map, count=1)
        server.task_dispatcher.shutdown()
        server.asyncore.close_all(server._map)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        stop.set()
        thread.join(timeout=10)


def _http_scenario() -> list[Any]:
    """DynamoDB and Streams calls over HTTP to an in-process server; every answer.

    With the fixes installed, it is the emulator's server (DynamoDB dispatched without Flask); without,
    moto's own Flask app as shipped.
    """
    with _serving(direct=bool(emulator._originals)) as url:
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()
        client = boto3.client("dynamodb", endpoint_url=url)
        streams = boto3.client("dynamodbstreams", endpoint_url=url)
        calls: list[Callable[[], Any]] = [
            lambda: _create_table(client, view="NEW_IMAGE"),
            *[(lambda items=items: client.transact_write_items(TransactItems=items)) for items in _transactions()],
            lambda: client.put_item(
                TableName=TABLE, Item=_key("A") | {"status": {"S": "PENDING"}, "history": {"L": []}}
            ),
            *[(lambda r=r: client.update_item(**r)) for r in _updates()],
            lambda: client.get_item(TableName=TABLE, Key=_key("A"), ConsistentRead=True),
            lambda: client.query(
                TableName=TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": S("A")}
            ),
            lambda: client.scan(TableName=TABLE),
            lambda: client.describe_table(TableName=TABLE),
            lambda: client.get_item(TableName="missing", Key=_key("A")),
            lambda: _records(client, streams),
        ]
        answers: list[Any] = []
        for call in calls:
            try:
                result = call()
                meta = result.get("ResponseMetadata", {}) if isinstance(result, dict) else {}
                headers = meta.get("HTTPHeaders", {})
                answers.append((_stable(result), meta.get("HTTPStatusCode"), headers.get("content-type")))
            except ClientError as exc:
                answers.append(("error", exc.response["Error"], exc.response["ResponseMetadata"]["HTTPStatusCode"]))
        return answers


def test_emulator_server_answers_like_moto_server() -> None:
    """Every fix and DynamoDB served without Flask: the same answers over HTTP as moto's server as shipped."""
    moto = differential(_http_scenario)

    assert moto[-1][0]  # stream records were read
    assert moto[0][1:] == (200, "application/x-amz-json-1.0")
    assert moto[-2][0] == "error"
    assert moto[-2][1]["Code"] == "ResourceNotFoundException"


def test_emulator_keeps_connections_alive() -> None:
    """Requests on one connection are served one after another over it (no reconnect per request)."""
    with _serving() as url:
        connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            "Authorization": "AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/dynamodb/aws4_request, Signature=x",
        }
        sockets = []
        for _ in range(3):
            connection.request("POST", "/", body="{}", headers=headers)
            response = connection.getresponse()
            assert response.status == 200
            assert "TableNames" in json.loads(response.read())
            sockets.append(connection.sock)
        assert sockets[0] is not None
        assert sockets == [sockets[0]] * 3
        connection.close()


def _queries() -> list[Any]:
    """Queries of every kind over a table of several partitions, every page."""
    with mock_aws():
        client = boto3.client("dynamodb")
        _create_table(client, view=None, index=True)
        for i in range(60):
            item = {"pk": S(f"P{i % 3}"), "sk": S(f"{i:03d}"), "g": S(f"G{i % 2}"), "n": {"N": str(i)}}
            client.put_item(TableName=TABLE, Item=item)
        values = {":p": S("P1"), ":a": S("010"), ":b": S("040")}
        ranged = {"KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b", "ExpressionAttributeValues": values}
        requests: list[dict[str, Any]] = [
            {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": S("P0")}},
            ranged,
            ranged | {"ScanIndexForward": False, "Limit": 4},
            ranged | {"Select": "COUNT"},
            ranged | {"FilterExpression": "n > :m", "ExpressionAttributeValues": values | {":m": {"N": "20"}}},
            {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": S("absent")}},
            {"IndexName": "by-g", "KeyConditionExpression": "g = :g", "ExpressionAttributeValues": {":g": S("G1")}},
        ]
        answers: list[Any] = []
        for request in requests:
            pages: list[Any] = []
            kwargs = {"TableName": TABLE, **request}
            while True:
                page = client.query(**kwargs)
                pages.append({k: v for k, v in page.items() if k != "ResponseMetadata"})
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            answers.append(pages)
        return answers


def test_partition_query_answers_like_moto() -> None:
    """Every page of every Query (ranges, order, limits, count, filter, index) is moto's own."""
    moto = differential(_queries, emulator.install_partition_query)

    assert [item["sk"]["S"] for item in moto[0][0]["Items"]][:3] == ["000", "003", "006"]
    assert len(moto[2]) > 1  # paginated by Limit
    assert moto[3][0]["Count"] == 11
    assert moto[5][0]["Items"] == []


def test_moto_internals_the_partition_query_relies_on_are_still_there() -> None:
    """Fails when moto renames the Query arguments the fix reads (it would silently see the whole table)."""
    import inspect

    from moto.dynamodb.models.table import Table

    emulator.uninstall_all()
    assert {"hash_key", "index_name"} <= set(inspect.signature(Table.query).parameters)


def test_install_all_applies_every_fix_and_uninstall_all_puts_moto_back() -> None:
    """The server and the benchmarks install one set, twice is once; tests put back moto's very own objects."""
    from moto import backends
    from moto.core import responses
    from moto.core.serialize import BaseJSONSerializer
    from moto.dynamodb import models
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from moto.sqs.models import Queue, SQSBackend
    from moto.sqs.responses import SQSResponse

    patched = [
        (models, "copy"),
        (models.DynamoDBBackend, "transact_write_items"),
        (BaseJSONSerializer, "_serialize_type_structure"),
        (BaseJSONSerializer, "_serialize_type_map"),
        (Table, "query"),
        (Table, "all_items"),
        (backends, "list_of_moto_modules"),
        (responses, "method_names_from_class"),
        (UpdateExpressionParser, "make"),
        (validators, "deepcopy"),
        (ConditionExpressionParser, "_lex_condition_expression"),
        (DepthFirstTraverser, "nodes_to_be_processed"),
        (Queue, "attributes"),
        (Queue, "pending_messages"),
        (Queue, "pending_message_groups"),
        (Queue, "add_message"),
        (Queue, "delete_message"),
        (SQSBackend, "receive_message"),
        (SQSResponse, "receive_message"),
        (SQSBackend, "get_queue_attributes"),
        (SQSBackend, "change_message_visibility"),
        (SQSBackend, "change_message_visibility_batch"),
        (SQSBackend, "send_message_batch"),
        (SQSBackend, "send_message"),
    ]
    emulator.uninstall_all()
    shipped = [vars(owner)[name] for owner, name in patched]
    try:
        emulator.install_all()
        replaced = [vars(owner)[name] for owner, name in patched]
        emulator.install_all()
        assert [vars(owner)[name] for owner, name in patched] == replaced
        assert all(emulator._patched(owner, name) for owner, name in patched)
        assert set(emulator._originals) == set(patched)
        assert not any(new is old for new, old in zip(replaced, shipped, strict=True))
    finally:
        emulator.uninstall_all()
    assert not emulator._originals
    assert all(vars(owner)[name] is old for (owner, name), old in zip(patched, shipped, strict=True))


def _group_of_two(sqs: Any) -> str:
    """A FIFO queue holding A, then B, of one group; its URL."""
    url: str = sqs.create_queue(QueueName="q.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    for body in ("A", "B"):
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g", MessageDeduplicationId=body)
    return url


def _fifo_group_after_both_came_back() -> list[list[str]]:
    """Two messages of one group received together, both sent back at once; then one receive at a time."""
    with mock_aws():
        sqs = boto3.client("sqs")
        url = _group_of_two(sqs)
        # Both handed out and visible again at once, as after a consumer's 1 s backoff has run out.
        first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
        seen = [[m["Body"] for m in first]]
        while later := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1).get("Messages", []):
            seen.append([m["Body"] for m in later])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=later[0]["ReceiptHandle"])
        return seen


def test_a_fifo_group_comes_back_in_order() -> None:
    """SQS hands a group's messages out in order once none is in flight; moto as shipped hands out the newer first."""
    emulator.uninstall_all()
    assert _fifo_group_after_both_came_back() == [["A", "B"], ["B"], ["A"]]  # moto's stale pending mark on B
    with patched_moto(emulator.install_fifo_groups_in_flight):
        assert _fifo_group_after_both_came_back() == [["A", "B"], ["A"], ["B"]]


def test_a_fifo_group_in_flight_is_held_back() -> None:
    """While A is in flight (received, invisible), B of its group is not handed out, with the fix as without."""

    def scenario() -> list[list[str]]:
        with mock_aws():
            sqs = boto3.client("sqs")
            url = _group_of_two(sqs)
            first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=30)["Messages"]
            held = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"])
            after = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            return [[m["Body"] for m in batch] for batch in (first, held, after)]

    assert differential(scenario, emulator.install_fifo_groups_in_flight) == [["A"], [], ["B"]]


def _fifo_group_during_a_long_poll(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """A and B of one group in flight, A due back 1 s before B; a long poll waiting while both come back.

    moto's clock is a fake one that each wait of the long poll moves on by 0.6 s.
    """
    from moto.sqs import models

    now = [1_000_000.0]
    monkeypatch.setattr(models, "unix_time", lambda: now[0])
    monkeypatch.setattr(models, "unix_time_millis", lambda: now[0] * 1000)
    monkeypatch.setattr(models.Queue, "wait_for_messages", lambda _queue, _timeout: now.__setitem__(0, now[0] + 0.6))
    with mock_aws():
        sqs = boto3.client("sqs")
        url = _group_of_two(sqs)
        first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=2)["Messages"]
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"], VisibilityTimeout=1)
        seen = [[m["Body"] for m in first]]
        for _ in range(2):
            batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=3).get("Messages", [])
            seen.append([m["Body"] for m in batch])
        return seen


def test_a_long_poll_never_hands_a_group_out_of_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Moto as shipped hands out B first; the emulator holds the group for that poll and then hands out A."""
    emulator.uninstall_all()
    with monkeypatch.context() as patch:
        assert _fifo_group_during_a_long_poll(patch) == [["A", "B"], ["B"], []]  # and B in flight holds A back
    with patched_moto(emulator.install_fifo_groups_in_flight), monkeypatch.context() as patch:
        assert _fifo_group_during_a_long_poll(patch) == [["A", "B"], [], ["A"]]


def _late_retry_delay(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """C of group h, then A and B of group g, received together; all visible again; A's retry delay arrives late.

    Between, a receive hands out C (it starts by noting the groups in flight: none). What the
    late ChangeMessageVisibility and ChangeMessageVisibilityBatch answer, and what the next
    receive hands out. moto's clock is a fake one.
    """
    from moto.sqs import models

    now = [1_000_000.0]
    monkeypatch.setattr(models, "unix_time", lambda: now[0])
    monkeypatch.setattr(models, "unix_time_millis", lambda: now[0] * 1000)
    with mock_aws():
        sqs = boto3.client("sqs")
        url: str = sqs.create_queue(QueueName="q.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        for body, group in (("C", "h"), ("A", "g"), ("B", "g")):
            sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=body)
        first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=2)["Messages"]
        now[0] += 3  # the invocation outlived the visibility timeout: its copies are visible again
        other = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=other[0]["ReceiptHandle"])
        handle = first[1]["ReceiptHandle"]  # A's
        try:
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=30)
            answer = "changed"
        except ClientError as exc:
            answer = exc.response["Error"]["Code"].removeprefix("AWS.SimpleQueueService.")  # the query protocol's name
        entries = [{"Id": "a", "ReceiptHandle": handle, "VisibilityTimeout": 30}]
        batch = sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
        failed = [f["Code"] for f in batch.get("Failed", [])]
        after = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [[m["Body"] for m in first + other], answer, failed, [m["Body"] for m in after]]


def test_a_visibility_change_for_a_copy_visible_again_is_refused_and_its_group_stays_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQS refuses the late change (MessageNotInflight): A stays first; moto hid A, not in flight, and handed out B."""
    with patched_moto(emulator.install_fifo_groups_in_flight), monkeypatch.context() as patch:
        # A hidden but not in flight: B is handed out ahead of it, the group out of order.
        assert _late_retry_delay(patch) == [["C", "A", "B", "C"], "changed", [], ["B"]]
    with (
        patched_moto(emulator.install_fifo_groups_in_flight, emulator.install_visibility_in_flight_only),
        monkeypatch.context() as patch,
    ):
        refused = emulator.NOT_IN_FLIGHT
        assert _late_retry_delay(patch) == [["C", "A", "B", "C"], refused, [refused], ["A", "B"]]


def _send_during_a_delete() -> list[str]:
    """A send made by another thread while a delete is under way, once the delete has read the queue's list.

    The deleting thread's tracer starts the sender at the delete's next line once the list was
    read (moto: the rebuilt list made, about to replace the old one; the emulator: the copies to
    delete found) and gives it up to 1 s, then lets the delete finish. What the queue holds after.
    """
    from moto.sqs.models import Message, sqs_backends

    with mock_aws():
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="A")
        handle = sqs.receive_message(QueueUrl=url)["Messages"][0]["ReceiptHandle"]
        queue = sqs_backends["123456789012"]["us-east-1"].get_queue("q")
        sender = threading.Thread(target=queue.add_message, args=(Message("B-id", "B"),))

        def tracer(frame: Any, event: str, _: Any) -> Any:
            if frame.f_code.co_name != "delete_message":
                return None

            def line(frame: Any, event: str, _: Any) -> Any:
                read = "new_messages" in frame.f_locals and "self._messages = new_messages" in linecache.getline(
                    frame.f_code.co_filename, frame.f_lineno
                )
                if (
                    event == "line"
                    and not sender.is_alive()
                    and sender.ident is None
                    and (read or "doomed" in frame.f_locals)
                ):
                    sender.start()
                    sender.join(timeout=1.0)  # the emulator's delete holds the lock: the send waits for it
                return line

            return line

        sys.settrace(tracer)
        try:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
        finally:
            sys.settrace(None)
        sender.join()
        return [m.body for m in queue._messages]


def test_a_send_beside_a_delete_is_kept() -> None:
    """A copy sent while moto's delete rebuilt the queue's list is gone; the emulator deletes in place, locked."""
    emulator.uninstall_all()
    assert _send_during_a_delete() == []  # B was answered "sent" and is gone
    with patched_moto(emulator.install_locked_deletes):
        assert _send_during_a_delete() == ["B"]


def test_a_visibility_change_for_a_copy_in_flight_is_moto_s_own() -> None:
    """A retry delay for a copy still in flight holds its group back, with the fix as without; one and batch alike."""

    def scenario() -> list[Any]:
        with mock_aws():
            sqs = boto3.client("sqs")
            url = _group_of_two(sqs)
            first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=30)["Messages"]
            handle = first[0]["ReceiptHandle"]
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=60)
            entries = [
                {"Id": "a", "ReceiptHandle": handle, "VisibilityTimeout": 0},
                {"Id": "x", "ReceiptHandle": "x", "VisibilityTimeout": 0},
            ]
            batch = sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
            after = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            outcome = [[s["Id"] for s in batch.get("Successful", [])], [f["Code"] for f in batch.get("Failed", [])]]
            return [*outcome, [m["Body"] for m in after]]

    assert differential(scenario, emulator.install_visibility_in_flight_only) == [
        ["a"],
        ["ReceiptHandleIsInvalid"],
        ["A", "B"],
    ]


def _fifo_sends_of_one_dedup_id(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    """Sends of one deduplication id on a fake clock: each send's answer, and what a receive then finds.

    The first copy is received and deleted; the same id is sent again 60 s after the first send
    (twice, once as a batch), then 301 s after it; and a retry of a send whose copy is still queued.
    """
    from moto.sqs import models

    now = [1_000_000.0]
    monkeypatch.setattr(models, "unix_time", lambda: now[0])
    monkeypatch.setattr(models, "unix_time_millis", lambda: now[0] * 1000)
    seen: list[tuple[str, list[str]]] = []
    with mock_aws():
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="q.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        ids = {"MessageGroupId": "g", "MessageDeduplicationId": "d"}

        def send(body: str, *, batch: bool = False) -> None:
            if batch:
                answer = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "0", "MessageBody": body, **ids}])
                outcome = "successful" if [e["Id"] for e in answer["Successful"]] == ["0"] else "failed"
            else:
                outcome = "successful" if sqs.send_message(QueueUrl=url, MessageBody=body, **ids)["MessageId"] else ""
            copies = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            for copy in copies:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=copy["ReceiptHandle"])
            seen.append((outcome, [c["Body"] for c in copies]))

        send("first")
        now[0] += 60
        send("again, the copy deleted")
        send("again, as a batch", batch=True)
        now[0] += 241  # 301 s after the first send
        send("after the window")
        sqs.send_message(QueueUrl=url, MessageBody="queued", MessageGroupId="g", MessageDeduplicationId="e")
        now[0] += 1
        send_retry = sqs.send_message(
            QueueUrl=url, MessageBody="retried", MessageGroupId="g", MessageDeduplicationId="e"
        )
        copies = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        seen.append(("successful" if send_retry["MessageId"] else "", [c["Body"] for c in copies]))
    return seen


def test_a_fifo_dedup_id_is_kept_for_five_minutes_after_its_copy_is_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQS's rule: within 5 minutes of the accepted send, successful and not enqueued (copy deleted or not).

    After 5 minutes it is enqueued. moto as shipped forgets the id with its copy.
    """
    emulator.uninstall_all()
    with monkeypatch.context() as patch:
        shipped = _fifo_sends_of_one_dedup_id(patch)
    with patched_moto(emulator.install_fifo_dedup_window), monkeypatch.context() as patch:
        fixed = _fifo_sends_of_one_dedup_id(patch)

    assert shipped[1:3] == [("successful", ["again, the copy deleted"]), ("successful", ["again, as a batch"])]
    assert fixed == [
        ("successful", ["first"]),
        ("successful", []),  # within the window: swallowed
        ("successful", []),
        ("successful", ["after the window"]),
        ("successful", ["queued"]),  # a retried send while the copy is queued: deduplicated, by moto too
    ]
    assert [shipped[0], shipped[3], shipped[4]] == [fixed[0], fixed[3], fixed[4]]


def test_a_copy_moved_to_a_fifo_dead_letter_queue_is_not_deduplicated_there() -> None:
    """Only sends meet the window: a copy moved to the dead-letter queue is handled as moto as shipped handles it."""

    def scenario() -> list[str]:
        with mock_aws():
            sqs = boto3.client("sqs")
            dlq = sqs.create_queue(QueueName="d.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})
            url = sqs.create_queue(QueueName="q.fifo", Attributes={"FifoQueue": "true", "RedrivePolicy": redrive})[
                "QueueUrl"
            ]
            sqs.send_message(
                QueueUrl=dlq, MessageBody="sent to the DLQ", MessageGroupId="g", MessageDeduplicationId="d"
            )
            sqs.send_message(QueueUrl=url, MessageBody="moved", MessageGroupId="g", MessageDeduplicationId="d")
            sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)
            sqs.receive_message(QueueUrl=url)  # its second receive moves it
            return sorted(m["Body"] for m in sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"])

    # moto dedupes the moved copy against the one queued there: its own rule, with the fix as without.
    assert differential(scenario, emulator.install_fifo_dedup_window) == ["sent to the DLQ"]


def _dead_letters(*attribute_names: str) -> list[dict[str, Any]]:
    """A copy sent to the dead-letter queue by hand, and one SQS's redrive moved there: both as received."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        dlq = sqs.create_queue(QueueName="d")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})
        url = sqs.create_queue(QueueName="q", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
        sqs.send_message(QueueUrl=dlq, MessageBody="sent by hand")
        sqs.send_message(QueueUrl=url, MessageBody="moved")
        sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)
        assert "Messages" not in sqs.receive_message(QueueUrl=url)  # its second receive moves it
        received = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, AttributeNames=list(attribute_names))
        copies = sorted(received["Messages"], key=lambda m: m["Body"])
        return [{"Body": m["Body"], "Attributes": m.get("Attributes", {})} for m in copies]


def test_a_copy_moved_to_the_dead_letter_queue_names_its_source_queue() -> None:
    """As SQS: DeadLetterQueueSourceArn on the moved copy only (All, or asked by name); the rest as moto has it."""
    emulator.uninstall_all()
    shipped = _dead_letters("All")
    assert all("DeadLetterQueueSourceArn" not in copy["Attributes"] for copy in shipped)  # the gap fixed
    with patched_moto(emulator.install_dead_letter_source_arn):
        fixed = _dead_letters("All")
        by_name = _dead_letters("DeadLetterQueueSourceArn")
        not_asked = _dead_letters("SentTimestamp")
    with patched_moto(*EVERY_FIX):  # as the emulator server runs it
        every = _dead_letters("All")
    assert ["DeadLetterQueueSourceArn" in c["Attributes"] for c in every] == [True, False]
    moved, by_hand = fixed
    assert (moved["Body"], by_hand["Body"]) == ("moved", "sent by hand")
    assert moved["Attributes"]["DeadLetterQueueSourceArn"] == "arn:aws:sqs:us-east-1:123456789012:q"
    assert "DeadLetterQueueSourceArn" not in by_hand["Attributes"]
    # Everything else is moto's own (its timestamps aside, which differ between the runs).
    ignored = {"DeadLetterQueueSourceArn", "SentTimestamp", "ApproximateFirstReceiveTimestamp"}
    assert [{k: v for k, v in c["Attributes"].items() if k not in ignored} for c in fixed] == [
        {k: v for k, v in c["Attributes"].items() if k not in ignored} for c in shipped
    ]
    assert [c["Attributes"] for c in by_name] == [
        {"DeadLetterQueueSourceArn": moved["Attributes"]["DeadLetterQueueSourceArn"]},
        {},
    ]
    assert all("DeadLetterQueueSourceArn" not in c["Attributes"] for c in not_asked)


def _redrive_allow_policies() -> list[dict[str, str]]:
    """A dead-letter queue created with a RedriveAllowPolicy: its attributes read three ways."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        allow = json.dumps(
            {"redrivePermission": "byQueue", "sourceQueueArns": ["arn:aws:sqs:us-east-1:123456789012:q"]}
        )
        url = sqs.create_queue(QueueName="d", Attributes={"RedriveAllowPolicy": allow})["QueueUrl"]
        plain = sqs.create_queue(QueueName="p")["QueueUrl"]
        answers = [sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]]
        answers.append(sqs.get_queue_attributes(QueueUrl=plain, AttributeNames=["All"])["Attributes"])
        try:
            answers.append(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedriveAllowPolicy"])["Attributes"])
        except ClientError as exc:
            answers.append({"error": exc.response["Error"]["Code"]})
        ignored = {"CreatedTimestamp", "LastModifiedTimestamp", "QueueArn"}
        return [{k: v for k, v in answer.items() if k not in ignored} for answer in answers]


def test_a_queues_redrive_allow_policy_reads_back_as_set() -> None:
    """As SQS: All and the name return the policy set; a queue without one, and every other attribute, as moto."""
    emulator.uninstall_all()
    shipped = _redrive_allow_policies()
    assert "RedriveAllowPolicy" not in shipped[0]  # the gap fixed
    assert shipped[2] == {"error": "InvalidAttributeName"}
    with patched_moto(emulator.install_redrive_allow_policy):
        fixed = _redrive_allow_policies()
    with patched_moto(*EVERY_FIX):  # as the emulator server runs it: with the lazy queue attributes too
        assert _redrive_allow_policies() == fixed
    policy = json.loads(fixed[0].pop("RedriveAllowPolicy"))
    assert policy == {"redrivePermission": "byQueue", "sourceQueueArns": ["arn:aws:sqs:us-east-1:123456789012:q"]}
    assert fixed[0] == shipped[0]
    assert fixed[1] == shipped[1]  # no policy: nothing added
    assert json.loads(fixed[2]["RedriveAllowPolicy"]) == policy


TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def _traced_sends() -> list[dict[str, str | None]]:
    """A SendMessage and a batch of two (one traced): each copy's AWSTraceHeader, as a receive of All sees it."""
    with mock_aws():
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        trace = {"AWSTraceHeader": {"DataType": "String", "StringValue": TRACE}}
        sqs.send_message(QueueUrl=url, MessageBody="single", MessageSystemAttributes=trace)
        entries: list[Any] = [
            {"Id": "0", "MessageBody": "batched", "MessageSystemAttributes": trace},
            {"Id": "1", "MessageBody": "untraced"},
        ]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
        copies = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"])
        return sorted(
            ({"body": m["Body"], "trace": m["Attributes"].get("AWSTraceHeader")} for m in copies["Messages"]),
            key=lambda copy: str(copy["body"]),
        )


def test_a_batch_entrys_trace_header_is_kept_as_a_single_sends_is() -> None:
    """SQS keeps AWSTraceHeader on every send; moto as shipped drops a batch entry's, the emulator keeps it."""
    emulator.uninstall_all()
    single = {"body": "single", "trace": TRACE}
    assert _traced_sends() == [{"body": "batched", "trace": None}, single, {"body": "untraced", "trace": None}]
    with patched_moto(emulator.install_batch_system_attributes):
        fixed = _traced_sends()
    assert fixed == [{"body": "batched", "trace": TRACE}, single, {"body": "untraced", "trace": None}]
