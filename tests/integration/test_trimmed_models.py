"""botocore's models trimmed to the operations the zip's code names serve every call the deployed functions make."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import botocore
import pynamodb
import pytest
from moto import mock_aws

from outbox import lambda_package
from outbox.compose import Clients, build_consumer, build_dead_letters, build_stream_worker, build_sweeper
from outbox.domain.status import Status
from outbox.notifications.api import build_api
from outbox.settings import Settings
from tests.events import http_event
from tests.integration.conftest import Stack, build_stack, sqs_event

# The services whose clients the deployed functions make, as the zip trims them.
TRIMMED = ("dynamodb", "secretsmanager", "sqs")


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    """A staging folder as the packager fills it (the library, PynamoDB, botocore's models), its models trimmed."""
    staging = tmp_path_factory.mktemp("staging")
    for service in TRIMMED:
        shutil.copytree(Path(botocore.__file__).parent / "data" / service, staging / "botocore" / "data" / service)
    for source in lambda_package.library_sources():
        for path in source.files():
            destination = staging / path.relative_to(source.base)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
    shutil.copytree(Path(pynamodb.__file__).parent, staging / "pynamodb")
    kept = lambda_package.keep_called_operations(staging, TRIMMED)
    return staging / "botocore" / "data", kept


@pytest.fixture
def stack() -> Iterator[Stack]:
    """A stack bootstrapped with botocore's full models (creating tables and queues is not the functions' job)."""
    with mock_aws():
        built = build_stack()
        yield built
        built.relay.close()


def test_the_models_keep_what_the_code_names_and_drop_the_rest(trimmed: tuple[Path, dict[str, list[str]]]) -> None:
    """GetItem, TransactWriteItems, SendMessageBatch, GetSecretValue kept; DeleteBackup and the like gone."""
    _, kept = trimmed
    assert {"GetItem", "UpdateItem", "Query", "BatchGetItem", "TransactWriteItems"} <= set(kept["dynamodb"])
    assert "DescribeEndpoints" in kept["dynamodb"]  # botocore's endpoint discovery calls it by itself
    assert "DeleteBackup" not in kept["dynamodb"]
    assert {"SendMessageBatch", "ChangeMessageVisibility"} <= set(kept["sqs"])
    assert "ListDeadLetterSourceQueues" not in kept["sqs"]
    assert kept["secretsmanager"] == ["GetSecretValue"]


def test_every_deployed_function_runs_on_the_trimmed_models(
    trimmed: tuple[Path, dict[str, list[str]]], stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """API POST and GET, worker, consumer, sweeper and dead-letter function: all on the trimmed models."""
    data, kept = trimmed
    secret = stack_secret(stack)
    monkeypatch.setenv("AWS_DATA_PATH", str(data))  # botocore reads the models there first (new sessions)
    settings = Settings(
        table_name=stack.resources.table_name,
        queue_url=stack.resources.queue_url,
        buckets=4,
        id_secret_arn=secret,
        sweep_min_age=timedelta(0),
    )
    clients = Clients(settings.region)
    api = build_api(settings, clients)

    # GIVEN a message accepted through the API, on the trimmed models
    headers = {"idempotency-key": "k-1", "content-type": "application/json"}
    posted = api.handle(http_event("POST", "/messages", body=json.dumps(NOTE), headers=headers))
    assert posted["statusCode"] == 202, posted
    message_id = json.loads(posted["body"])["message_id"]
    for service in TRIMMED:  # what the functions' clients loaded is the trimmed model
        client = getattr(clients, service)
        assert sorted(client.meta.service_model.operation_names) == kept[service]

    # WHEN the worker relays it, the consumer delivers it, the sweeper and the dead-letter function run
    assert build_stream_worker(settings, clients).handle(stack.stream_event()) == {"batchItemFailures": []}
    copies = stack.receive_all()
    assert build_consumer(settings, clients).handle(sqs_event(copies)) == {"batchItemFailures": []}
    build_sweeper(settings, clients).sweep()
    assert build_dead_letters(settings, clients).handle(sqs_event(copies)) == {"batchItemFailures": []}

    # THEN the message ended COMPLETED, and GET shows it
    got = api.handle(http_event("GET", f"/messages/{message_id}"))
    assert got["statusCode"] == 200, got
    assert json.loads(got["body"])["status"] == Status.COMPLETED.value


NOTE = {"channel": "sms", "recipient": "+14155550100", "body": "trimmed"}


def stack_secret(stack: Stack) -> str:
    """The id secret in the emulator's Secrets Manager (made with the full model: the functions only read it)."""
    client = Clients("us-east-1").secretsmanager
    return str(client.create_secret(Name="outbox-id-secret", SecretString="trimmed-models-id-secret-0123456789")["ARN"])
