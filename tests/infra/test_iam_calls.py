"""Each role allows every AWS call its handler really makes: recorded from the Lambda entry points on moto.

A call is allowed when a statement of the role's policy names its action and, for DynamoDB, the
table or the index it reads, and every condition of that statement holds for it (the partition
key values of the items it touches, for ``dynamodb:LeadingKeys``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase
from typing import Any

import botocore.session
import pytest
from moto import mock_aws

import worker.api
import worker.consumer
import worker.dead_letter
import worker.handler
import worker.sweeper
from outbox import Outbox
from outbox.adapters import aws
from outbox.adapters.models import RECORD_INDEX
from outbox.adapters.sweep import META_PK
from outbox.bootstrap import DLQ_MAX_RECEIVE_COUNT
from outbox.domain.keys import utc_now
from outbox.local.events import to_sqs_record
from outbox.settings import Settings
from tests.events import http_event
from tests.infra.terraform import MODULE, load
from tests.integration.conftest import build_stack, dead_letter_sources, sqs_event

# Batch and transaction operations are authorised by the actions of what they contain.
_BATCHES = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage"}
_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
HASH_KEY = "pk"  # build_stack's table
FACTORIES = (
    worker.api.default_api,
    worker.handler.default_worker,
    worker.consumer.default_consumer,
    worker.sweeper.default_sweeper,
    worker.dead_letter.default_dead_letters,
)


@dataclass(frozen=True)
class Call:
    """One IAM action a handler needed: on what, and for DynamoDB items, their partition key values."""

    action: str
    resource: str = ""  # "table" or "index:<name>" for DynamoDB, "secret:id" for the id secret; others by action
    leading_keys: tuple[str, ...] | None = None  # None: not an item-level call (or not known)


class CallRecorder:
    """The calls made by clients the handlers create, by the handler running."""

    def __init__(self) -> None:
        self.current = "harness"  # the test's own setup and reads, not a handler's
        self.calls: dict[str, set[Call]] = {}
        self.id_secret_arn = ""  # the module's secret (aws_secretsmanager_secret.id), as created on moto

    @property
    def actions(self) -> dict[str, set[str]]:
        return {role: {call.action for call in calls} for role, calls in self.calls.items()}

    def session(self, region: str | None) -> botocore.session.Session:
        session = botocore.session.get_session()
        if region is not None:
            session.set_config_variable("region", region)
        session.register("before-parameter-build.*.*", self._record)
        return session

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if params.get("TableName") == "probe":  # Outbox's check of the client it is given: sends nothing
            return
        prefix = model.service_model.signing_name
        calls: set[Call]
        if model.name == "TransactWriteItems":
            calls = {
                Call(f"dynamodb:{_TRANSACT[kind]}", "table", _keys([body.get("Key") or body.get("Item")]))
                for item in params["TransactItems"]
                for kind, body in item.items()
            }
        elif prefix == "secretsmanager":  # the module's one secret, or another
            secret = "secret:id" if params.get("SecretId") == self.id_secret_arn else "secret:other"
            calls = {Call(f"secretsmanager:{model.name}", secret)}
        elif prefix != "dynamodb":
            calls = {Call(f"{prefix}:{_BATCHES.get(model.name, model.name)}")}
        elif model.name == "Query":
            index = params.get("IndexName")
            calls = {Call("dynamodb:Query", f"index:{index}" if index else "table")}
        elif model.name == "BatchGetItem":
            calls = {
                Call("dynamodb:BatchGetItem", "table", _keys(request["Keys"]))
                for request in params["RequestItems"].values()
            }
        else:
            calls = {Call(f"dynamodb:{model.name}", "table", _keys([params.get("Key") or params.get("Item")]))}
        self.calls.setdefault(self.current, set()).update(calls)


def _keys(items: list[dict[str, Any] | None]) -> tuple[str, ...] | None:
    """The partition key values of the items a request names (None if any is unknown)."""
    values = [item.get(HASH_KEY, {}).get("S") if item else None for item in items]
    return None if None in values else tuple(sorted(str(value) for value in values))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[CallRecorder]:
    """Every client the handlers build records its calls."""
    recorder = CallRecorder()
    monkeypatch.setattr(aws, "_session", recorder.session)
    for factory in FACTORIES:
        factory.cache_clear()
    yield recorder
    for factory in FACTORIES:
        factory.cache_clear()


def statements(role: str) -> list[dict[str, Any]]:
    """The statements of a role's policy document (``caller``: the library user's policy), as parsed."""
    module = load(MODULE)
    document = module.data["aws_iam_policy_document"]["caller"] if role == "caller" else module.function_policy(role)
    found: list[dict[str, Any]] = document["statement"]
    return found


def _dynamodb_resource(expression: str) -> str | None:
    """What a policy resource names, in the terms of Call.resource."""
    locals_ = load(MODULE).locals
    if expression == "${local.table_arn}":
        return "table"
    if expression == "${local.table_arn}/index/${local.record_index.name}":
        return f"index:{locals_['record_index']['name']}"
    if expression == "${aws_secretsmanager_secret.id.arn}":
        return "secret:id"
    return None


def _condition_holds(condition: dict[str, Any], call: Call) -> bool:
    assert condition["variable"] == "dynamodb:LeadingKeys", f"teach this test the condition {condition}"
    if call.leading_keys is None:
        return False
    patterns = [_leading_key(value) for value in condition["values"]]
    if condition["test"] == "ForAllValues:StringEquals":
        return all(key in patterns for key in call.leading_keys)
    assert condition["test"] == "ForAllValues:StringLike", f"teach this test the operator {condition['test']}"
    return all(any(fnmatchcase(key, pattern) for pattern in patterns) for key in call.leading_keys)


def _leading_key(expression: str) -> str:
    """A LeadingKeys value: a literal, or one of iam.tf's ``local.leading_keys``."""
    match = re.fullmatch(r"\$\{local\.leading_keys\.(\w+)\}", expression)
    if match is None:
        return expression
    value: str = load(MODULE).locals["leading_keys"][match.group(1)]
    return value


def allows(role: str, call: Call) -> bool:
    """Whether some statement of the role allows this call: action, DynamoDB resource, conditions."""
    for statement in statements(role):
        if call.action not in statement["actions"]:
            continue
        if call.resource and call.resource not in {_dynamodb_resource(r) for r in statement["resources"]}:
            continue
        if all(_condition_holds(condition, call) for condition in statement.get("condition", [])):
            return True
    return False


class _Context:
    """What the sweeper reads of a Lambda context."""

    aws_request_id = "sweep-1"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 300_000


def test_each_role_allows_the_calls_its_handler_makes(recorder: CallRecorder, monkeypatch: pytest.MonkeyPatch) -> None:
    """API, worker, consumer, sweeper and dead-letter run from their Lambda entry points; each call is allowed."""
    with mock_aws(), dead_letter_sources():
        stack = build_stack()
        monkeypatch.setenv("OUTBOX_TABLE_NAME", stack.resources.table_name)
        monkeypatch.setenv("OUTBOX_QUEUE_URL", stack.resources.queue_url)
        monkeypatch.setenv("OUTBOX_BUCKETS", "4")  # what build_stack's bootstrap stored
        monkeypatch.setenv("OUTBOX_METRICS", "off")
        secrets = botocore.session.get_session().create_client("secretsmanager", region_name="us-east-1")
        recorder.id_secret_arn = secrets.create_secret(Name="outbox-id-secret-x", SecretString="v" * 64)["ARN"]
        monkeypatch.setenv("OUTBOX_ID_SECRET_ARN", recorder.id_secret_arn)

        # A table that keeps no bucket count yet: the API's first accept stores it.
        stack.dynamodb.delete_item(
            TableName=stack.resources.table_name, Key={"pk": {"S": META_PK}, "sk": {"S": "CONFIG"}}
        )
        recorder.current = "api"
        accepted = worker.api.handler(http_event("POST", "/messages", body=BODY, headers=HEADERS), None)
        assert accepted["statusCode"] == 202
        message_id = json.loads(accepted["body"])["message_id"]
        assert worker.api.handler(http_event("GET", f"/messages/{message_id}"), None)["statusCode"] == 200
        # A rotation of the id secret: a function started after it checks the key's other id as it accepts.
        recorder.current = "harness"
        secrets.put_secret_value(SecretId=recorder.id_secret_arn, SecretString="w" * 64)
        worker.api.default_api.cache_clear()
        recorder.current = "api"
        retried = worker.api.handler(http_event("POST", "/messages", body=BODY, headers=HEADERS), None)
        assert (retried["statusCode"], json.loads(retried["body"])["message_id"]) == (200, message_id)

        recorder.current = "harness"
        event = stack.stream_event()
        recorder.current = "worker"
        assert worker.handler.handler(event, None) == {"batchItemFailures": []}

        # A group whose older message the stream lost: the worker finds it in the index and sends it first.
        recorder.current = "harness"
        library = Outbox(stack.resources.table_name, client=stack.dynamodb, buckets=4)
        for n in range(2):
            library.transact_write([], library.message({"n": n}, type="T", group_key="g"))
            event = stack.stream_event()  # the first one's record is lost to the worker
        recorder.current = "worker"
        assert worker.handler.handler(event, None) == {"batchItemFailures": []}

        recorder.current = "harness"
        messages = stack.receive_all()
        recorder.current = "consumer"
        assert worker.consumer.handler(sqs_event(messages), None) == {"batchItemFailures": []}

        # A copy the consumer sends back: it finds the queue's URL and changes the copy's visibility.
        recorder.current = "harness"
        stack.sqs.send_message(QueueUrl=stack.resources.queue_url, MessageBody="not an envelope")
        (unreadable,) = stack.receive_all()
        recorder.current = "consumer"
        retried = worker.consumer.handler(sqs_event([unreadable]), None)
        assert retried == {"batchItemFailures": [{"itemIdentifier": unreadable["MessageId"]}]}

        # A message the stream never relayed: the sweeper finds it through the index and relays it.
        recorder.current = "harness"
        stuck = worker.api.handler(
            http_event("POST", "/messages", body=BODY, headers={**HEADERS, "idempotency-key": "x"}), None
        )
        stuck_id = json.loads(stuck["body"])["message_id"]
        recorder.current = "sweeper"
        sweeper = worker.sweeper.default_sweeper()  # its cold start reads the table's bucket count
        sweeper.clock = lambda: utc_now() + timedelta(minutes=10)  # the message is past the minimum age
        report = worker.sweeper.handler({}, _Context())
        assert (report["relayed"], report["failed"]) == (1, 0), report
        recorder.current = "harness"
        assert stack.store.get(stuck_id).status.value == "QUEUED"

        # Its copy reaches the dead-letter queue: SQS moves it after maxReceiveCount receives.
        for _ in range(DLQ_MAX_RECEIVE_COUNT):
            assert stack.sqs.receive_message(QueueUrl=stack.resources.queue_url, VisibilityTimeout=0).get("Messages")
        assert not stack.sqs.receive_message(QueueUrl=stack.resources.queue_url).get("Messages")
        dlq_arn = stack.sqs.get_queue_attributes(QueueUrl=stack.resources.dlq_url, AttributeNames=["QueueArn"])
        dead = [to_sqs_record(m, dlq_arn["Attributes"]["QueueArn"]) for m in stack.receive_all(stack.resources.dlq_url)]
        assert [record["body"] for record in dead if stuck_id in record["body"]]  # not only the unreadable one
        recorder.current = "dead-letter"
        assert worker.dead_letter.handler({"Records": dead}, None) == {"batchItemFailures": []}
        recorder.current = "harness"
        assert stack.store.get(stuck_id).status.value == "FAILED"
        stack.relay.close()

    recorder.calls.pop("harness")
    assert set(recorder.calls) == {"api", "worker", "consumer", "sweeper", "dead-letter"}
    for role, calls in recorder.calls.items():
        refused = sorted(str(call) for call in calls if not allows(role, call))
        assert not refused, f"{role} makes calls its role does not allow: {refused}"
    assert recorder.actions["api"] == {
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "dynamodb:ConditionCheckItem",  # the key's id under the other value, during a rotation
        "secretsmanager:GetSecretValue",  # the id secret, current and previous
    }
    assert {call.resource for call in recorder.calls["api"] if call.action.startswith("secretsmanager:")} == {
        "secret:id"
    }
    assert recorder.actions["worker"] == {
        "sqs:SendMessage",
        "dynamodb:UpdateItem",
        "dynamodb:Query",  # a group's older PENDING message, in the index
        "dynamodb:BatchGetItem",  # ... read back from its record
    }
    assert recorder.actions["consumer"] == {
        "dynamodb:UpdateItem",
        "sqs:GetQueueUrl",
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",  # copies it finished, deleted early while its batch had more (DeleteMessageBatch)
    }
    assert recorder.actions["sweeper"] == {
        "dynamodb:GetItem",  # the bucket count
        "dynamodb:Query",  # the record index
        "dynamodb:BatchGetItem",  # the records behind it
        "sqs:SendMessage",
        "dynamodb:UpdateItem",  # PENDING -> QUEUED
    }
    assert Call("dynamodb:Query", f"index:{RECORD_INDEX}") in recorder.calls["sweeper"]
    assert recorder.actions["dead-letter"] == {"dynamodb:GetItem", "dynamodb:UpdateItem"}  # read, lease, FAILED


def test_the_callers_policy_allows_what_the_library_calls(recorder: CallRecorder) -> None:
    """A service of the user's writing with Outbox (id secret, first message on a fresh table, get): all allowed."""
    with mock_aws():
        stack = build_stack()
        table = stack.resources.table_name
        stack.dynamodb.delete_item(TableName=table, Key={"pk": {"S": META_PK}, "sk": {"S": "CONFIG"}})
        secrets = botocore.session.get_session().create_client("secretsmanager", region_name="us-east-1")
        recorder.id_secret_arn = secrets.create_secret(Name="outbox-id-secret-y", SecretString="v" * 64)["ARN"]
        settings = Settings(table_name=table, region="us-east-1", buckets=4, id_secret_arn=recorder.id_secret_arn)
        recorder.current = "caller"
        client = recorder.session("us-east-1").create_client("dynamodb")
        library = Outbox.from_settings(settings, client=client)
        own = {"Put": {"TableName": table, "Item": {"pk": {"S": "ORDER#1"}, "sk": {"S": "ORDER"}}}}
        message = library.message({"order": 1}, type="OrderPlaced", idempotency_key="order-1")
        library.transact_write([own], message)
        assert library.get(message.message_id).status.value == "PENDING"
        stack.relay.close()

    calls = recorder.calls["caller"] - {Call("dynamodb:PutItem", "table", ("ORDER#1",))}  # the service's own grant
    refused = sorted(str(call) for call in calls if not allows("caller", call))
    assert not refused, f"the library makes calls caller_policy_document does not allow: {refused}"
    assert {call.action for call in calls} >= {
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "secretsmanager:GetSecretValue",
    }
    assert not allows("caller", Call("dynamodb:PutItem", "table", ("ORDER#1",)))  # the service's items: its own grant


def test_every_item_grant_holds_to_the_outboxs_keys_and_every_key_grant_to_its_services() -> None:
    """Issue #25: on the caller's own table no role may touch an item outside MSG#, OUTBOX# and OUTBOX-META.

    Every DynamoDB item-level action a role (or the caller's policy) is granted carries a
    dynamodb:LeadingKeys condition; every KMS grant a kms:ViaService one; the consumer, which runs
    the user's delivery code, holds nothing it does not call (no GetItem).
    """
    item_actions = {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:ConditionCheckItem",
    }
    for role in ("api", "worker", "consumer", "sweeper", "dead-letter", "caller"):
        for statement in statements(role):
            conditions = {c["variable"]: c for c in statement.get("condition", [])}
            if set(statement["actions"]) & item_actions:
                leading = conditions.get("dynamodb:LeadingKeys")
                assert leading is not None, (role, statement["sid"])
                assert leading["test"].startswith("ForAllValues:"), (role, statement["sid"])
                keys = {_leading_key(value) for value in leading["values"]}
                assert keys <= {"MSG#*", "OUTBOX#*", "OUTBOX-META"}, (role, statement["sid"], keys)
            if any(action.startswith("kms:") for action in statement["actions"]):
                assert conditions["kms:ViaService"]["test"] == "StringEquals", (role, statement["sid"])
    assert not any("dynamodb:GetItem" in statement["actions"] for statement in statements("consumer"))


def test_the_checker_refuses_what_iam_would() -> None:
    """The checker above can fail: a wrong action, resource or partition key is refused."""
    assert allows("sweeper", Call("dynamodb:GetItem", "table", ("OUTBOX-META",)))
    assert not allows("sweeper", Call("dynamodb:PutItem", "table", ("OUTBOX-META",)))
    assert not allows("sweeper", Call("dynamodb:PutItem", "table", ("MSG#1",)))  # the caller's or a record
    assert not allows("sweeper", Call("dynamodb:PutItem", "table", ("ORDER#1",)))
    assert not allows("sweeper", Call("dynamodb:UpdateItem", "table", ("MSG#1", "ORDER#1")))
    assert not allows("sweeper", Call("dynamodb:UpdateItem", "table", None))
    assert allows("sweeper", Call("dynamodb:BatchGetItem", "table", ("MSG#1", "MSG#2")))
    assert not allows("sweeper", Call("dynamodb:Query", "table"))  # only the record index
    assert not allows("sweeper", Call("dynamodb:DeleteItem", "table", ("MSG#1",)))
    assert not allows("worker", Call("sqs:GetQueueUrl"))
    assert allows("dead-letter", Call("dynamodb:UpdateItem", "table", ("MSG#1",)))
    assert not allows("dead-letter", Call("dynamodb:UpdateItem", "table", ("ORDER#1",)))  # the caller's items
    assert not allows("dead-letter", Call("sqs:SendMessage"))
    assert allows("api", Call("secretsmanager:GetSecretValue", "secret:id"))
    assert not allows("api", Call("secretsmanager:GetSecretValue", "secret:other"))
    assert not allows("worker", Call("secretsmanager:GetSecretValue", "secret:id"))
    # Issue #25: the caller's own items of a shared table are out of every role's reach.
    assert not allows("api", Call("dynamodb:PutItem", "table", ("ORDER#1",)))
    assert not allows("api", Call("dynamodb:GetItem", "table", ("ORDER#1",)))
    assert allows("api", Call("dynamodb:PutItem", "table", ("MSG#1", "OUTBOX#3")))
    assert not allows("worker", Call("dynamodb:UpdateItem", "table", ("ORDER#1",)))
    assert not allows("consumer", Call("dynamodb:UpdateItem", "table", ("ORDER#1",)))
    assert not allows("consumer", Call("dynamodb:GetItem", "table", ("MSG#1",)))  # it never reads


BODY = '{"channel": "email", "recipient": "a@example.com", "subject": "hi", "body": "hello"}'
HEADERS = {"content-type": "application/json", "idempotency-key": "iam-test"}
