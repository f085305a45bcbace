"""The module's own guarantees of issue #15: TLS on the table and its stream, and logs an operator can use.

What the table's and the stream's resource policies deny, when the module may write a caller's
policy, which fields the API's access log keeps (and which personal data it never does), and that
every log group keeps its logs for ``log_retention_days``, one of the values CloudWatch accepts.
"""

from __future__ import annotations

import json
import re
from typing import Any

import botocore.session
import pytest

from infra.schema.extract import OUTPUT
from tests.infra.terraform import MODULE, Module, load, plain

# What a DynamoDB resource policy may never name, or the module could lock out whoever manages it.
RESOURCE_POLICY_ACTIONS = {"dynamodb:GetResourcePolicy", "dynamodb:PutResourcePolicy", "dynamodb:DeleteResourcePolicy"}
# The access log's variables an operator needs, each with what it answers.
OPERATOR_NEEDS = {
    "$context.requestId": "which request (the client sees it as the apigw-requestid header)",
    "$context.requestTime": "when it came",
    "$context.routeKey": "which route, without the message id the path holds",
    "$context.status": "how it ended",
    "$context.responseLatency": "how long it took",
    "$context.integration.requestId": "the API function's aws_request_id: the way into its log",
    "$context.integration.error": "why the function failed, when it did",
    "$context.error.message": "API Gateway's own refusal (throttled, forbidden, too large)",
    "$context.authorizer.error": "why the authorizer refused the caller",
}
# Also allowed: figures and codes, none of them about the caller.
ALSO_ALLOWED = {
    "$context.responseLength",
    "$context.integration.latency",
    "$context.integration.integrationStatus",
    "$context.error.responseType",
}
# Personal data, or what can hold it: the caller's address, agent and identity, the path (a message
# id), a Lambda authorizer's context; query strings and bodies are no $context variable at all.
NEVER_LOGGED = re.compile(
    r"^\$context\.(identity\.|authorizer\.(claims|principalId)|path$|domainPrefix$|customDomain\.)|^\$(input|request)\."
)


@pytest.fixture(scope="module")
def module() -> Module:
    """The module, parsed."""
    return load(MODULE)


def _tls_denial(statement: dict[str, Any]) -> bool:
    (condition,) = statement["condition"]
    return (
        statement["effect"] == "Deny"
        and condition == {"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}
        and statement["principals"] == [{"type": "*", "identifiers": ["*"]}]
    )


def _granted(module: Module, resource_prefix: str) -> set[str]:
    """Every action a function role is allowed on resources that start with ``resource_prefix``."""
    return {
        action
        for function in module.locals["function_policies"]
        for statement in module.function_policy(function)["statement"]
        if any(str(resource).startswith(resource_prefix) for resource in statement.get("resources", []))
        for action in statement["actions"]
    }


def test_the_table_and_its_stream_refuse_requests_without_tls(module: Module) -> None:
    """One resource policy each: every data and table action denied to anyone over plain HTTP."""
    policy = module.resource("aws_dynamodb_resource_policy", "this")
    assert policy["for_each"] == "${local.table_policies}"
    assert policy["resource_arn"] == "${each.value.arn}"
    assert policy["policy"] == "${data.aws_iam_policy_document.table_policy[each.key].json}"
    assert policy["confirm_remove_self_resource_access"] is False  # an apply never locks out its applier
    document = module.data["aws_iam_policy_document"]["table_policy"]
    assert document["for_each"] == "${local.table_policy_targets}"
    (statement,) = document["statement"]
    assert _tls_denial(statement)
    assert (statement["actions"], statement["resources"]) == ("${each.value.actions}", "${each.value.resources}")

    targets = module.locals["table_policy_targets"]
    assert set(targets) == {"table", "stream"}
    table, stream = targets["table"], targets["stream"]
    # The table, this module's or the caller's, with its indexes (the sweeper's record index); its stream.
    assert table["arn"] == "${local.table_arn}"
    assert table["resources"] == '${local.table_arn == null ? [] : [local.table_arn, "${local.table_arn}/index/*"]}'
    assert stream["arn"] == "${local.stream_arn}"
    assert stream["resources"] == "${local.stream_arn == null ? [] : [local.stream_arn]}"
    # Every action a role of the module is granted there is among those refused without TLS.
    table_actions = module.locals["table_policy_actions"]
    assert table["actions"] == "${local.table_policy_actions}"
    assert table_actions == sorted(set(table_actions))
    assert _granted(module, "${local.table_arn}") <= set(table_actions)
    assert {"dynamodb:Scan", "dynamodb:ExportTableToPointInTime", "dynamodb:DeleteTable"} <= set(table_actions)
    # ListStreams names no stream, so a stream's policy cannot hold it.
    assert _granted(module, "${local.stream_arn}") - {"dynamodb:ListStreams"} == set(stream["actions"])
    for action in [*table_actions, *stream["actions"]]:
        assert re.fullmatch(r"dynamodb:[A-Z][A-Za-z]+", action), action  # named, never a wildcard
        assert action not in RESOURCE_POLICY_ACTIONS, action


def test_the_provider_has_the_resource_policy_the_module_needs(module: Module) -> None:
    """aws_dynamodb_resource_policy: in the checked schema, with the arguments the module sets."""
    schema = json.loads(OUTPUT.read_text())["resource"]["aws_dynamodb_resource_policy"]
    assert {"resource_arn", "policy"} == {name for name, spec in schema["arguments"].items() if spec["required"]}
    assert "confirm_remove_self_resource_access" in schema["arguments"]
    (versions,) = next(doc for path, doc in module.raw if path.name == "versions.tf")["terraform"]
    assert versions["required_providers"][0]["aws"]["version"] == '">= 5.100"'  # 5.43 was the first to have it


def test_a_callers_table_policy_is_left_alone_unless_handed_over(module: Module) -> None:
    """Own table: always; an existing one: only with manage_existing_table_policy; the documents are an output."""
    variable = module.variables["manage_existing_table_policy"]
    assert (variable["type"], variable["default"], variable["nullable"]) == ("bool", False, False)
    assert "replace" in variable["description"]  # why the default leaves a caller's policy alone
    assert module.locals["manage_table_policy"] == "${var.create_table || var.manage_existing_table_policy}"
    assert module.locals["table_policies"] == (
        "${{for key, target in local.table_policy_targets : key => target if local.manage_table_policy}}"
    )
    # The documents whether attached or not, for a caller to merge into its own policies.
    assert module.outputs["table_policy_documents"]["value"] == (
        "${{for key, document in data.aws_iam_policy_document.table_policy : key => document.json}}"
    )


def test_the_existing_table_example_merges_the_modules_documents_into_its_own() -> None:
    """The caller's table and stream keep policies of their own, holding the module's TLS denial."""
    example = MODULE / "examples" / "existing-table"
    parsed = load(example)
    arns = {"table": "${aws_dynamodb_table.orders.arn}", "stream": "${aws_dynamodb_table.orders.stream_arn}"}
    policies = parsed.resource("aws_dynamodb_resource_policy", "orders")
    assert policies["for_each"] == arns
    assert policies["resource_arn"] == "${each.value}"
    assert policies["policy"] == "${data.aws_iam_policy_document.orders[each.key].json}"
    document = parsed.data["aws_iam_policy_document"]["orders"]
    assert document["for_each"] == arns
    assert document["source_policy_documents"] == ["${module.outbox.table_policy_documents[each.key]}"]
    (call,) = next(doc for _, doc in parsed.raw if "module" in doc)["module"]
    assert "manage_existing_table_policy" not in plain(call)["outbox"]  # the default: the policies are its own


def test_the_access_log_keeps_what_an_operator_needs_and_no_personal_data(module: Module) -> None:
    """Request id, time, route, status, latency, the function's request id and errors; no IP, caller or path."""
    stage = module.resource("aws_apigatewayv2_stage", "default")
    (settings,) = stage["access_log_settings"]
    assert settings["format"] == "${jsonencode(local.access_log_fields)}"
    assert settings["destination_arn"] == "${aws_cloudwatch_log_group.api_access[0].arn}"
    fields: dict[str, str] = module.locals["access_log_fields"]
    logged = set(fields.values())
    assert len(logged) == len(fields)  # each variable once
    assert set(OPERATOR_NEEDS) <= logged, set(OPERATOR_NEEDS) - logged
    # Anything else is reviewed here first: a new field is added to ALSO_ALLOWED with the test's consent.
    assert logged <= set(OPERATOR_NEEDS) | ALSO_ALLOWED, logged - set(OPERATOR_NEEDS) - ALSO_ALLOWED
    for name, variable in fields.items():
        assert re.fullmatch(r"\$context\.[A-Za-z]+(\.[A-Za-z]+)*", variable), (name, variable)  # one variable, no text
        assert not NEVER_LOGGED.search(variable), (name, variable)
        assert re.fullmatch(r"[a-z][A-Za-z]+", name), name  # JSON keys Logs Insights reads as they are


def test_the_personal_data_filter_catches_what_it_must() -> None:
    """The filter above can fail: the caller's address, agent, identity, claims and path are caught."""
    for variable in (
        "$context.identity.sourceIp",
        "$context.identity.userAgent",
        "$context.identity.userArn",
        "$context.identity.caller",
        "$context.authorizer.claims.sub",
        "$context.authorizer.principalId",
        "$context.path",
        "$request.querystring.q",
        "$input.body",
    ):
        assert NEVER_LOGGED.search(variable), variable
    for variable in (*OPERATOR_NEEDS, *ALSO_ALLOWED):
        assert not NEVER_LOGGED.search(variable), variable


def test_every_log_group_keeps_its_logs_for_log_retention_days(module: Module) -> None:
    """The API's access log and every function's log group: the module's, encrypted, one retention."""
    groups = module.resources["aws_cloudwatch_log_group"]
    assert set(groups) == {"api_access", "function"}
    for name, group in groups.items():
        assert group["retention_in_days"] == "${var.log_retention_days}", name
        assert group["kms_key_id"] == "${aws_kms_key.this.arn}", name
    # One group per function, and each function logs there (not to a group Lambda would create unbounded).
    assert groups["function"]["for_each"] == "${local.deployed_functions}"
    function = module.resource("aws_lambda_function", "this")
    assert function["for_each"] == "${local.deployed_functions}"
    (logging,) = function["logging_config"]
    assert logging["log_group"] == "${aws_cloudwatch_log_group.function[each.key].name}"
    assert "${aws_cloudwatch_log_group.function}" in function["depends_on"]


def test_log_retention_days_are_the_values_cloudwatch_accepts(module: Module) -> None:
    """The variable refuses what CloudWatch Logs would (its API's documented list); the default is a year."""
    variable = module.variables["log_retention_days"]
    (validation,) = variable["validation"]
    (listed,) = re.findall(r"contains\(\[([\d, ]+)\], var\.log_retention_days\)", validation["condition"])
    allowed = [int(value) for value in listed.split(",")]
    days = botocore.session.get_session().get_service_model("logs").shape_for("Days")
    (documented,) = re.findall(r"Possible values are: ([\d, and]+)\.", days.documentation)
    assert allowed == [int(value) for value in re.findall(r"\d+", documented)]
    assert variable["default"] in allowed
    assert variable["default"] >= 365  # checkov CKV_AWS_338: at least a year
    assert str(allowed[-1]) in validation["error_message"]
