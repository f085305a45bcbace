"""``outbox bootstrap``: the table and queues from the models' own definitions, idempotently."""

from __future__ import annotations

import json

import pytest
from moto import mock_aws

from outbox.adapters.aws import dynamodb_client, sqs_client
from outbox.adapters.models import STREAM_VIEW_TYPE, TTL_ATTRIBUTE
from outbox.bootstrap import bootstrap
from outbox.cli import main
from outbox.settings import Settings


def test_bootstrap_creates_everything_and_is_idempotent() -> None:
    """Table with stream and TTL, queue with a redrive policy to its DLQ, on-failure queue; twice is the same."""
    with mock_aws():
        dynamodb, sqs = dynamodb_client(), sqs_client()
        first = bootstrap(dynamodb, sqs, fifo=True)
        second = bootstrap(dynamodb, sqs, fifo=True)

        assert first == second
        table = dynamodb.describe_table(TableName="outbox")["Table"]
        assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": STREAM_VIEW_TYPE}
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        ttl = dynamodb.describe_time_to_live(TableName="outbox")["TimeToLiveDescription"]
        assert ttl["AttributeName"] == TTL_ATTRIBUTE
        attributes = sqs.get_queue_attributes(QueueUrl=first.queue_url, AttributeNames=["All"])["Attributes"]
        assert first.queue_url.endswith(".fifo")
        assert attributes["FifoQueue"] == "true"
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"].endswith("outbox-messages-dlq.fifo")
        # the consumer must give up (FAILED, with a reason) before SQS moves its copy to the DLQ
        assert redrive["maxReceiveCount"] > Settings(table_name="t").max_delivery_attempts


def test_cli_bootstrap_prints_exports(capsys: pytest.CaptureFixture[str]) -> None:
    """The command prints shell exports for every variable the handlers read."""
    with mock_aws():
        assert main(["bootstrap"]) == 0

    out = capsys.readouterr().out
    assert "export OUTBOX_TABLE_NAME=outbox" in out
    assert "export OUTBOX_QUEUE_URL=" in out
    assert "export OUTBOX_ON_FAILURE_QUEUE_URL=" in out


def test_cli_bad_usage_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Unknown arguments are a usage error: exit 2, a short message, nothing done."""
    with pytest.raises(SystemExit) as caught:
        main(["demo", "-n", "many"])
    assert caught.value.code == 2
    assert "must be a whole number of at least 1, not 'many'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["demo", "-n", "0"])
    assert caught.value.code == 2
