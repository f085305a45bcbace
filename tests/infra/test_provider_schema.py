"""Every resource and data block against the AWS provider's own schema, offline.

Without the provider binary (tests/infra/test_terraform_cli.py runs ``terraform validate`` where the
provider mirror is), infra/schema/extract.py takes the schema from the provider's cdktf package, and
this test plays validate's part for names: unknown types, unknown arguments or blocks, missing
required ones, a single block twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.schema.extract import OUTPUT, used_types
from tests.infra.terraform import EXAMPLES, META, MODULE, load, unquote

SCHEMA: dict[str, Any] = json.loads(OUTPUT.read_text())
META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle"}


def _is_block(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get("__is_block__") for v in value)


def problems_in(body: dict[str, Any], schema: dict[str, Any], where: str, *, top: bool = True) -> list[str]:
    """What ``terraform validate`` would reject in one block's body, by name."""
    found: list[str] = []
    for key, value in body.items():
        if key in META or (top and key in META_ARGUMENTS):
            continue
        if key == "dynamic":
            found += _dynamic_problems(value, schema, where)
            continue
        if key in schema["arguments"]:
            if _is_block(value):
                found.append(f"{where}: {key!r} is an argument, written as a block")
            continue
        if key in schema["blocks"]:
            nested = schema["blocks"][key]
            if not _is_block(value):
                found.append(f"{where}: {key!r} is a block, written as an argument")
                continue
            if not nested["list"] and len(value) > 1:
                found.append(f"{where}: block {key!r} may appear once, appears {len(value)} times")
            for item in value:
                found += problems_in(item, nested, f"{where}.{key}", top=False)
            continue
        found.append(f"{where}: unknown argument or block {key!r}")
    for kind in ("arguments", "blocks"):
        for name, spec in schema[kind].items():
            if spec["required"] and name not in body:
                found.append(f"{where}: missing required {kind[:-1] if kind == 'blocks' else 'argument'} {name!r}")
    return found


def _dynamic_problems(dynamics: list[dict[str, Any]], schema: dict[str, Any], where: str) -> list[str]:
    found: list[str] = []
    for dynamic in dynamics:
        for quoted, spec in dynamic.items():
            name = unquote(quoted)
            if name not in schema["blocks"]:
                found.append(f"{where}: unknown dynamic block {name!r}")
                continue
            for content in spec.get("content", []):
                found += problems_in(content, schema["blocks"][name], f"{where}.{name}", top=False)
    return found


def _blocks(directory: Path) -> list[tuple[str, str, str, dict[str, Any]]]:
    blocks = []
    for file, document in load(directory).raw:
        for kind in ("resource", "data"):
            for block in document.get(kind, []):
                for type_name, named in block.items():
                    for name, body in named.items():
                        where = f"{file.relative_to(MODULE)}: {kind} {unquote(type_name)}.{unquote(name)}"
                        blocks.append((kind, unquote(type_name), where, body))
    return blocks


ALL_BLOCKS = _blocks(MODULE) + [block for example in EXAMPLES for block in _blocks(example)]


@pytest.mark.parametrize(("kind", "type_name", "where", "body"), ALL_BLOCKS, ids=[b[2] for b in ALL_BLOCKS])
def test_block_matches_the_provider_schema(kind: str, type_name: str, where: str, body: dict[str, Any]) -> None:
    """Each resource and data block uses only known arguments and blocks, and all required ones."""
    schema = SCHEMA[kind].get(type_name)
    assert schema is not None, f"{where}: {kind} type {type_name} is unknown to the provider schema"
    assert problems_in(body, schema, where) == []


def test_the_schema_file_covers_exactly_the_types_the_module_uses() -> None:
    """The checked-in schema is current with the module."""
    used = used_types()
    assert {kind: set(SCHEMA[kind]) for kind in ("resource", "data")} == used, (
        "run `.venv/bin/python -m infra.schema.extract` after adding or removing a type"
    )
    assert int(SCHEMA["providers"]["aws"]["version"].split(".")[0]) >= 5  # versions.tf: AWS provider >= 5


def test_the_checker_rejects_what_validate_would() -> None:
    """The checker above can fail: each kind of mistake on a real schema is reported."""
    schema = SCHEMA["resource"]["aws_lambda_event_source_mapping"]
    body = {
        "function_nam": '"typo"',
        "batch_size": [{"__is_block__": True}],
        "destination_config": [{"on_failure": [{"destination_arn": '"a"', "__is_block__": True}], "__is_block__": True}]
        * 2,
        "filter_criteria": [{"filter": [{"patern": '"{}"', "__is_block__": True}], "__is_block__": True}],
        "for_each": "${local.x}",
    }
    assert sorted(problems_in(body, schema, "esm")) == sorted(
        [
            "esm: unknown argument or block 'function_nam'",
            "esm: 'batch_size' is an argument, written as a block",
            "esm: block 'destination_config' may appear once, appears 2 times",
            "esm.filter_criteria.filter: unknown argument or block 'patern'",
            "esm: missing required argument 'function_name'",
        ]
    )
