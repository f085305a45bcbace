"""One composition, one table layout: settings are read and clients made in outbox/compose.py alone.

Read from the sources' own imports and names, so a second place that wires adapters fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from outbox.adapters.reader import DynamoDBOutboxReader
from outbox.adapters.store import DynamoDBMessageStore
from outbox.adapters.sweep import DynamoDBSweepSource
from outbox.domain.layout import TableLayout

ROOT = Path(__file__).resolve().parents[2]
# What makes an AWS client (outbox.adapters.aws's factories, botocore's and boto3's own).
CLIENT_MAKERS = frozenset(
    {"dynamodb_client", "sqs_client", "streams_client", "secretsmanager_client", "create_client", "client"}
)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def _imports(tree: ast.Module) -> set[str]:
    """Every module the source imports, and every ``module.name`` it imports from one."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _called(tree: ast.Module) -> set[str]:
    """The names of everything the source calls (``f(...)`` and ``x.f(...)``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function = node.func
            names.add(function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", ""))
    return names


def _modules(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("outbox/adapters", "outbox/service"), ids=lambda p: p.name)
def test_adapters_and_use_cases_never_read_the_settings(path: Path) -> None:
    """outbox/adapters and outbox/service import no Settings and read no environment: they are handed what they need."""
    tree = _tree(path)
    imports = {name for name in _imports(tree) if name == "outbox.settings" or name.startswith("outbox.settings.")}
    assert not imports, f"{path.relative_to(ROOT)} imports {sorted(imports)}"
    assert "environ" not in {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}, path
    assert not {"getenv", "from_settings"} & _called(tree), path
    defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert "from_settings" not in defined, f"{path.relative_to(ROOT)}: compose reads the settings, not an adapter"


# The client factories live in adapters/aws.py; the library calls them from the composition alone.
@pytest.mark.parametrize(
    "path",
    [p for p in _modules("outbox", "worker") if p.relative_to(ROOT).as_posix() not in {"outbox/compose.py"}],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_only_the_composition_makes_clients(path: Path) -> None:
    """No module but outbox/compose.py makes an AWS client (adapters/aws.py defines the factories compose calls)."""
    tree = _tree(path)
    if path.relative_to(ROOT).as_posix() == "outbox/adapters/aws.py":
        return  # where the factories are written, not called
    made = CLIENT_MAKERS & _called(tree)
    if path.relative_to(ROOT).as_posix() == "outbox/lambda_package.py":
        made -= {"client", "create_client"}  # it reads a user's calls of them in their source, calls none
    assert not made, f"{path.relative_to(ROOT)} makes clients ({sorted(made)}): make them in outbox/compose.py"


def test_every_adapter_of_the_table_takes_the_layout_and_a_client() -> None:
    """The table's adapters are built from one TableLayout value and a client, and keep that value as it is."""
    layout = TableLayout("orders", "PK", "SK", buckets=4)
    client = object()
    adapters = [
        DynamoDBMessageStore(layout, client),  # type: ignore[arg-type]
        DynamoDBSweepSource(layout, client),  # type: ignore[arg-type]
        DynamoDBOutboxReader(layout, client),  # type: ignore[arg-type]
    ]
    for adapter in adapters:
        assert adapter.layout is layout
        assert adapter.table_name == "orders"
