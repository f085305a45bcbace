"""``terraform apply`` of both examples on the moto server, then a message through what was deployed.

tests/infra/deploy.py applies the examples (started with the other slow Terraform runs by
tests/infra/conftest.py). Where moto cannot create a resource, the apply must fail there and
nowhere else (``MOTO_GAPS``).

Lambda does not run on moto: from the applied state the test runs each handler here, from the source
tree, with exactly the environment the deployed function was given (``aws_lambda_function.environment``)
plus what Lambda itself sets (region, function name, credentials) and the endpoint. The stream
mapping in the state says which stream, filter, batch size and function; the queue mapping which
queue and function. A message written with ``Outbox`` (configured from the output ``environment``)
goes through the worker and the consumer to the delivery the example names, to COMPLETED. So a wire
between the module and the code that is wrong (an environment name, a key name, a queue URL, the
index, the filter, the handler path, the zip) fails here.

moto's event source mappings are inert on this server (tests/infra/moto_server.py says why): moto
would empty the stream shard and take the queue's messages on every write, and deleting a mapping
does not undo that.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
import urllib.parse
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest

from outbox import Outbox, Status
from outbox.local.sqs_runner import SqsRunner
from outbox.local.stream_runner import Invoke, MappingSettings, StreamRunner
from outbox.settings import Settings
from tests.infra import deployed_delivery
from tests.infra.conftest import TerraformRuns
from tests.infra.deploy import EXAMPLES, MOTO_GAPS, Deployment

pytestmark = [pytest.mark.terraform, pytest.mark.e2e]

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


@pytest.fixture(scope="module")
def deployments(terraform_runs: TerraformRuns) -> dict[str, Deployment]:
    """Both examples, applied on the moto server."""
    return {example: terraform_runs.deployment(example) for example in EXAMPLES}


@pytest.fixture(scope="module")
def endpoint(terraform_runs: TerraformRuns) -> str:
    """The moto server's endpoint."""
    assert terraform_runs.moto is not None
    return terraform_runs.moto.endpoint


@pytest.mark.parametrize("example", ["complete", "existing-table"])
def test_apply_creates_everything_moto_can(deployments: dict[str, Deployment], example: str) -> None:
    """Every planned resource is created, except the moto gaps named in MOTO_GAPS, which fail as named."""
    deployment = deployments[example]
    gaps = MOTO_GAPS[example]
    assert set(deployment.errors) == set(gaps), deployment.errors
    for address, error in deployment.errors.items():
        assert "PutResourcePolicy" in error, (address, error)
        assert "ResourceNotFoundException" in error, (address, error)
    assert len(deployment.planned) >= 60
    assert deployment.planned - deployment.applied == set(gaps)
    assert deployment.applied <= {resource["address"] for resource in deployment.resources}


@pytest.mark.parametrize("example", ["complete", "existing-table"])
def test_each_function_runs_a_handler_its_zip_holds(deployments: dict[str, Deployment], example: str) -> None:
    """Each deployed handler (and the consumer's delivery) is a module of the zip the function was given."""
    deployment = deployments[example]
    functions = deployment.of_type("aws_lambda_function")
    assert {f["values"]["function_name"].rsplit("-", 1)[-1] for f in functions} >= {"api", "worker", "consumer"}
    for function in (f["values"] for f in functions):
        names = set(zipfile.ZipFile(function["filename"]).namelist())
        module_name = function["handler"].rsplit(".", 1)[0]
        assert f"{module_name.replace('.', '/')}.py" in names, (function["function_name"], module_name)
        delivery = function["environment"][0]["variables"].get("OUTBOX_DELIVERY")
        if delivery:
            assert f"{delivery.split(':')[0].replace('.', '/')}.py" in names, (function["function_name"], delivery)


def test_the_environment_output_is_the_sweepers(deployments: dict[str, Deployment]) -> None:
    """Output environment: the sweeper's own settings (as deployed), the API's retention and the region."""
    for deployment in deployments.values():
        environment = deployment.outputs["environment"]
        sweeper = _function_named(deployment, "sweeper")["environment"][0]["variables"]
        api = _function_named(deployment, "api")["environment"][0]["variables"]
        assert {name: environment[name] for name in sweeper if name != "LOG_LEVEL"} == {
            name: value for name, value in sweeper.items() if name != "LOG_LEVEL"
        }
        assert environment["OUTBOX_RETENTION_DAYS"] == api["OUTBOX_RETENTION_DAYS"]
        assert environment["AWS_REGION"] == deployment.region


# What dynamodb:LeadingKeys may name: the outbox's own items, never a caller's (issue #25).
ITEM_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
}
OUTBOX_KEYS = {"MSG#*", "OUTBOX#*", "OUTBOX-META"}


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _held_to_the_outbox(document: Mapping[str, Any]) -> list[str]:
    """What is wrong with a policy document: an item grant without LeadingKeys, a key grant without ViaService."""
    wrong = []
    for statement in document["Statement"]:
        actions = set(_listed(statement["Action"]))
        conditions = statement.get("Condition", {})
        if actions & ITEM_ACTIONS:
            keys = next(
                (
                    conditions[test]["dynamodb:LeadingKeys"]
                    for test in ("ForAllValues:StringLike", "ForAllValues:StringEquals")
                    if "dynamodb:LeadingKeys" in conditions.get(test, {})
                ),
                None,
            )
            if keys is None or not set(_listed(keys)) <= OUTBOX_KEYS:
                wrong.append(f"{statement.get('Sid')}: {sorted(actions & ITEM_ACTIONS)} on any item")
        if any(action.startswith("kms:") for action in actions) and "kms:ViaService" not in conditions.get(
            "StringEquals", {}
        ):
            wrong.append(f"{statement.get('Sid')}: key grant without kms:ViaService")
    return wrong


@pytest.mark.parametrize("example", ["complete", "existing-table"])
def test_the_applied_policies_keep_every_role_to_the_outboxs_items_and_the_queues_to_their_functions(
    deployments: dict[str, Deployment], endpoint: str, example: str
) -> None:
    """Issue #25 as applied: each role's policy read back from IAM, each queue's policy and redrive from SQS."""
    deployment = deployments[example]
    prefix = deployment.outputs["function_names"]["worker"].removesuffix("-worker")
    iam = _client("iam", endpoint, deployment.region)
    roles = {}
    for policy in (p["values"] for p in deployment.of_type("aws_iam_role_policy")):
        document = iam.get_role_policy(RoleName=policy["role"], PolicyName=policy["name"])["PolicyDocument"]
        document = json.loads(urllib.parse.unquote(document)) if isinstance(document, str) else document
        assert not _held_to_the_outbox(document), (policy["name"], _held_to_the_outbox(document))
        roles[policy["name"].removeprefix(f"{prefix}-")] = document
    assert set(roles) >= {"api", "worker", "consumer", "sweeper", "dead-letter"}  # and the schedule's
    consumer_actions = {action for s in roles["consumer"]["Statement"] for action in _listed(s["Action"])}
    assert "dynamodb:GetItem" not in consumer_actions  # it runs the user's code and never reads a record

    sqs = _client("sqs", endpoint, deployment.region)
    main_url = deployment.outputs["environment"]["OUTBOX_QUEUE_URL"]
    dlq_url = main_url.replace(prefix, f"{prefix}-dlq", 1)
    main = sqs.get_queue_attributes(QueueUrl=main_url, AttributeNames=["All"])["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
    assert json.loads(dlq["RedriveAllowPolicy"]) == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": [main["QueueArn"]],
    }
    assert json.loads(main["RedrivePolicy"])["deadLetterTargetArn"] == dlq["QueueArn"]
    statements = {s["Sid"]: s for s in json.loads(dlq["Policy"])["Statement"]}
    assert statements["OnlyTheRedriveFillsIt"]["Condition"] == {"Bool": {"aws:PrincipalIsAWSService": "false"}}
    takers = statements["OnlyItsFunctionTakesCopies"]["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    assert takers.endswith(f":role/{prefix}-dead-letter")
    takers = {s["Sid"]: s for s in json.loads(main["Policy"])["Statement"]}["OnlyItsFunctionTakesCopies"]
    assert takers["Condition"]["ArnNotEquals"]["aws:PrincipalArn"].endswith(f":role/{prefix}-consumer")
    if example == "existing-table":  # the order service's own policy, on the caller's table
        caller = json.loads(deployment.outputs["caller_policy_document"])
        assert not _held_to_the_outbox(caller), _held_to_the_outbox(caller)


def _function_named(deployment: Deployment, role: str) -> dict[str, Any]:
    (found,) = [
        f["values"]
        for f in deployment.of_type("aws_lambda_function")
        if f["values"]["function_name"].endswith(f"-{role}")
    ]
    return dict(found)


class Lambda:
    """Runs deployed functions here, each invocation a cold start with exactly the function's environment."""

    def __init__(self, deployment: Deployment, endpoint: str) -> None:
        self.deployment = deployment
        self.endpoint = endpoint
        self.invocations: list[str] = []
        self.confirmed: list[list[str]] = []  # what a delivery run from its zip confirmed

    def runtime_environment(self, function: Mapping[str, Any]) -> dict[str, str]:
        """What the deployed function sees: its own variables, and what Lambda sets (region, name, credentials)."""
        region = function["arn"].split(":")[3]
        return {
            **function["environment"][0]["variables"],
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": function["function_name"],
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function["memory_size"]),
            "_HANDLER": function["handler"],
            **CREDENTIALS,
            # The one difference from AWS: every client goes to the moto server.
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        }

    def zip_invoker(self, arn: str, unpacked: Path) -> Invoke:
        """The function ``arn`` names, run from its own zip (unpacked) in a fresh interpreter, as Lambda runs it.

        Only the zip is on the path: what the function imports (its handler, the delivery, the
        library, their dependencies) must be in it. The delivery's record of what it confirmed comes
        back with the batch response.
        """
        function = self.deployment.function(arn)
        module_name, attribute = function["handler"].rsplit(".", 1)
        zipfile.ZipFile(function["filename"]).extractall(unpacked)
        script = (
            "import importlib, json, sys\n"
            f"sys.path[:0] = [{str(unpacked)!r}]\n"
            f"handler = getattr(importlib.import_module({module_name!r}), {attribute!r})\n"
            "result = handler(json.load(sys.stdin), None)\n"
            "import orders.consumer\n"
            "print(json.dumps({'result': result, 'confirmations': orders.consumer.confirmations}, default=str))\n"
        )

        def invoke(event: dict[str, Any], _context: Any) -> Any:
            self.invocations.append(function["function_name"])
            done = subprocess.run(
                [sys.executable, "-I", "-S", "-c", script],
                input=json.dumps(event),
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
                env={**self.runtime_environment(function), "PYTHONDONTWRITEBYTECODE": "1"},
            )
            assert done.returncode == 0, done.stderr[-3000:]
            answer = json.loads(done.stdout.splitlines()[-1])  # after the function's own log lines
            self.confirmed += answer["confirmations"]
            return answer["result"]

        return invoke

    def invoker(self, arn: str) -> Invoke:
        """The handler of the function ``arn`` names, as an event source mapping invokes it."""
        function = self.deployment.function(arn)
        module_name, attribute = function["handler"].rsplit(".", 1)

        def invoke(event: dict[str, Any], context: Any) -> Any:
            with _environment(self.runtime_environment(function)):
                module = importlib.import_module(module_name)
                _cold_start(module)
                try:
                    self.invocations.append(function["function_name"])
                    return getattr(module, attribute)(event, context)
                finally:
                    _cold_start(module)

        return invoke


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` holding exactly ``values`` for the duration."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _cold_start(module: Any) -> None:
    """Forget what the handler module built from its environment (its cached use case, built once per cold start)."""
    for value in vars(module).values():
        if callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", None) == module.__name__:
            value.cache_clear()


def _client(service: str, endpoint: str, region: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=region, **_boto_credentials())


def _boto_credentials() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "aws_session_token": "testing"}


def _stream_runner(deployment: Deployment, functions: Lambda, endpoint: str) -> StreamRunner:
    """The stream mapping as the state has it: its stream, filter, batch, retries and function."""
    mapping = deployment.one("aws_lambda_event_source_mapping", "stream")
    (criteria,) = mapping["filter_criteria"]
    (pattern,) = [json.loads(f["pattern"]) for f in criteria["filter"]]
    worker = deployment.function(mapping["function_arn"])
    settings = MappingSettings(
        batch_size=mapping["batch_size"],
        batching_window_s=mapping["maximum_batching_window_in_seconds"],
        maximum_retry_attempts=mapping["maximum_retry_attempts"],
        bisect_on_error=mapping["bisect_batch_on_function_error"],
        function_name=worker["function_name"],
        function_timeout_s=worker["timeout"],
        filter_pattern=pattern,
    )
    assert mapping["starting_position"] == "TRIM_HORIZON"
    streams = _client("dynamodbstreams", endpoint, deployment.region)
    return StreamRunner(streams, mapping["event_source_arn"], functions.invoker(mapping["function_arn"]), settings)


def _queue_runner(deployment: Deployment, functions: Lambda, endpoint: str, unpacked: Path | None = None) -> SqsRunner:
    """The queue mapping as the state has it: its queue, batch size and function (run from its zip, if ``unpacked``)."""
    mapping = deployment.one("aws_lambda_event_source_mapping", "queue")
    (queue,) = [
        q["values"] for q in deployment.of_type("aws_sqs_queue") if q["values"]["arn"] == mapping["event_source_arn"]
    ]
    arn = mapping["function_arn"]
    consumer = deployment.function(arn)
    sqs = _client("sqs", endpoint, deployment.region)
    return SqsRunner(
        sqs,
        queue["url"],
        functions.zip_invoker(mapping["function_arn"], unpacked)
        if unpacked
        else functions.invoker(mapping["function_arn"]),
        batch_size=mapping["batch_size"],
        wait_time_s=1,
        function_timeout_s=consumer["timeout"],
        function_name=consumer["function_name"],
    )


def _until(step: Callable[[], object], condition: Callable[[], bool], what: str, timeout_s: float = 90.0) -> None:
    """Run ``step`` (one poll of a runner) until ``condition`` holds, within a generous bound."""
    deadline = time.monotonic() + timeout_s
    step()
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(0.1)  # the poll interval of a runner with nothing to do
        step()


@pytest.fixture
def as_the_output_says(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Callable[[Deployment], Settings]:
    """The settings a service of the user's gets from the output ``environment`` exported, aimed at the moto server."""

    def settings(deployment: Deployment) -> Settings:
        for name, value in deployment.outputs["environment"].items():
            monkeypatch.setenv(name, value)
        # A service writing with idempotency keys also takes the module's id secret (output id_secret_arn).
        monkeypatch.setenv("OUTBOX_ID_SECRET_ARN", deployment.outputs["id_secret_arn"])
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        return Settings.from_env()

    return settings


def _deliver_through(
    deployment: Deployment, endpoint: str, outbox: Outbox, message_id: str, consumer_from: Path | None = None
) -> Lambda:
    """The worker from the stream, then the consumer from the queue (from its zip, unpacked in ``consumer_from``)."""
    functions = Lambda(deployment, endpoint)
    stream = _stream_runner(deployment, functions, endpoint)
    _until(stream.poll_once, lambda: outbox.get(message_id).status != Status.PENDING, "the worker relayed it")
    assert outbox.get(message_id).status == Status.QUEUED
    queue = _queue_runner(deployment, functions, endpoint, consumer_from)
    _until(queue.poll_once, lambda: outbox.get(message_id).status == Status.COMPLETED, "the consumer completed it")
    return functions


def test_a_message_reaches_the_users_delivery_on_the_complete_example(
    deployments: dict[str, Deployment], endpoint: str, as_the_output_says: Callable[[Deployment], Settings]
) -> None:
    """Outbox.transact_write -> stream -> worker -> SQS -> consumer -> the test's own delivery -> COMPLETED."""
    deployment = deployments["complete"]
    settings = as_the_output_says(deployment)
    outbox = Outbox.from_settings(settings)
    message = outbox.message({"order": 7, "note": "through Terraform's wiring"}, type="OrderPlaced", group_key="c-1")
    # The user's own item in the same transaction (its stream record is filtered out before the worker).
    item = {settings.hash_key: {"S": "ORDER#7"}, settings.range_key: {"S": "ORDER"}}
    business = {"Put": {"TableName": settings.table_name, "Item": item}}
    deployed_delivery.delivered.clear()
    outbox.transact_write([business], message)

    functions = _deliver_through(deployment, endpoint, outbox, message.message_id)

    (envelope,) = deployed_delivery.delivered
    assert (envelope.message_id, envelope.type, envelope.payload) == (
        message.message_id,
        "OrderPlaced",
        message.envelope.payload,
    )
    assert outbox.get(message.message_id).status == Status.COMPLETED
    assert set(functions.invocations) == {"outbox-worker", "outbox-consumer"}


def test_an_order_reaches_the_example_services_consumer_on_its_own_table(
    deployments: dict[str, Deployment],
    endpoint: str,
    as_the_output_says: Callable[[Deployment], Settings],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """examples/orders on the PK/SK table: replay finds the order by the output's key names; orders.consumer gets it.

    The consumer runs from the zip `outbox package` built and Terraform deployed, alone on the path.
    """
    from orders.service import Line, OrderService
    from pynamodb.connection import Connection

    from outbox.cli import main

    deployment = deployments["existing-table"]
    outbox = Outbox.from_settings(as_the_output_says(deployment))
    assert (outbox.layout.hash_key, outbox.layout.range_key) == ("PK", "SK")
    service = OrderService(outbox, Connection(region=deployment.region))
    message_id = service.place_order("o-1", "customer-7", [Line("tea", 2, Decimal("3.10"))])

    # `outbox replay` with the output exported finds the PENDING message on the PK/SK table.
    assert main(["replay", "--dry-run", "--min-age", "0s"]) == 0
    assert f"would send {message_id}" in capsys.readouterr().out

    functions = _deliver_through(deployment, endpoint, outbox, message_id, consumer_from=tmp_path / "consumer")
    assert functions.confirmed == [["o-1", "customer-7", "6.20"]]


def test_a_body_sent_to_the_deployed_dead_letter_queue_by_hand_fails_nothing(
    deployments: dict[str, Deployment], endpoint: str, as_the_output_says: Callable[[Deployment], Settings]
) -> None:
    """Issue #25 through the deployed wiring: the dead-letter function, as its mapping runs it, ends only a moved copy.

    A genuine body read from the main queue and sent to the dead-letter queue leaves the record
    QUEUED; the copy SQS moves there after the queue's maxReceiveCount receives ends it FAILED.
    """
    deployment = deployments["complete"]
    outbox = Outbox.from_settings(as_the_output_says(deployment))
    message = outbox.message({"order": 8}, type="OrderPlaced")
    outbox.transact_write([], message)
    functions = Lambda(deployment, endpoint)
    stream = _stream_runner(deployment, functions, endpoint)
    _until(stream.poll_once, lambda: outbox.get(message.message_id).status != Status.PENDING, "the worker relayed it")
    assert outbox.get(message.message_id).status == Status.QUEUED

    sqs = _client("sqs", endpoint, deployment.region)
    main = deployment.one("aws_sqs_queue", "main")
    dlq = deployment.one("aws_sqs_queue", "dlq")

    def receive_ours() -> list[dict[str, Any]]:
        """One receive of the main queue, this message's copy visible again at once."""
        received = sqs.receive_message(QueueUrl=main["url"], MaxNumberOfMessages=10, VisibilityTimeout=0)
        return [m for m in received.get("Messages", []) if message.message_id in m["Body"]]

    copies = receive_ours()
    (genuine,) = copies
    sqs.send_message(QueueUrl=dlq["url"], MessageBody=genuine["Body"])
    mapping = deployment.one("aws_lambda_event_source_mapping", "dead_letter")
    assert mapping["event_source_arn"] == dlq["arn"]
    dead_letters = SqsRunner(
        sqs, dlq["url"], functions.invoker(mapping["function_arn"]), batch_size=mapping["batch_size"], wait_time_s=1
    )
    _until(dead_letters.poll_once, lambda: not _visible(sqs, dlq["url"]), "the dead-letter function took the copy")
    assert outbox.get(message.message_id).status == Status.QUEUED  # its real copy is still on its way

    max_receives = json.loads(main["redrive_policy"])["maxReceiveCount"]
    for _ in range(max_receives - 1):  # the first receive is above; each ended with no outcome
        assert receive_ours()
    assert not receive_ours()  # this receive moved it to the dead-letter queue
    _until(dead_letters.poll_once, lambda: outbox.get(message.message_id).status == Status.FAILED, "it ended FAILED")


def _visible(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])
