"""The Terraform module wired to the code: one definition of each name, setting and schema, no drift."""

from __future__ import annotations

import importlib
import io
import json
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pynamodb.attributes import TTLAttribute

from outbox import metrics
from outbox.adapters.models import (
    BILLING_MODE,
    HASH_KEY,
    RANGE_KEY,
    RECORD_INDEX,
    RECORD_INDEX_KEYS,
    STREAM_VIEW_TYPE,
    TTL_ATTRIBUTE,
    OutboxEntryModel,
    table_definition,
)
from outbox.adapters.secret import SecretsManagerIdSecret
from outbox.bootstrap import DLQ_MAX_RECEIVE_COUNT
from outbox.compose import Clients, build_id_secret
from outbox.domain.caller import RoleSessions
from outbox.domain.layout import TableLayout
from outbox.settings import MIN_ID_SECRET_CHARS, MIN_ID_SECRET_WINDOW_S, Settings
from tests.infra.terraform import EXAMPLES, MODULE, ROOT, Module, load, plain

FUNCTIONS = {
    "api": "worker.api.handler",
    "worker": "worker.handler.handler",
    "consumer": "worker.consumer.handler",
    "sweeper": "worker.sweeper.handler",
    "dead-letter": "worker.dead_letter.handler",
}
# The functions that send to the queue: the code requires OUTBOX_QUEUE_URL there.
SENDERS = {"worker", "sweeper"}
# ... and the dead-letter function, which ends a record only for a copy SQS moved from that queue.
NEEDS_THE_QUEUE = SENDERS | {"dead-letter"}
FILTER_TEMPLATE = "stream_filter.json.tftpl"
# Where a stream record's image sits, by view type: the worker reads NewImage.
STREAM_VIEWS_WITH_NEW_IMAGE = {"NEW_IMAGE", "NEW_AND_OLD_IMAGES"}


@pytest.fixture(scope="module")
def module() -> Module:
    """The module, parsed."""
    return load(MODULE)


def test_module_layout_is_split_by_concern(module: Module) -> None:
    """terraform-aws-modules layout, Terraform >= 1.11, AWS provider >= 5.100, an example calling it."""
    files = {path.name for path, _ in module.raw}
    expected = {"versions.tf", "variables.tf", "outputs.tf", "dynamodb.tf", "sqs.tf", "lambda.tf", "api.tf"}
    assert expected | {"iam.tf", "alarms.tf", "kms.tf"} <= files
    versions = next(doc for path, doc in module.raw if path.name == "versions.tf")["terraform"][0]
    assert versions["required_version"] == '">= 1.11"'
    # 5.100: the version checked with the id secret's ephemeral password and write-only value (secret.tf).
    assert versions["required_providers"][0]["aws"]["version"] == '">= 5.100"'
    for example in EXAMPLES:
        assert module_call(example)["source"] == "../..", example.name
        (example_versions,) = next(doc for _, doc in load(example).raw if "terraform" in doc)["terraform"]
        assert example_versions["required_providers"][0]["aws"]["version"] == '">= 5.100"', example.name


def test_every_variable_is_typed_and_described(module: Module) -> None:
    """Every variable has a type and a description."""
    assert len(module.variables) >= 30
    for name, spec in module.variables.items():
        assert spec.get("type"), f"variable {name} has no type"
        assert len(spec.get("description", "")) > 10, f"variable {name} has no description"


def module_call(example: Path) -> dict[str, Any]:
    """The example's call of the module, in plain values."""
    (call,) = next(doc for _, doc in load(example).raw if "module" in doc)["module"]
    body: dict[str, Any] = plain(call)["outbox"]
    return body


def value_of(module: Module, expression: str) -> Any:
    """A literal as it is; ``${var.x}`` as its default; ``${local.a.b}`` as that local's entry; key names deployed."""
    if expression.startswith("${var."):
        return module.default(expression)
    if expression in ("${local.hash_key}", "${local.range_key}"):
        return key_name(module, expression)
    match = re.fullmatch(r"\$\{local\.(\w+)\.(\w+)\}", expression)
    return module.locals[match.group(1)][match.group(2)] if match else expression


def index_as_create_table(module: Module, index: dict[str, Any]) -> dict[str, Any]:
    """A Terraform global_secondary_index block as CreateTable's GlobalSecondaryIndexes entry.

    Only on-demand indexes: a block that sets capacity or projects more than keys does not translate.
    """
    assert set(index) <= {"name", "hash_key", "range_key", "projection_type"}, sorted(index)
    return {
        "IndexName": value_of(module, index["name"]),
        "KeySchema": [
            {"AttributeName": value_of(module, index["hash_key"]), "KeyType": "HASH"},
            {"AttributeName": value_of(module, index["range_key"]), "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": index["projection_type"]},
    }


def test_table_matches_the_pynamodb_models(module: Module) -> None:
    """Key schema, attribute types, record index, billing, stream view and TTL attribute come from the models."""
    table = module.resource("aws_dynamodb_table", "this")
    assert table["count"] == "${var.create_table ? 1 : 0}"
    assert module.default("${var.create_table}") is True
    # The key names are the caller's, else the models' names on the module's own table.
    assert (table["hash_key"], table["range_key"]) == ("${local.hash_key}", "${local.range_key}")
    assert (key_name(module, table["hash_key"]), key_name(module, table["range_key"])) == (HASH_KEY, RANGE_KEY)
    definition = table_definition(TableLayout("any"))
    keys = {k["KeyType"]: k["AttributeName"] for k in definition["KeySchema"]}
    assert (keys["HASH"], keys["RANGE"]) == (HASH_KEY, RANGE_KEY) == ("pk", "sk")
    assert {value_of(module, a["name"]): a["type"] for a in table["attribute"]} == {
        a["AttributeName"]: a["AttributeType"] for a in definition["AttributeDefinitions"]
    }
    assert len(table["attribute"]) == len(definition["AttributeDefinitions"]) == 4
    # The record index the sweeper queries: name, keys and keys-only projection as the models declare.
    assert [index_as_create_table(module, i) for i in table["global_secondary_index"]] == (
        definition["GlobalSecondaryIndexes"]
    )
    assert module.locals["record_index"] == {
        "name": RECORD_INDEX,
        "hash_key": RECORD_INDEX_KEYS[0],
        "range_key": RECORD_INDEX_KEYS[1],
    }
    assert table["billing_mode"] == BILLING_MODE == "PAY_PER_REQUEST"
    assert table["stream_enabled"] is True
    assert table["stream_view_type"] == STREAM_VIEW_TYPE
    (ttl_attribute,) = [a.attr_name for a in OutboxEntryModel.get_attributes().values() if isinstance(a, TTLAttribute)]
    assert table["ttl"] == [{"attribute_name": ttl_attribute, "enabled": True}]
    assert table["point_in_time_recovery"] == [{"enabled": True}]
    assert table["server_side_encryption"] == [{"enabled": True, "kms_key_arn": "${aws_kms_key.this.arn}"}]
    assert module.default(table["deletion_protection_enabled"]) is True


def test_key_names_are_dynamodb_attribute_names(module: Module) -> None:
    """hash_key and range_key are strings of 1 to 255 characters (DynamoDB's limit on key names)."""
    for name in ("hash_key", "range_key"):
        variable = module.variables[name]
        assert variable["type"] == "string"
        assert variable["default"] is None  # required on an existing table; main.tf gives the module's own its default
        (validation,) = variable["validation"]
        assert validation["condition"] == (
            f"${{var.{name} == null || try(length(var.{name}) >= 1 && length(var.{name}) <= 255, false)}}"
        )
    assert module.locals["hash_key"] == f'${{coalesce(var.hash_key, "{HASH_KEY}")}}'
    assert module.locals["range_key"] == f'${{coalesce(var.range_key, "{RANGE_KEY}")}}'
    # An existing table's key names are never guessed: the plan stops on the key with one line.
    (lifecycle,) = module.resource("aws_kms_key", "this")["lifecycle"]
    conditions = {p["condition"]: p["error_message"] for p in lifecycle["precondition"]}
    message = conditions["${var.create_table || (var.hash_key != null && var.range_key != null)}"]
    assert message.startswith("create_table = false needs hash_key and range_key")
    assert "\n" not in message


def test_existing_table_is_attached_through_the_locals(module: Module) -> None:
    """create_table = false: the caller's table name, an ARN built for it, its stream; nothing else names the table."""
    locals_ = module.locals
    assert locals_["table_name"] == "${var.create_table ? aws_dynamodb_table.this[0].name : var.table_name}"
    assert locals_["table_arn"] == (
        "${var.create_table ? aws_dynamodb_table.this[0].arn : var.table_name == null ? null : "
        '"arn:${local.partition}:dynamodb:${local.region}:${local.account_id}:table/${var.table_name}"}'
    )
    assert locals_["stream_arn"] == "${var.create_table ? aws_dynamodb_table.this[0].stream_arn : var.table_stream_arn}"
    assert locals_["kms_key_arns"] == (
        "${concat([aws_kms_key.this.arn], var.table_kms_key_arn == null ? [] : [var.table_kms_key_arn])}"
    )
    for name in ("table_name", "table_stream_arn", "table_kms_key_arn"):
        assert module.variables[name]["default"] is None, name
    # Only the table itself and these locals name the created table.
    for path, _ in module.raw:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "aws_dynamodb_table.this" in line:
                assert path.name == "main.tf", (path.name, number)
                assert line.lstrip().startswith(("table_", "stream_")), (path.name, number)
    # The existing table's requirements are documented where a caller sets it, the record index too.
    description = module.variables["table_name"]["description"]
    assert {"NEW_IMAGE", "NEW_AND_OLD_IMAGES", "expires_at", "KEYS_ONLY", *RECORD_INDEX_KEYS} <= set(
        re.findall(r"[A-Z_]{5,}|expires_at|outbox_pk|outbox_sk", description)
    )
    assert f"index {RECORD_INDEX}" in description
    assert "record index" in module.variables["create_table"]["description"]
    # A missing table or stream stops the plan on the key everything else depends on.
    (lifecycle,) = module.resource("aws_kms_key", "this")["lifecycle"]
    conditions = [precondition["condition"] for precondition in lifecycle["precondition"]]
    assert "${var.create_table || (var.table_name != null && var.table_stream_arn != null)}" in conditions
    assert any("strcontains(var.table_stream_arn" in condition for condition in conditions)


def test_stream_mapping_follows_lambda_rules_and_the_shared_filter(module: Module) -> None:
    """Partial batches, bisect, finite retries and age, on-failure queue, the module's filter template."""
    mapping = module.resource("aws_lambda_event_source_mapping", "stream")
    assert mapping["function_name"] == '${local.invoke_targets["worker"]}'  # the function, or its SnapStart alias
    assert mapping["event_source_arn"] == "${local.stream_arn}"
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert mapping["bisect_batch_on_function_error"] is True
    assert mapping["starting_position"] == "TRIM_HORIZON"
    assert 0 <= module.default(mapping["maximum_retry_attempts"]) <= 10_000  # finite: -1 would be forever
    assert 60 <= module.default(mapping["maximum_record_age_in_seconds"]) <= 604_800
    for setting in ("batch_size", "maximum_batching_window_in_seconds", "parallelization_factor"):
        module.default(mapping[setting])  # each a variable with a default
    destination = mapping["destination_config"][0]["on_failure"][0]["destination_arn"]
    assert destination == "${aws_sqs_queue.on_failure.arn}"
    # The filter is the module's own template (it ships with the module), rendered for the table's
    # partition key name; the Python package holds a byte-identical copy for the local runner.
    (pattern,) = [f["pattern"] for f in mapping["filter_criteria"][0]["filter"]]
    (path,) = re.findall(r'templatefile\("\$\{path\.module\}/([^"]+)", \{hash_key = local\.hash_key\}\)', pattern)
    assert pattern.startswith("${jsonencode(jsondecode(templatefile(")
    template = MODULE / path
    assert template == MODULE / FILTER_TEMPLATE
    assert template.read_bytes() == (ROOT / "outbox" / "local" / FILTER_TEMPLATE).read_bytes()
    rendered = json.loads(template.read_text().replace("${hash_key}", "PK"))
    assert rendered["eventName"] == ["INSERT"]
    assert rendered["dynamodb"]["Keys"] == {"PK": {"S": [{"prefix": "OUTBOX#"}]}}
    assert template.read_text().count("${") == 1  # hash_key is its only placeholder


def test_queue_mapping_reports_partial_batches(module: Module) -> None:
    """The consumer's SQS mapping reports partial batch failures."""
    mapping = module.resource("aws_lambda_event_source_mapping", "queue")
    assert mapping["function_name"] == '${local.invoke_targets["consumer"]}'
    assert mapping["event_source_arn"] == "${aws_sqs_queue.main.arn}"
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]


def test_the_dead_letter_queue_feeds_the_dead_letter_function(module: Module) -> None:
    """Invariant 7's backstop: every copy in the DLQ reaches the function that ends its record FAILED."""
    mapping = module.resource("aws_lambda_event_source_mapping", "dead_letter")
    assert mapping["function_name"] == '${local.invoke_targets["dead-letter"]}'
    assert mapping["event_source_arn"] == "${aws_sqs_queue.dlq.arn}"
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]  # what it cannot settle yet comes back
    # Lambda refuses an SQS mapping whose queue's visibility timeout is shorter than the function's timeout.
    dlq = module.resource("aws_sqs_queue", "dlq")
    assert dlq["visibility_timeout_seconds"] == '${6 * local.function_sizes["dead-letter"].timeout}'
    assert module.locals["function_defaults"]["dead-letter"]["timeout"] > 0
    # Polled with no more than its reserved concurrency (Lambda's SQS pollers would start at five).
    assert mapping["scaling_config"] == [
        {"maximum_concurrency": '${local.function_sizes["dead-letter"].reserved_concurrency}'}
    ]
    assert module.locals["function_defaults"]["dead-letter"]["reserved_concurrency"] >= 2
    # It reads and ends message records, and receives from the dead-letter queue (what the mapping
    # needs: receive, delete, the queue's attributes, the key) and changes a copy's visibility; nothing else.
    statements = module.function_policy("dead-letter")["statement"]
    by_resource = {a: s["resources"] for s in statements for a in s["actions"]}
    for action in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes", "ChangeMessageVisibility"):
        assert by_resource[f"sqs:{action}"] == ["${aws_sqs_queue.dlq.arn}"], action
    assert by_resource["kms:Decrypt"] == "${local.kms_key_arns}"
    assert {a for a in by_resource if a.startswith("dynamodb:")} == {"dynamodb:GetItem", "dynamodb:UpdateItem"}
    assert not set(by_resource) & {"sqs:SendMessage", "sqs:PurgeQueue", "kms:GenerateDataKey"}
    assert "dead-letter function" in module.locals["count_alarms"]["messages-failed"]["description"]
    alarm = module.resource("aws_cloudwatch_metric_alarm", "queue_depth")
    assert "dead-letter function" in alarm["alarm_description"]


def handler_of(module: Module, spec: dict[str, Any]) -> str:
    """A function's handler as deployed with the defaults: a literal, or what the variable or local it names gives."""
    handler = spec["handler"]
    if handler == "${local.consumer_handler}":  # no consumer_handler, no consumer_package: the module's zip's consumer
        return str(re.search(r'== null \? "([\w.]+)"', module.locals["consumer_handler"]).group(1))  # type: ignore[union-attr]
    return str(module.default(handler)) if handler.startswith("${var.") else str(handler)


def key_name(module: Module, value: str) -> str:
    """``${local.hash_key}`` or ``${local.range_key}`` deployed with the defaults: the caller's name, else main.tf's."""
    match = re.fullmatch(r"\$\{local\.(hash_key|range_key)\}", value)
    assert match, f"{value!r} is not a key name local"
    (variable, default) = re.fullmatch(r'\$\{coalesce\(var\.(\w+), "(\w+)"\)\}', module.locals[match.group(1)]).groups()
    return str(module.variables[variable]["default"] or default)


def deployed(module: Module, value: str) -> str:
    """An environment value as deployed with the defaults (other references stand in for themselves).

    A main queue's attribute is that attribute as deployed: a variable's default, or six times a
    function's default timeout.
    """
    if value in ("${local.hash_key}", "${local.range_key}"):
        return key_name(module, value)
    match = re.fullmatch(r"\$\{(?:tostring\()?var\.(\w+)\)?\}", value)
    if match:
        return str(module.variables[match.group(1)]["default"])
    queue = re.fullmatch(r"\$\{tostring\(aws_sqs_queue\.main\.(\w+)\)\}", value)
    if queue:
        return deployed(module, str(module.resource("aws_sqs_queue", "main")[queue.group(1)]))
    times = re.fullmatch(r'\$\{(\d+) \* local\.function_sizes\["(\w+)"\]\.timeout\}', value)
    if times:  # no caller's sizes: the module's defaults
        return str(int(times.group(1)) * module.locals["function_defaults"][times.group(2)]["timeout"])
    return value


def test_handlers_and_environment_are_the_codes(module: Module, monkeypatch: pytest.MonkeyPatch) -> None:
    """Handler paths import; every environment name is one the code reads, and the code accepts it."""
    functions = module.locals["functions"]
    assert {name: handler_of(module, spec) for name, spec in functions.items()} == FUNCTIONS
    read = names_the_code_reads(monkeypatch)
    for name, spec in functions.items():
        module_name, attribute = handler_of(module, spec).rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module_name), attribute))
        environment = spec["environment"]
        assert set(environment) <= read, f"{name} sets variables the code never reads"
        # The environment as deployed is one the code accepts, with the keys the models declare.
        values = {key: deployed(module, value) for key, value in environment.items()}
        settings = Settings.from_env(values, require_queue=name in NEEDS_THE_QUEUE)
        assert (settings.hash_key, settings.range_key) == (HASH_KEY, RANGE_KEY)
    # Every function also gets the metrics' namespace and service, names the code reads.
    assert set(module.locals["metrics_environment"]) <= read
    # The consumer also gets OUTBOX_DELIVERY, only when the caller names a delivery function.
    assert module.locals["delivery_environment"] == (
        '${var.delivery == null || var.delivery == "" ? {} : {OUTBOX_DELIVERY = var.delivery}}'
    )
    assert "OUTBOX_DELIVERY" in read
    consumer = {key: deployed(module, value) for key, value in functions["consumer"]["environment"].items()}
    delivery = "orders.consumer:deliver"
    assert Settings.from_env({**consumer, "OUTBOX_DELIVERY": delivery}).delivery == delivery
    assert Settings.from_env({**consumer, "OUTBOX_DELIVERY": ""}).delivery is None
    lambda_function = module.resource("aws_lambda_function", "this")
    assert lambda_function["handler"] == "${each.value.handler}"
    assert lambda_function["environment"] == [
        {
            "variables": "${merge(each.value.environment, local.metrics_environment, "
            'each.key == "consumer" ? local.delivery_environment : {}, '
            'each.key == "api" ? local.api_identity_environment : {}, '
            "contains(local.snap_start_functions, each.key) ? local.eager_init_environment : {})}"
        }
    ]
    assert lambda_function["architectures"] == ["arm64"]
    assert re.fullmatch(r"python3\.1[1-9]", module.default(lambda_function["runtime"]))
    assert lambda_function["tracing_config"] == [{"mode": "Active"}]
    assert lambda_function["kms_key_arn"] == "${aws_kms_key.this.arn}"
    sizes = "local.function_sizes[each.key]"
    assert lambda_function["reserved_concurrent_executions"] == f"${{{sizes}.reserved_concurrency}}"
    assert lambda_function["memory_size"] == f"${{{sizes}.memory_size}}"
    assert lambda_function["timeout"] == f"${{{sizes}.timeout}}"
    # The dead-letter function came after 0.1.0: a caller's functions map without it keeps its default size.
    # Every function has its defaults in the module; the caller's map may name any of them and any
    # of their settings (each optional), merged over the defaults (0.1.0's full maps still fit).
    defaults = module.locals["function_defaults"]
    assert set(defaults) == set(FUNCTIONS)
    for name, sizes in defaults.items():
        assert set(sizes) == {"memory_size", "timeout", "reserved_concurrency"}, name
    variable = module.variables["functions"]
    assert variable["default"] == {}
    assert variable["type"] == (
        "${map(object({memory_size = optional(number), timeout = optional(number), "
        "reserved_concurrency = optional(number)}))}"
    )
    assert module.locals["function_sizes"] == (
        "${{for name, defaults in local.function_defaults : name => merge(defaults, "
        "{for setting, value in try(var.functions[name], {}) : setting => value if value != null})}}"
    )
    log_group = module.resource("aws_cloudwatch_log_group", "function")
    assert log_group["name"] == "/aws/lambda/${var.name}-${each.key}"
    assert lambda_function["function_name"] == "${var.name}-${each.key}"
    assert module.default(log_group["retention_in_days"]) > 0


def names_the_code_reads(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every environment name Settings, logging and metrics look up."""

    class Recording(dict[str, str]):
        def get(self, key: str, default: Any = None) -> Any:
            seen.add(key)
            return super().get(key, default)

    seen: set[str] = set()
    Settings.from_env(Recording(OUTBOX_TABLE_NAME="t"))
    recording = Recording()
    monkeypatch.setattr("os.environ", recording)
    from outbox.logs import configure_logging

    configure_logging()
    metrics.emit_metrics({"x": 1}, stream=io.StringIO())
    return seen


def settings_as_deployed(module: Module, name: str) -> Settings:
    """The settings a function reads from its environment, deployed with the module's defaults."""
    environment = module.locals["functions"][name]["environment"]
    return Settings.from_env({key: deployed(module, value) for key, value in environment.items()})


def test_the_consumer_honours_the_queues_redrive(module: Module) -> None:
    """OUTBOX_MAX_RECEIVE_COUNT is the main queue's maxReceiveCount: the last receive ends FAILED, not in the DLQ."""
    environment = module.locals["functions"]["consumer"]["environment"]
    assert environment["OUTBOX_MAX_RECEIVE_COUNT"] == "${tostring(var.dlq_max_receive_count)}"
    assert "maxReceiveCount = var.dlq_max_receive_count" in module.resource("aws_sqs_queue", "main")["redrive_policy"]
    settings = settings_as_deployed(module, "consumer")
    assert settings.max_receive_count == module.variables["dlq_max_receive_count"]["default"]
    assert settings.max_delivery_attempts == module.variables["max_delivery_attempts"]["default"]


def test_the_sweeper_is_deployed_as_the_code_expects(module: Module) -> None:
    """The worker's package, the main queue, its settings from variables, one sweep at a time."""
    sweeper = module.locals["functions"]["sweeper"]
    assert handler_of(module, sweeper) == "worker.sweeper.handler"
    packages = module.locals["function_packages"]
    assert packages["sweeper"] == packages["worker"]
    environment = sweeper["environment"]
    assert environment["OUTBOX_QUEUE_URL"] == module.locals["functions"]["worker"]["environment"]["OUTBOX_QUEUE_URL"]
    assert environment["OUTBOX_QUEUE_URL"] == "${aws_sqs_queue.main.url}"
    assert environment["OUTBOX_SWEEP_MIN_AGE_SECONDS"] == "${tostring(var.sweep_min_age_seconds)}"
    # The worker checks entries older than the sweeper's minimum age before sending them again.
    worker_environment = module.locals["functions"]["worker"]["environment"]
    assert worker_environment["OUTBOX_SWEEP_MIN_AGE_SECONDS"] == environment["OUTBOX_SWEEP_MIN_AGE_SECONDS"]
    # After a stream loss the worker trusts clocks only this far (its group order); the code's default agrees.
    assert worker_environment["OUTBOX_MAX_CLOCK_SKEW_MS"] == "${tostring(var.max_clock_skew_ms)}"
    assert settings_as_deployed(module, "worker").clock_skew == Settings(table_name="t").clock_skew
    assert environment["OUTBOX_MAX_RELAY_ATTEMPTS"] == "${tostring(var.max_relay_attempts)}"
    # Until the table keeps its own bucket count, the sweeper must walk every bucket the API writes.
    assert environment["OUTBOX_BUCKETS"] == module.locals["functions"]["api"]["environment"]["OUTBOX_BUCKETS"]
    settings = settings_as_deployed(module, "sweeper")
    assert settings.sweep_min_age.total_seconds() == module.variables["sweep_min_age_seconds"]["default"] == 300
    assert settings.buckets == module.variables["buckets"]["default"]
    # What tells a message in flight with no copy left: the main queue's own retention and visibility timeout.
    assert environment["OUTBOX_QUEUE_RETENTION_SECONDS"] == "${tostring(aws_sqs_queue.main.message_retention_seconds)}"
    assert environment["OUTBOX_QUEUE_VISIBILITY_SECONDS"] == (
        "${tostring(aws_sqs_queue.main.visibility_timeout_seconds)}"
    )
    assert settings.queue_retention.total_seconds() == module.variables["message_retention_seconds"]["default"]
    consumer_timeout = module.locals["function_defaults"]["consumer"]["timeout"]
    assert settings.queue_visibility.total_seconds() == 6 * consumer_timeout
    assert settings.queue_visibility == Settings(table_name="t").queue_visibility  # the code's default agrees
    assert settings.queue_retention == Settings(table_name="t").queue_retention
    # Two sweeps never run at once: reserved concurrency 1, and the variable refuses anything else.
    defaults = module.locals["function_defaults"]
    assert defaults["sweeper"]["reserved_concurrency"] == 1
    assert 0 < defaults["sweeper"]["timeout"] <= 900
    conditions = [v["condition"] for v in module.variables["functions"]["validation"]]
    assert '${try(coalesce(var.functions["sweeper"].reserved_concurrency, 1), 1) == 1}' in conditions
    # The record index it queries is the one the table declares.
    (query,) = [
        s for s in module.data["aws_iam_policy_document"]["sweeper"]["statement"] if "dynamodb:Query" in s["actions"]
    ]
    assert query["actions"] == ["dynamodb:Query"]
    assert query["resources"] == ["${local.table_arn}/index/${local.record_index.name}"]
    assert module.locals["record_index"]["name"] == RECORD_INDEX


def test_the_schedule_runs_the_sweeper_through_a_role_that_can_do_nothing_else(module: Module) -> None:
    """EventBridge Scheduler invokes the sweeper every sweep_schedule; its role may invoke only that function."""
    schedule = module.resource("aws_scheduler_schedule", "sweep")
    assert schedule["schedule_expression"] == "${var.sweep_schedule}"
    assert module.variables["sweep_schedule"]["default"] == "rate(5 minutes)"
    assert schedule["state"] == "ENABLED"
    assert schedule["flexible_time_window"] == [{"mode": "OFF"}]
    (target,) = schedule["target"]
    assert target["arn"] == '${aws_lambda_function.this["sweeper"].arn}'
    assert target["role_arn"] == "${aws_iam_role.scheduler.arn}"
    (retry,) = target["retry_policy"]
    assert 60 <= retry["maximum_event_age_in_seconds"] <= 3600
    assert 0 < retry["maximum_retry_attempts"] <= 10
    # The role: assumed by the scheduler of this account only, one statement, one action, one function.
    documents = module.data["aws_iam_policy_document"]
    (trust,) = documents["assume_scheduler"]["statement"]
    assert trust["actions"] == ["sts:AssumeRole"]
    assert trust["principals"] == [{"type": "Service", "identifiers": ["scheduler.amazonaws.com"]}]
    assert trust["condition"] == [
        {"test": "StringEquals", "variable": "aws:SourceAccount", "values": ["${local.account_id}"]}
    ]
    role = module.resource("aws_iam_role", "scheduler")
    assert role["assume_role_policy"] == "${data.aws_iam_policy_document.assume_scheduler.json}"
    (statement,) = documents["scheduler"]["statement"]
    assert statement["actions"] == ["lambda:InvokeFunction"]
    assert statement["resources"] == [target["arn"]]
    assert statement.get("effect", "Allow") == "Allow"
    policy = module.resource("aws_iam_role_policy", "scheduler")
    assert (policy["role"], policy["policy"]) == (
        "${aws_iam_role.scheduler.id}",
        "${data.aws_iam_policy_document.scheduler.json}",
    )
    # Nothing else is attached to it.
    for attachment in module.resources.get("aws_iam_role_policy_attachment", {}).values():
        assert "aws_iam_role.scheduler" not in attachment["role"]
    for name, other in module.resources["aws_iam_role_policy"].items():
        assert name == "scheduler" or "aws_iam_role.scheduler" not in other["role"]
    # Lambda does not retry a failed sweep nor keep a stale one: the next run is the retry.
    invoke = module.resource("aws_lambda_function_event_invoke_config", "sweeper")
    assert invoke["function_name"] == '${aws_lambda_function.this["sweeper"].function_name}'
    assert invoke["maximum_retry_attempts"] == 0
    assert invoke["maximum_event_age_in_seconds"] <= module.locals["function_defaults"]["sweeper"]["timeout"]
    # The schedule expression the variable accepts.
    (validation,) = module.variables["sweep_schedule"]["validation"]
    (regex,) = re.findall(r'regex\("([^"]+)"', validation["condition"])
    pattern = re.compile(regex.replace("\\\\", "\\"))
    for good in ("rate(5 minutes)", "rate(1 hour)", "cron(0/5 * * * ? *)"):
        assert pattern.fullmatch(good), good
    for bad in ("5 minutes", "every(5 minutes)", "rate 5 minutes"):
        assert not pattern.fullmatch(bad), bad


def test_every_function_gets_the_key_names(module: Module) -> None:
    """OUTBOX_HASH_KEY and OUTBOX_RANGE_KEY are the table's key names in every function."""
    for name, spec in module.locals["functions"].items():
        environment = spec["environment"]
        assert environment["OUTBOX_HASH_KEY"] == "${local.hash_key}", name
        assert environment["OUTBOX_RANGE_KEY"] == "${local.range_key}", name
        assert environment["OUTBOX_TABLE_NAME"] == "${local.table_name}", name


def test_the_consumer_is_the_callers(module: Module) -> None:
    """The consumer's handler and zip come from variables; the package has no path into this repository."""
    consumer = module.locals["functions"]["consumer"]
    assert consumer["handler"] == "${local.consumer_handler}"
    assert module.variables["consumer_handler"]["default"] == "auto"
    # Without a handler of the caller's: the outbox's consumer of the zip it runs from (a zip built by
    # `outbox package` holds the library, not the repository's worker/ entry points).
    default, library = FUNCTIONS["consumer"], "outbox.lambda_consumer.handler"
    assert module.locals["consumer_handler"] == (
        '${var.consumer_handler == "auto" ? '
        f'(var.consumer_package == null ? "{default}" : "{library}") : var.consumer_handler}}'
    )
    assert module.variables["consumer_package"]["default"] is None
    assert module.locals["function_packages"] == {
        "api": "${var.lambda_package}",
        "worker": "${var.lambda_package}",
        "consumer": "${coalesce(var.consumer_package, var.lambda_package)}",
        "sweeper": "${var.lambda_package}",
        "dead-letter": "${var.lambda_package}",
    }
    assert set(module.locals["function_packages"]) == set(FUNCTIONS)
    lambda_function = module.resource("aws_lambda_function", "this")
    assert lambda_function["filename"] == "${local.function_packages[each.key]}"
    assert lambda_function["source_code_hash"] == "${filebase64sha256(local.function_packages[each.key])}"
    package = module.variables["lambda_package"]
    assert "default" not in package  # required: the module may be called from any repository
    assert package["nullable"] is False
    # Nothing the module reads lies outside it (the filter template ships inside; no ../../build).
    for path, _ in module.raw:
        assert "${path.module}/.." not in path.read_text(), path.name
    # delivery is "package.module:function" when set.
    (validation,) = module.variables["delivery"]["validation"]
    assert module.variables["delivery"]["default"] is None
    (regex,) = re.findall(r'regex\("([^"]+)"', validation["condition"])
    pattern = re.compile(regex.replace("\\\\", "\\"))
    assert pattern.fullmatch("orders.consumer:deliver")
    assert pattern.fullmatch("deliver_module:deliver")
    for wrong in ("orders.consumer.deliver", "orders.consumer:", ":deliver", "orders consumer:deliver"):
        assert not pattern.fullmatch(wrong), wrong


def test_dlq_receives_exceed_the_consumers_attempts(module: Module) -> None:
    """The DLQ takes a copy only after the consumer's attempt budget is spent."""
    main = module.resource("aws_sqs_queue", "main")
    redrive = main["redrive_policy"]
    assert "aws_sqs_queue.dlq.arn" in redrive
    assert "var.dlq_max_receive_count" in redrive
    receives = module.variables["dlq_max_receive_count"]["default"]
    assert receives == DLQ_MAX_RECEIVE_COUNT > module.variables["max_delivery_attempts"]["default"]
    (precondition,) = main["lifecycle"][0]["precondition"]
    assert precondition["condition"] == "${var.dlq_max_receive_count > var.max_delivery_attempts}"
    assert main["fifo_queue"] == "${var.fifo}"
    assert module.resource("aws_sqs_queue", "dlq")["fifo_queue"] == "${var.fifo}"


def test_everything_at_rest_uses_the_customer_managed_key(module: Module) -> None:
    """Queues and log groups use the module's rotating key."""
    key = module.resource("aws_kms_key", "this")
    assert key["enable_key_rotation"] is True
    for name, queue in module.resources["aws_sqs_queue"].items():
        assert queue["kms_master_key_id"] == "${aws_kms_key.this.arn}", name
    for name, group in module.resources["aws_cloudwatch_log_group"].items():
        assert group["kms_key_id"] == "${aws_kms_key.this.arn}", name
        assert group["retention_in_days"] == "${var.log_retention_days}", name


def test_api_routes_are_all_authorised(module: Module) -> None:
    """Both routes need IAM or JWT (never NONE); access logs and throttling are on."""
    routes = module.resource("aws_apigatewayv2_route", "this")
    assert set(module.locals["routes"]) == {"POST /messages", "GET /messages/{id}"}
    assert routes["for_each"] == "${local.api_routes}"
    assert module.locals["api_routes"] == "${var.create_api ? local.routes : {}}"
    assert routes["route_key"] == "${each.key}"
    assert routes["authorization_type"] == "${var.authorization}"
    assert module.variables["authorization"]["default"] == "AWS_IAM"
    (validation,) = module.variables["authorization"]["validation"]
    assert validation["condition"] == '${contains(["AWS_IAM", "JWT"], var.authorization)}'  # never NONE
    assert module.resource("aws_apigatewayv2_authorizer", "jwt")["authorizer_type"] == "JWT"
    integration = module.resource("aws_apigatewayv2_integration", "api")
    assert integration["payload_format_version"] == "2.0"
    assert integration["integration_uri"] == (  # the function, or its SnapStart alias
        '${var.snap_start ? aws_lambda_alias.live["api"].invoke_arn : aws_lambda_function.this["api"].invoke_arn}'
    )
    stage = module.resource("aws_apigatewayv2_stage", "default")
    assert stage["access_log_settings"][0]["destination_arn"] == "${aws_cloudwatch_log_group.api_access[0].arn}"
    settings = stage["default_route_settings"][0]
    assert settings["throttling_rate_limit"] == "${var.api_throttling_rate_limit}"
    assert settings["throttling_burst_limit"] == "${var.api_throttling_burst_limit}"
    permission = module.resource("aws_lambda_permission", "api")
    assert permission["source_arn"] == "${aws_apigatewayv2_api.this[0].execution_arn}/*/${each.value}"


def test_alarms_cover_lag_failures_and_errors(module: Module) -> None:
    """Iterator age, DLQ and on-failure depth, every function's errors (the sweeper's too) and the code's metrics."""
    alarms = module.resources["aws_cloudwatch_metric_alarm"]
    assert alarms["iterator_age"]["metric_name"] == "IteratorAge"
    assert alarms["iterator_age"]["dimensions"] == {
        "FunctionName": '${aws_lambda_function.this["worker"].function_name}'
    }
    assert alarms["queue_depth"]["for_each"] == {
        "dlq": "${aws_sqs_queue.dlq.name}",
        "on-failure": "${aws_sqs_queue.on_failure.name}",
    }
    assert alarms["function_errors"]["for_each"] == "${local.deployed_functions}"
    assert "sweeper" in module.locals["functions"]
    assert "sweeper" in alarms["function_errors"]["alarm_description"]  # its own runbook line
    assert module.locals["alarm_actions"] == ["${var.alarm_topic_arn}"]
    assert "default" not in module.variables["alarm_topic_arn"]
    for name, alarm in alarms.items():
        assert alarm["alarm_actions"] == "${local.alarm_actions}", name
        assert alarm["ok_actions"] == "${local.alarm_actions}", name
        assert alarm["treat_missing_data"] == ("breaching" if name == "sweeper_silent" else "notBreaching"), name


def test_a_sweeper_that_stops_running_is_alarmed(module: Module) -> None:
    """No invocation of the sweeper for a while (schedule off or broken) alarms, since it emits nothing then."""
    silent = module.resources["aws_cloudwatch_metric_alarm"]["sweeper_silent"]
    assert (silent["namespace"], silent["metric_name"]) == ("AWS/Lambda", "Invocations")
    assert silent["dimensions"] == {"FunctionName": '${aws_lambda_function.this["sweeper"].function_name}'}
    assert (silent["statistic"], silent["threshold"], silent["comparison_operator"]) == ("Sum", 1, "LessThanThreshold")
    assert silent["treat_missing_data"] == "breaching"  # no data is exactly the failure
    assert silent["period"] == "${var.sweeper_silence_alarm_seconds}"
    default = module.variables["sweeper_silence_alarm_seconds"]["default"]
    assert default % 60 == 0
    assert default > 300
    assert "outbox sweep" in silent["alarm_description"]


def test_metric_alarms_watch_what_the_code_emits(module: Module) -> None:
    """Invariant 7 (counted and alarmed): quarantines, consumer failures and sweep failures alarm on any count."""
    locals_ = module.locals
    # The alarms watch the namespace and Service dimension every function writes under (issue #26).
    assert (locals_["metrics_namespace"], locals_["metrics_dimensions"]) == (
        "${var.metrics_namespace}",
        {"Service": "${local.metrics_service}"},
    )
    assert locals_["metrics_environment"] == {
        "OUTBOX_METRICS_NAMESPACE": "${var.metrics_namespace}",
        "OUTBOX_SERVICE": "${local.metrics_service}",
    }
    assert locals_["metrics_service"] == "${coalesce(var.metrics_service, var.name)}"
    # With the defaults, the code's own defaults.
    assert module.default("${var.metrics_namespace}") == metrics.NAMESPACE
    assert module.default("${var.metrics_service}") is None
    assert {"Service": module.default("${var.name}")} == metrics.DIMENSIONS
    alarms = module.resources["aws_cloudwatch_metric_alarm"]
    count = alarms["count"]
    assert count["for_each"] == "${local.count_alarms}"
    assert {spec["metric"] for spec in locals_["count_alarms"].values()} == {
        metrics.MESSAGES_QUARANTINED,
        metrics.MESSAGES_FAILED,
        metrics.SWEEP_FAILURES,
        metrics.MESSAGES_RESENT,  # invariant 2: a message in flight with no copy left is named by an alarm
    }
    assert count["metric_name"] == "${each.value.metric}"
    assert (count["namespace"], count["dimensions"]) == ("${local.metrics_namespace}", "${local.metrics_dimensions}")
    assert (count["statistic"], count["threshold"], count["comparison_operator"]) == ("Sum", 0, "GreaterThanThreshold")
    assert count["alarm_description"] == "${each.value.description}"
    for name, spec in locals_["count_alarms"].items():
        assert re.search(r"`outbox replay|next sweep", spec["description"]), (name, "no runbook line")

    # The oldest PENDING age: the sweeper's true one too, above what the sweeper fixes on its own.
    oldest = alarms["oldest_pending"]
    assert oldest["metric_name"] == metrics.OLDEST_PENDING_AGE
    assert (oldest["namespace"], oldest["dimensions"]) == ("${local.metrics_namespace}", "${local.metrics_dimensions}")
    assert oldest["statistic"] == "Maximum"
    assert oldest["threshold"] == "${var.oldest_pending_alarm_seconds}"
    threshold = module.variables["oldest_pending_alarm_seconds"]["default"]
    min_age = module.variables["sweep_min_age_seconds"]["default"]
    period = 300  # rate(5 minutes), the default sweep_schedule
    assert module.variables["sweep_schedule"]["default"] == "rate(5 minutes)"
    assert threshold >= min_age + period
    assert oldest["period"] >= period  # at least one sweeper datapoint per period
    assert oldest["evaluation_periods"] == 1
    (precondition,) = oldest["lifecycle"][0]["precondition"]
    assert precondition["condition"] == "${var.oldest_pending_alarm_seconds > var.sweep_min_age_seconds}"


def test_outputs_name_what_an_operator_needs(module: Module) -> None:
    """URLs, names and the roles a caller's consumer code extends are outputs; the API's URL only with the API."""
    assert {"api_url", "table_name", "queue_url", "dlq_url", "on_failure_queue_url", "function_names"} <= set(
        module.outputs
    )
    # The table created or attached to, through the locals; the roles a caller's consumer code extends.
    assert module.outputs["table_name"]["value"] == "${local.table_name}"
    assert module.outputs["table_stream_arn"]["value"] == "${local.stream_arn}"
    assert module.outputs["role_names"]["value"] == "${{for key, role in aws_iam_role.function : key => role.name}}"
    assert module.outputs["api_url"]["value"] == "${one(aws_apigatewayv2_stage.default[*].invoke_url)}"


class _Recording(dict[str, str]):
    """An environment that remembers every name looked up in it."""

    def __init__(self, seen: set[str], **values: str) -> None:
        super().__init__(values)
        self.seen = seen

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.seen.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.seen.add(str(key))
        return super().__contains__(key)


class _NoStoredBuckets:
    def stored_buckets(self) -> None:
        return None


def names_the_commands_read(monkeypatch: pytest.MonkeyPatch) -> tuple[set[str], set[str]]:
    """The OUTBOX_* names and AWS_REGION that ``outbox replay`` and ``outbox sweep`` look up: (replay's, sweep's).

    replay reads its flags' defaults, its bucket count and the region; sweep reads Settings.from_env
    (outbox/cli.py: _sweep), every setting there is, and the region.
    """
    from outbox import replay_cli
    from outbox.cli import aws_region, build_parser

    def wanted(names: set[str]) -> set[str]:
        return {name for name in names if name.startswith("OUTBOX_") or name == "AWS_REGION"}

    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    replay: set[str] = set()
    monkeypatch.setattr("os.environ", _Recording(replay, OUTBOX_BUCKETS="16", AWS_REGION="eu-west-1", **credentials))
    args = build_parser().parse_args(["replay", "--dry-run"])
    replay_cli._buckets(args, _NoStoredBuckets())  # type: ignore[arg-type]
    aws_region(args.region)
    sweep: set[str] = set()
    monkeypatch.setattr("os.environ", _Recording(sweep, AWS_REGION="eu-west-1", **credentials))
    aws_region(None)
    Settings.from_env(_Recording(sweep, OUTBOX_TABLE_NAME="t", OUTBOX_QUEUE_URL="q"), require_queue=True)
    metrics.emit_metrics({"x": 1}, stream=io.StringIO())  # a sweep counts what it did
    return wanted(replay), wanted(sweep)


def test_the_environment_output_is_what_the_commands_read(module: Module, monkeypatch: pytest.MonkeyPatch) -> None:
    """Output environment: every name replay reads, the sweeper's own settings for sweep, as the functions have them.

    Exported, it points ``outbox replay`` and ``outbox sweep`` at the deployment exactly: the key
    names of a PK/SK table included (without them replay used pk and found nothing).
    """
    environment = module.outputs["environment"]["value"]
    replay, sweep = names_the_commands_read(monkeypatch)
    assert {"OUTBOX_TABLE_NAME", "OUTBOX_QUEUE_URL", "OUTBOX_BUCKETS", "OUTBOX_HASH_KEY", "AWS_REGION"} <= replay
    assert replay <= set(environment), replay - set(environment)
    # `outbox sweep` runs the deployed sweeper's code: it needs the sweeper's settings, all of them.
    sweeper = set(module.locals["functions"]["sweeper"]["environment"]) - {"LOG_LEVEL"}
    assert sweeper <= set(environment), sweeper - set(environment)
    # Nothing the commands never read; each value is the one every function that sets the name has.
    assert set(environment) <= replay | sweep, set(environment) - replay - sweep
    assert environment["AWS_REGION"] == "${local.region}"
    for name, value in environment.items():
        for function, spec in module.locals["functions"].items():
            assert spec["environment"].get(name, value) == value, (name, function)
    # As deployed with the defaults, the settings are the sweeper's own.
    values = {name: deployed(module, value) for name, value in environment.items()}
    assert Settings.from_env(values) == replace(settings_as_deployed(module, "sweeper"), region="${local.region}")
    assert values["OUTBOX_RETENTION_DAYS"] == deployed(module, "${tostring(var.retention_days)}")


def test_iam_policies_name_no_wildcard_action_or_resource(module: Module) -> None:
    """No '*' action or resource in any role policy; the key policy's '*' is the key itself."""
    documents = module.data["aws_iam_policy_document"]
    assert {"api", "worker", "consumer", "sweeper", "assume_lambda", "kms"} <= set(documents)
    for name, document in documents.items():
        for statement in document["statement"]:
            for action in statement.get("actions", []):
                assert action != "*", name
                assert not action.endswith(":*"), (name, action)
            resources = statement.get("resources", [])
            if name == "kms":
                # In a key policy "*" means this key and nothing else; no other resource may appear.
                assert resources == ["*"], statement
            elif name == "queue":
                # A queue's own policy: the queue it is attached to (named, not referenced: no cycle).
                assert resources == ["${local.queue_arns[each.key]}"], statement
            elif name == "table_policy":
                # The table's and the stream's own policies: that table (and its indexes), that stream.
                assert resources == "${each.value.resources}", statement
            elif resources == "${local.kms_key_arns}":
                # The module's key and, for an existing table, the key it is encrypted with.
                assert all(action.startswith("kms:") for action in statement["actions"]), (name, statement)
            else:
                assert "*" not in resources, (name, statement)
                for resource in resources:
                    # A resource of this module, or the table (this module's or the caller's).
                    assert resource.startswith(("${aws_", "${local.table_arn}", "${local.stream_arn}")), (
                        name,
                        resource,
                    )
    roles = module.resource("aws_iam_role_policy", "function")
    assert roles["policy"] == "${local.function_policies[each.key]}"
    assert set(module.locals["function_policies"]) == set(FUNCTIONS)


def test_readme_documents_the_deployment() -> None:
    """The README's deploy section covers package, apply, outputs, replay and teardown."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Deploy to AWS") :]
    for needle in ("make package", "terraform apply", "terraform output", "outbox replay", "terraform destroy"):
        assert needle in section, needle


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.name for example in EXAMPLES])
def test_example_passes_the_required_variables(example: Path) -> None:
    """Each example passes every variable without a default, and only variables the module has."""
    module = load(MODULE)
    required = {name for name, spec in module.variables.items() if "default" not in spec}
    assert {"lambda_package", "alarm_topic_arn"} <= required
    call = module_call(example)
    assert required <= set(call), required - set(call)
    assert set(call) - {"source"} <= set(module.variables)
    assert (example / "main.tf").exists()


def test_existing_table_example_meets_what_the_module_requires() -> None:
    """The example attaches to its own table: keys, record index, stream view, TTL and key passed as the module asks."""
    example = load(MODULE / "examples" / "existing-table")
    call = module_call(MODULE / "examples" / "existing-table")
    (name,) = example.resources["aws_dynamodb_table"]
    table = example.resource("aws_dynamodb_table", name)
    assert call["create_table"] is False
    assert call["table_name"] == f"${{aws_dynamodb_table.{name}.name}}"
    assert call["table_stream_arn"] == f"${{aws_dynamodb_table.{name}.stream_arn}}"
    assert call["table_kms_key_arn"] == table["server_side_encryption"][0]["kms_key_arn"]
    assert (call["hash_key"], call["range_key"]) == (table["hash_key"], table["range_key"]) == ("PK", "SK")
    assert {a["name"]: a["type"] for a in table["attribute"]} == {
        "PK": "S",
        "SK": "S",
        **dict.fromkeys(RECORD_INDEX_KEYS, "S"),
    }
    # The record index the sweeper needs, exactly as the models declare it.
    assert [index_as_create_table(example, i) for i in table["global_secondary_index"]] == (
        table_definition(TableLayout("any", "PK", "SK"))["GlobalSecondaryIndexes"]
    )
    assert table["stream_enabled"] is True
    assert table["stream_view_type"] in STREAM_VIEWS_WITH_NEW_IMAGE
    assert table["ttl"] == [{"attribute_name": TTL_ATTRIBUTE, "enabled": True}]
    # A caller's own consumer: its zip and its delivery function.
    assert re.fullmatch(r"\w+(\.\w+)*:\w+", call["delivery"])
    assert call["consumer_package"] == "${var.consumer_package}"


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.name for example in EXAMPLES])
def test_example_alarm_topic_uses_a_key_cloudwatch_may_use(example: Path) -> None:
    """alias/aws/sns would drop every alarm: the topic's key is the example's own, open to CloudWatch."""
    parsed = load(example)
    topic = parsed.resource("aws_sns_topic", "alarms")
    assert topic["kms_master_key_id"] == "${aws_kms_key.alarms.arn}"
    key = parsed.resource("aws_kms_key", "alarms")
    assert key["enable_key_rotation"] is True
    assert 'Principal = {Service = "cloudwatch.amazonaws.com"}' in key["policy"]
    assert module_call(example)["alarm_topic_arn"] == "${aws_sns_topic.alarms.arn}"


def test_local_stack_runs_the_mappings_as_deployed(module: Module) -> None:
    """The local stream and SQS runners use the deployed mappings' defaults (batch, retries, concurrency)."""
    from outbox.local.stack import StackConfig

    local = StackConfig()
    variables = module.variables
    assert local.batch_size == variables["stream_batch_size"]["default"]
    assert local.maximum_retry_attempts == variables["stream_maximum_retry_attempts"]["default"]
    assert local.consumers == variables["consumer_maximum_concurrency"]["default"]


def test_the_api_requires_a_principal_and_reads_its_id_secret_from_secrets_manager(
    module: Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OUTBOX_REQUIRE_PRINCIPAL=true on the API only; the id secret's ARN, never its value, in its environment."""
    functions = module.locals["functions"]
    assert functions["api"]["environment"]["OUTBOX_REQUIRE_PRINCIPAL"] == "true"
    assert settings_as_deployed(module, "api").require_principal
    for name in set(FUNCTIONS) - {"api"}:
        assert "OUTBOX_REQUIRE_PRINCIPAL" not in functions[name]["environment"], name
    # The module no longer takes the secret's value: nothing sensitive in a variable, the state or the environment.
    assert "id_secret" not in module.variables
    assert not [name for name, spec in module.variables.items() if spec.get("sensitive")]
    identity = module.locals["api_identity_environment"]
    assert identity == {
        "OUTBOX_ID_SECRET_ARN": "${aws_secretsmanager_secret_version.id.secret_id}",
        "OUTBOX_ID_SECRET_WINDOW_SECONDS": "${tostring(var.id_secret_rotation_window_seconds)}",
        "OUTBOX_ROLE_SESSIONS": "${var.role_sessions}",
    }
    assert not any("OUTBOX_ID_SECRET" in str(spec["environment"]) for spec in functions.values())
    api = {key: deployed(module, value) for key, value in functions["api"]["environment"].items()}
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:outbox-id-secret-AbCdEf"
    as_deployed = {
        **api,
        "OUTBOX_ID_SECRET_ARN": arn,
        "OUTBOX_ID_SECRET_WINDOW_SECONDS": str(module.variables["id_secret_rotation_window_seconds"]["default"]),
        "OUTBOX_ROLE_SESSIONS": module.variables["role_sessions"]["default"],
    }
    settings = Settings.from_env(as_deployed)
    assert (settings.id_secret_arn, settings.id_secret, settings.role_sessions) == (arn, None, RoleSessions.SHARED)
    assert settings.id_secret_window == timedelta(days=1)
    assert isinstance(build_id_secret(settings, Clients("eu-west-1")), SecretsManagerIdSecret)
    assert set(identity) <= names_the_code_reads(monkeypatch)
    # The variables' checks are the code's: what Terraform accepts, Settings accepts.
    window = module.variables["id_secret_rotation_window_seconds"]["validation"][0]["condition"]
    assert window == (
        f"${{var.id_secret_rotation_window_seconds == 0 || var.id_secret_rotation_window_seconds >= "
        f"{MIN_ID_SECRET_WINDOW_S}}}"
    )
    assert (
        'contains(["shared", "apart"], var.role_sessions)'
        in module.variables["role_sessions"]["validation"][0]["condition"]
    )
    assert {value.value for value in RoleSessions} == {"shared", "apart"}


def test_the_id_secret_is_generated_by_secrets_manager_write_only_and_encrypted_with_the_modules_key(
    module: Module,
) -> None:
    """The value comes from an ephemeral random password into a write-only argument: in no plan, state or variable."""
    secret = module.resource("aws_secretsmanager_secret", "id")
    assert secret["kms_key_id"] == "${aws_kms_key.this.arn}"
    assert secret["name_prefix"] == "${var.name}-id-secret-"  # a destroyed one waits out its recovery window
    version = module.resource("aws_secretsmanager_secret_version", "id")
    assert version["secret_id"] == "${aws_secretsmanager_secret.id.id}"
    assert version["secret_string_wo"] == "${ephemeral.aws_secretsmanager_random_password.id.random_password}"
    assert version["secret_string_wo_version"] == "${var.id_secret_version}"
    assert "secret_string" not in version
    assert "secret_binary" not in version
    (ephemeral,) = [doc["ephemeral"] for _, doc in module.raw if "ephemeral" in doc]
    password = plain(ephemeral[0])["aws_secretsmanager_random_password"]["id"]
    assert password["password_length"] >= MIN_ID_SECRET_CHARS
    versions = next(doc for path, doc in module.raw if path.name == "versions.tf")["terraform"][0]
    assert versions["required_version"] == '">= 1.11"'  # write-only arguments
    assert module.outputs["id_secret_arn"]["value"] == "${aws_secretsmanager_secret.id.arn}"
    # Only the API reads it, through its own statement on that secret alone; the key decrypts it.
    for name in FUNCTIONS:
        statements = module.function_policy(name)["statement"]
        reads = [s for s in statements if "secretsmanager:GetSecretValue" in s["actions"]]
        if name == "api":
            assert reads == [
                {
                    "sid": "ReadTheIdSecret",
                    "actions": ["secretsmanager:GetSecretValue"],
                    "resources": ["${aws_secretsmanager_secret.id.arn}"],
                }
            ]
            assert any("kms:Decrypt" in s["actions"] and s["resources"] == "${local.kms_key_arns}" for s in statements)
        else:
            assert reads == [], name
            assert not any(a.startswith("secretsmanager:") for s in statements for a in s["actions"]), name


def _tls_denial(statement: dict[str, Any]) -> bool:
    (condition,) = statement["condition"]
    return (
        statement["effect"] == "Deny"
        and condition == {"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}
        and statement["principals"][0]["identifiers"] == ["*"]
    )


def test_every_queue_refuses_plain_http_and_only_the_relays_send_to_the_main_one(module: Module) -> None:
    """Queue policies: TLS or nothing; sqs:SendMessage to the main queue by the worker, sweeper or replay role."""
    queues = module.resources["aws_sqs_queue"]
    names = module.locals["queue_names"]
    assert set(names) == set(queues) == {"main", "dlq", "on_failure"}
    for key, queue in queues.items():
        assert queue["name"] == f"${{local.queue_names.{key}}}"
        assert queue["policy"] == f'${{data.aws_iam_policy_document.queue["{key}"].json}}'
    document = module.data["aws_iam_policy_document"]["queue"]
    assert document["for_each"] == "${local.queue_names}"
    (tls,) = document["statement"]
    assert _tls_denial(tls)
    assert tls["actions"] == "${local.queue_actions}"
    # Every action of a queue, those issue #25 found left out included.
    assert {
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "sqs:DeleteQueue",
        "sqs:TagQueue",
        "sqs:UntagQueue",
        "sqs:AddPermission",
        "sqs:RemovePermission",
        "sqs:StartMessageMoveTask",
        "sqs:CancelMessageMoveTask",
        "sqs:ListMessageMoveTasks",
    } <= set(module.locals["queue_actions"])
    statements = {d["statement"]["content"][0]["sid"]: d["statement"] for d in document["dynamic"]}
    senders = statements["OnlyTheRelaysSend"]
    assert senders["for_each"] == '${each.key == "main" ? [1] : []}'
    (content,) = senders["content"]
    assert content["effect"] == "Deny"
    assert content["actions"] == ["sqs:SendMessage"]
    assert content["condition"] == [
        {"test": "ArnNotEquals", "variable": "aws:PrincipalArn", "values": "${local.main_queue_senders}"}
    ]
    # The roles by name, as iam.tf names them; the worker and the sweeper are the code's senders.
    assert module.resource("aws_iam_role", "function")["name"] == "${var.name}-${each.key}"
    assert module.locals["role_arns"] == (
        '${{for name in keys(local.function_defaults) : name => "arn:${local.partition}:iam::${local.account_id}'
        ':role/${var.name}-${name}"}}'
    )
    assert module.locals["main_queue_senders"] == (
        "${concat([local.role_arns.worker, local.role_arns.sweeper], "
        "var.replay_role_arn == null ? [] : [var.replay_role_arn])}"
    )
    assert {"worker", "sweeper"} == SENDERS
    assert module.variables["replay_role_arn"]["default"] is None
    assert module.locals["queue_arns"].endswith(':sqs:${local.region}:${local.account_id}:${name}"}}')


def test_each_queue_gives_its_copies_to_its_own_function_and_only_sqs_fills_the_dead_letter_queue(
    module: Module,
) -> None:
    """Issue #25: receive, delete and visibility by the queue's function alone; no purge; no sender of the DLQ."""
    document = module.data["aws_iam_policy_document"]["queue"]
    statements = {d["statement"]["content"][0]["sid"]: d["statement"] for d in document["dynamic"]}
    takers = statements["OnlyItsFunctionTakesCopies"]
    assert takers["for_each"] == "${contains(keys(local.queue_receivers), each.key) ? [1] : []}"
    (content,) = takers["content"]
    assert content["effect"] == "Deny"
    assert content["actions"] == "${local.receive_actions}"
    assert set(module.locals["receive_actions"]) == {
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:ReceiveMessage",
    }
    assert content["condition"] == [
        {"test": "ArnNotEquals", "variable": "aws:PrincipalArn", "values": ["${local.queue_receivers[each.key]}"]}
    ]
    # Each queue's receiver is the function its event source mapping invokes.
    assert module.locals["queue_receivers"] == {
        "main": "${local.role_arns.consumer}",
        "dlq": '${local.role_arns["dead-letter"]}',
    }
    mappings = module.resources["aws_lambda_event_source_mapping"]
    assert mappings["queue"]["event_source_arn"] == "${aws_sqs_queue.main.arn}"
    assert mappings["queue"]["function_name"] == '${local.invoke_targets["consumer"]}'
    assert mappings["dead_letter"]["event_source_arn"] == "${aws_sqs_queue.dlq.arn}"
    assert mappings["dead_letter"]["function_name"] == '${local.invoke_targets["dead-letter"]}'
    (purge,) = statements["NobodyPurges"]["content"]
    assert (purge["effect"], purge["actions"], purge.get("condition")) == ("Deny", ["sqs:PurgeQueue"], None)
    # The dead-letter queue: no principal sends to it (SQS's redrive is not one), and only the main queue
    # may name it as its dead-letter queue.
    fill = statements["OnlyTheRedriveFillsIt"]
    assert fill["for_each"] == '${each.key == "dlq" ? [1] : []}'
    (content,) = fill["content"]
    assert (content["effect"], content["actions"]) == ("Deny", ["sqs:SendMessage"])
    assert content["principals"] == [{"type": "*", "identifiers": ["*"]}]
    assert content["condition"] == [{"test": "Bool", "variable": "aws:PrincipalIsAWSService", "values": ["false"]}]
    dlq = module.resource("aws_sqs_queue", "dlq")
    assert dlq["redrive_allow_policy"] == (
        '${jsonencode({redrivePermission = "byQueue", sourceQueueArns = [local.queue_arns.main]})}'
    )


def test_the_key_refuses_plain_http(module: Module) -> None:
    """The key policy denies its use without TLS (the table, queues and logs are encrypted with it)."""
    statements = module.data["aws_iam_policy_document"]["kms"]["statement"]
    (denial,) = [s for s in statements if s.get("effect") == "Deny"]
    assert _tls_denial(denial)
    assert {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"} <= set(denial["actions"])


def test_every_function_that_ends_records_gets_the_record_retention(module: Module) -> None:
    """OUTBOX_RECORD_RETENTION_DAYS (default 30) wherever a record can end: worker, consumer, sweeper."""
    assert module.variables["record_retention_days"]["default"] == 30
    for name in ("worker", "consumer", "sweeper", "dead-letter"):
        environment = module.locals["functions"][name]["environment"]
        assert environment["OUTBOX_RECORD_RETENTION_DAYS"] == "${tostring(var.record_retention_days)}", name
        assert settings_as_deployed(module, name).record_retention.days == 30, name
    # The attribute the terminal transitions set is the table's TTL attribute.
    (ttl,) = module.resource("aws_dynamodb_table", "this")["ttl"]
    assert ttl["attribute_name"] == TTL_ATTRIBUTE == "expires_at"


def test_the_modules_capacity_check_uses_the_python_models_figures(module: Module) -> None:
    """capacity.tf's figures are outbox/capacity.py's: one model, checked by bench/capacity.py."""
    from outbox import capacity

    assert module.locals["capacity"] == {
        "bucket_msg_per_s": capacity.bucket_msg_per_s(1.0),
        "worker_msg_per_s": capacity.WORKER_MSG_PER_S,
        "consumer_msg_per_s": capacity.CONSUMER_MSG_PER_S,
        "fifo_msg_per_s": capacity.FIFO_API_CALLS * capacity.SEND_BATCH,
        "headroom": capacity.HEADROOM,
        "table_write_units_per_message": capacity.TABLE_WRITE_UNITS_PER_MESSAGE,
        "partition_write_units": capacity.PARTITION_WRITE_UNITS,
    }
    assert module.default("${var.expected_messages_per_second}") is None  # no check unless a rate is stated


def test_snap_start_sets_what_the_handlers_read_and_everything_invokes_the_alias(module: Module) -> None:
    """Under SnapStart the functions get OUTBOX_EAGER_INIT (read by outbox.settings) and every mapping the alias."""
    from outbox.settings import eager_init

    (name,) = module.locals["eager_init_environment"]
    assert eager_init({name: module.locals["eager_init_environment"][name]})
    assert module.default("${var.snap_start}") is False
    function = module.resource("aws_lambda_function", "this")
    assert function["publish"] == "${contains(local.snap_start_functions, each.key)}"
    assert 'name != "sweeper"' in module.locals["snap_start_functions"]  # a schedule needs no snapshot
    for mapping, target in (("stream", "worker"), ("queue", "consumer"), ("dead_letter", "dead-letter")):
        body = module.resource("aws_lambda_event_source_mapping", mapping)
        assert body["function_name"] == f'${{local.invoke_targets["{target}"]}}', mapping
    alias = module.resource("aws_lambda_alias", "live")
    assert alias["for_each"] == "${local.snap_start_functions}"
    assert alias["function_version"] == "${aws_lambda_function.this[each.key].version}"
