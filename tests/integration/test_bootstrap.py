"""``outbox bootstrap``: the table and queues from the models' own definitions, idempotently."""

from __future__ import annotations

import json
from typing import Any

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


def test_cli_bootstrap_warns_in_one_line_when_the_buckets_or_queue_cannot_carry_the_rate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--expected-rate``: silent for a rate the settings carry, one warning line naming the setting otherwise."""
    with mock_aws():
        assert main(["bootstrap", "--expected-rate", "100"]) == 0
        assert capsys.readouterr().err == ""
        assert main(["bootstrap", "--expected-rate", "5000", "--fifo", "--table-name", "t2", "--buckets", "8"]) == 0
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: 5,000 messages/s is more than this configuration carries with headroom")
    assert "raise buckets" in line
    assert "SQS FIFO queue" in line


def test_cli_bad_usage_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Unknown arguments are a usage error: exit 2, a short message, nothing done."""
    with pytest.raises(SystemExit) as caught:
        main(["demo", "-n", "many"])
    assert caught.value.code == 2
    assert "must be a whole number of at least 1, not 'many'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["demo", "-n", "0"])
    assert caught.value.code == 2


def _user_table(dynamodb: Any, *, keys: tuple[str, str] = ("PK", "SK"), stream: str | None = None) -> None:
    """A table of the user's own, as they made it: their key names, a stream or none, no index, no TTL."""
    extra: dict[str, Any] = {}
    if stream is not None:
        extra["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream}
    dynamodb.create_table(
        TableName="orders",
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in keys],
        KeySchema=[{"AttributeName": keys[0], "KeyType": "HASH"}, {"AttributeName": keys[1], "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )


def _unchanged(dynamodb: Any) -> None:
    table = dynamodb.describe_table(TableName="orders")["Table"]
    assert not table.get("GlobalSecondaryIndexes")
    ttl = dynamodb.describe_time_to_live(TableName="orders")["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "DISABLED"
    assert dynamodb.scan(TableName="orders")["Count"] == 0  # no bucket-count item either


@pytest.mark.parametrize(
    ("stream", "keys", "expected"),
    [
        (None, ("PK", "SK"), "its stream must be on with view type NEW_IMAGE or NEW_AND_OLD_IMAGES"),
        ("KEYS_ONLY", ("PK", "SK"), "--stream-specification StreamEnabled=true,StreamViewType=NEW_IMAGE"),
        ("NEW_IMAGE", ("id", "kind"), "its keys are id (hash), kind (range), not PK (hash), SK (range)"),
    ],
)
def test_an_existing_table_that_cannot_hold_the_outbox_is_left_as_it_was(
    stream: str | None, keys: tuple[str, str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """No stream, a keys-only stream or other key names: one line naming the table and the fix; nothing changed."""
    with mock_aws():
        dynamodb = dynamodb_client()
        _user_table(dynamodb, keys=keys, stream=stream)
        code = main(["bootstrap", "--table-name", "orders", "--hash-key", "PK", "--range-key", "SK", "--buckets", "4"])
        (line,) = capsys.readouterr().err.splitlines()
        _unchanged(dynamodb)
    assert code == 2
    assert line.startswith("outbox bootstrap: table orders cannot hold the outbox, nothing was changed: ")
    assert expected in line


def test_an_existing_table_with_its_own_key_names_gets_the_index_and_ttl() -> None:
    """A fitting table of the user's: the record index and TTL are added, the stream is reported."""
    with mock_aws():
        dynamodb, sqs = dynamodb_client(), sqs_client()
        _user_table(dynamodb, stream="NEW_AND_OLD_IMAGES")
        resources = bootstrap(dynamodb, sqs, table_name="orders", hash_key="PK", range_key="SK")
        table = dynamodb.describe_table(TableName="orders")["Table"]
    assert resources.stream_arn == table["LatestStreamArn"]
    assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["outbox-records"]
    assert resources.environment()["OUTBOX_HASH_KEY"] == "PK"
