"""The IAM policy the README gives your service's role allows every call ``Outbox`` makes: recorded on moto.

Each call is checked as IAM would: a statement naming its action (a transaction's items by their
own actions), the table in its resource, and its ``dynamodb:LeadingKeys`` condition holding for the
partition keys of the items it touches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from pynamodb.connection import Connection

from outbox import IdSecret, Outbox
from outbox.adapters.aws import dynamodb_client, sqs_client
from outbox.bootstrap import bootstrap

ROOT = Path(__file__).resolve().parents[2]
TABLE, HASH_KEY = "shop", "PK"
_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
Call = tuple[str, str, tuple[str, ...] | None]  # action, table, the partition keys of its items (None: no items)


def readme_policy() -> dict[str, Any]:
    """The JSON policy of the README's IAM section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### The IAM permissions your service needs") :]
    block = re.search(r"```json\n(.*?)```", section, re.DOTALL)
    assert block is not None
    policy: dict[str, Any] = json.loads(block.group(1))
    return policy


def _calls_of(model: Any, params: dict[str, Any]) -> list[Call]:
    def key(item: dict[str, Any] | None) -> str:
        return str((item or {}).get(HASH_KEY, {}).get("S"))

    if model.name == "TransactWriteItems":
        return [
            (f"dynamodb:{_TRANSACT[kind]}", body["TableName"], (key(body.get("Key") or body.get("Item")),))
            for item in params["TransactItems"]
            for kind, body in item.items()
        ]
    items = params.get("Key") or params.get("Item")
    return [(f"dynamodb:{model.name}", params["TableName"], (key(items),) if items else None)]


@pytest.fixture
def recorded() -> Iterator[tuple[list[Call], Any]]:
    """The shop's table on moto, and a recorder every DynamoDB client of the test registers with."""
    calls: list[Call] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.extend(_calls_of(model, params))

    with mock_aws():
        bootstrap(dynamodb_client(), sqs_client(), table_name=TABLE, hash_key=HASH_KEY, range_key="SK")
        yield calls, record


def allowed(policy: dict[str, Any], call: Call) -> bool:
    """Whether a statement of ``policy`` allows ``call``: action, table, LeadingKeys."""
    action, table, keys = call
    arn = f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}"
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if statement["Effect"] != "Allow" or action not in actions:
            continue
        if not any(fnmatchcase(arn, resource) for resource in resources):
            continue
        conditions = statement.get("Condition", {})
        if not conditions:
            return True
        (test, condition), *rest = conditions.items()
        assert not rest, "teach this test the conditions"
        assert test == "ForAllValues:StringLike", f"teach this test {test}"
        assert list(condition) == ["dynamodb:LeadingKeys"]
        if keys is not None and all(any(fnmatchcase(k, p) for p in condition["dynamodb:LeadingKeys"]) for k in keys):
            return True
    return False


def test_the_readme_policy_allows_every_call_of_the_outbox(recorded: tuple[list[Call], Any]) -> None:
    """Message (table check, bucket count), transact_write, add_to, a rotation's check, get: each call allowed."""
    calls, record = recorded
    secret = IdSecret(
        "readme-iam-current-secret-0123456789",
        previous="readme-iam-previous-secret-0123456789",
        rotated_at=datetime.now(UTC),
    )
    client = dynamodb_client()
    client.meta.events.register("provide-client-params.dynamodb.*", record)
    outbox = Outbox(TABLE, client=client, hash_key=HASH_KEY, range_key="SK", id_secret=secret)

    first = outbox.message({"order_id": "o-1"}, type="OrderPlaced", idempotency_key="order-placed-o-1")
    outbox.transact_write([], first)
    connection = Connection(region="us-east-1")
    connection.client.meta.events.register("provide-client-params.dynamodb.*", record)
    with outbox.transaction(connection=connection) as transaction:
        outbox.add_to(transaction, outbox.message({"order_id": "o-2"}, type="OrderPlaced"))
    outbox.get(first.message_id)

    records = [k for action, _, k in calls if action == "dynamodb:PutItem" and k and k[0].startswith("MSG#")]
    assert len(records) == 2, calls  # both messages' records, through the client and through PynamoDB
    actions = {action for action, _, _ in calls}
    assert {"dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:ConditionCheckItem"} <= actions
    policy = readme_policy()
    refused = [call for call in calls if not allowed(policy, call)]
    assert refused == [], refused


def test_the_checker_refuses_what_iam_would() -> None:
    """The check above can fail: another table, an action not granted, a key outside the patterns."""
    policy = readme_policy()
    assert allowed(policy, ("dynamodb:PutItem", TABLE, ("MSG#1",)))
    assert not allowed(policy, ("dynamodb:PutItem", "other", ("MSG#1",)))
    assert not allowed(policy, ("dynamodb:DeleteItem", TABLE, ("MSG#1",)))
    assert not allowed(policy, ("dynamodb:PutItem", TABLE, ("ORDER#1",)))
    assert not allowed(policy, ("dynamodb:PutItem", TABLE, None))
