"""Lambda event filtering, for the local runner: the same pattern template Terraform deploys.

The template (``outbox/local/stream_filter.json.tftpl``, a copy of the Terraform module's, held
equal by a test) names the table's hash key as ``${hash_key}``: only INSERTs of outbox entries
pass, never the caller's own items in the same table. It is package data of ``outbox.local``:
Lambda never reads it (the event source mapping filters), so it is not in the Lambda zip.

Implements the subset of the EventBridge pattern grammar the outbox uses (literal values,
``prefix``, ``exists``, ``anything-but``); any other operator is refused rather than guessed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

FILTER_FILE = "stream_filter.json.tftpl"
_MISSING = object()


@cache
def stream_filter_pattern(hash_key: str = "pk") -> dict[str, Any]:
    """The stream mapping's filter pattern for a table whose hash key is ``hash_key``."""
    template = resources.files("outbox.local").joinpath(FILTER_FILE).read_text()
    pattern: dict[str, Any] = json.loads(template.replace("${hash_key}", json.dumps(hash_key)[1:-1]))
    check_pattern(pattern)
    return pattern


def check_pattern(pattern: Mapping[str, Any]) -> None:
    """Raise ValueError for a pattern this matcher cannot evaluate faithfully."""
    for value in pattern.values():
        if isinstance(value, Mapping):
            check_pattern(value)
        elif isinstance(value, list):
            for rule in value:
                if isinstance(rule, Mapping) and not set(rule) <= {"prefix", "exists", "anything-but"}:
                    raise ValueError(f"unsupported filter operator: {sorted(rule)}")
        else:
            raise ValueError("a filter pattern's leaves must be lists")


def matches(pattern: Mapping[str, Any], event: object) -> bool:
    """Whether ``event`` matches ``pattern`` (every key of the pattern must match)."""
    if not isinstance(event, Mapping):
        return False
    for key, expected in pattern.items():
        actual = event.get(key, _MISSING)
        if isinstance(expected, Mapping):
            if not matches(expected, actual):
                return False
        elif not any(_matches_rule(rule, actual) for rule in expected):
            return False
    return True


def _matches_rule(rule: object, actual: object) -> bool:
    if not isinstance(rule, Mapping):
        return actual is not _MISSING and actual == rule
    if "exists" in rule:
        return (actual is not _MISSING) is bool(rule["exists"])
    if actual is _MISSING:
        return False
    if "prefix" in rule:
        return isinstance(actual, str) and actual.startswith(str(rule["prefix"]))
    excluded = rule["anything-but"]
    return actual not in (excluded if isinstance(excluded, list) else [excluded])
