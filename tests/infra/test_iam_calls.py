"""Each role allows every AWS call its handler really makes: recorded from the Lambda entry points on moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

import outbox.api
import worker.consumer
import worker.handler
from outbox.adapters import aws
from tests.events import http_event
from tests.infra.terraform import MODULE, load
from tests.integration.conftest import build_stack, sqs_event

# Batch and transaction operations are authorised by the actions of what they contain.
_BATCHES = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage"}
_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}


class CallRecorder:
    """IAM actions of every call made by clients the handlers create, by the handler running."""

    def __init__(self) -> None:
        self.current = "harness"  # the test's own setup and reads, not a handler's
        self.actions: dict[str, set[str]] = {}

    def session(self, region: str | None) -> boto3.session.Session:
        session = boto3.session.Session(region_name=region)
        session.events.register("before-parameter-build.*.*", self._record)
        return session

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        prefix = model.service_model.signing_name
        if model.name == "TransactWriteItems":
            names = {_TRANSACT[kind] for item in params["TransactItems"] for kind in item}
        else:
            names = {_BATCHES.get(model.name, model.name)}
        self.actions.setdefault(self.current, set()).update(f"{prefix}:{name}" for name in names)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[CallRecorder]:
    """Every client the handlers build records its calls."""
    recorder = CallRecorder()
    monkeypatch.setattr(aws, "_session", recorder.session)
    for factory in (outbox.api.default_api, worker.handler.default_worker, worker.consumer.default_consumer):
        factory.cache_clear()
    yield recorder
    for factory in (outbox.api.default_api, worker.handler.default_worker, worker.consumer.default_consumer):
        factory.cache_clear()


def granted(role: str) -> set[str]:
    """The actions a role's policy document allows."""
    document = load(MODULE).data["aws_iam_policy_document"][role]
    return {action for statement in document["statement"] for action in statement["actions"]}


def test_each_role_allows_the_calls_its_handler_makes(recorder: CallRecorder, monkeypatch: pytest.MonkeyPatch) -> None:
    """API, worker and consumer run from their Lambda entry points; each call is allowed."""
    with mock_aws():
        stack = build_stack()
        monkeypatch.setenv("OUTBOX_TABLE_NAME", stack.resources.table_name)
        monkeypatch.setenv("OUTBOX_QUEUE_URL", stack.resources.queue_url)
        monkeypatch.setenv("OUTBOX_BUCKETS", "4")  # what build_stack's bootstrap stored
        monkeypatch.setenv("OUTBOX_METRICS", "off")

        recorder.current = "api"
        accepted = outbox.api.handler(http_event("POST", "/messages", body=BODY, headers=HEADERS), None)
        assert accepted["statusCode"] == 202
        message_id = json.loads(accepted["body"])["message_id"]
        assert outbox.api.handler(http_event("GET", f"/messages/{message_id}"), None)["statusCode"] == 200

        recorder.current = "harness"
        event = stack.stream_event()
        recorder.current = "worker"
        assert worker.handler.handler(event, None) == {"batchItemFailures": []}

        recorder.current = "harness"
        messages = stack.receive_all()
        recorder.current = "consumer"
        assert worker.consumer.handler(sqs_event(messages), None) == {"batchItemFailures": []}
        stack.relay.close()

    recorder.actions.pop("harness")
    assert set(recorder.actions) == {"api", "worker", "consumer"}
    for role, actions in recorder.actions.items():
        assert actions <= granted(role), f"{role} calls {sorted(actions - granted(role))} its role does not allow"
    assert recorder.actions["api"] == {"dynamodb:PutItem", "dynamodb:GetItem"}
    assert recorder.actions["worker"] == {"sqs:SendMessage", "dynamodb:UpdateItem"}


BODY = '{"channel": "email", "recipient": "a@example.com", "subject": "hi", "body": "hello"}'
HEADERS = {"content-type": "application/json", "idempotency-key": "iam-test"}
