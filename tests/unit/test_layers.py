"""The layers point one way: read from the source's own imports, so a wrong one fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AWS = ("boto3", "botocore", "pynamodb", "mypy_boto3_dynamodb", "mypy_boto3_sqs", "mypy_boto3_dynamodbstreams")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _within(names: set[str], *prefixes: str) -> set[str]:
    return {name for name in names if any(name == p or name.startswith(f"{p}.") for p in prefixes)}


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("outbox/service"), ids=lambda p: p.name)
def test_a_use_case_depends_on_ports_only(path: Path) -> None:
    """outbox/service imports no adapter, AWS library, composition or entry point."""
    wrong = _within(_imports(path), *AWS, "outbox.adapters", "outbox.compose", "outbox.api", "outbox.local", "worker")
    assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


@pytest.mark.parametrize("path", [*_modules("outbox/domain"), ROOT / "outbox" / "ports.py"], ids=lambda p: p.name)
def test_the_domain_and_the_ports_know_no_aws(path: Path) -> None:
    """The core has no AWS import and nothing above it."""
    wrong = _within(_imports(path), *AWS, "outbox.adapters", "outbox.service", "outbox.compose", "worker")
    assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


@pytest.mark.parametrize("path", _modules("outbox"), ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_of_the_library_imports_the_lambda_entry_points(path: Path) -> None:
    """worker/ sits on top: the library, its CLI and the local stack compose the use cases themselves."""
    assert not _within(_imports(path), "worker"), path.relative_to(ROOT)


@pytest.mark.parametrize("path", _modules("worker"), ids=lambda p: p.name)
def test_a_lambda_entry_point_builds_through_the_composition(path: Path) -> None:
    """worker/ makes no client and no adapter of its own: outbox.compose does."""
    assert not _within(_imports(path), *AWS, "outbox.adapters"), path.relative_to(ROOT)
