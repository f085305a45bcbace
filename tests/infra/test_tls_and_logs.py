"""The module's own guarantees of issue #15: TLS on the table and its stream.

What the table's and the stream's resource policies deny, and when the module may write a caller's
policy.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from infra.schema.extract import OUTPUT
from tests.infra.terraform import MODULE, Module, load, plain

# What a DynamoDB resource policy may never name, or the module could lock out whoever manages it.
RESOURCE_POLICY_ACTIONS = {"dynamodb:GetResourcePolicy", "dynamodb:PutResourcePolicy", "dynamodb:DeleteResourcePolicy"}


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
    documents = module.data["aws_iam_policy_document"]
    return {
        action
        for name in module.locals["function_policies"]
        for statement in documents[name]["statement"]
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
    assert versions["required_providers"][0]["aws"]["version"] == '">= 5.43"'  # the first to have it


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
