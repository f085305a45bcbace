"""The layers point one way: read from the source's own imports, so a wrong one fails here, not in review.

The layering is the one ``docs/architecture.md`` draws; ``LAYERS`` places every module of
``outbox/`` and ``worker/`` in it (a new module must be placed), and no import runs from a layer to
one above it, nor round in a circle.
"""

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


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


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


# Lowest first: a module may import its own layer and those below. The domain (with the settings,
# logs and metrics every layer reads), the ports, the use cases and adapters, the composition and
# tools over it, the library's entry points, the notification API (an application on the library),
# what runs locally or from the command line, and on top the Lambda entry points.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("outbox.domain", "outbox.settings", "outbox.logs", "outbox.metrics"),
    ("outbox.ports",),
    ("outbox.service", "outbox.adapters"),
    ("outbox.compose", "outbox.bootstrap", "outbox.capacity", "outbox.faults", "outbox.testing"),
    ("outbox._outbox", "outbox.consumer", "outbox.lambda_consumer", "outbox.replay_cli", "outbox"),
    ("outbox.notifications",),
    ("outbox.local", "outbox.cli", "outbox.__main__", "outbox.lambda_package"),
    ("worker",),
)
# The library's core: everything but the reference application and what only runs it (the local
# stack, the command line that starts it, and the Lambda entry points).
APPLICATION = ("outbox.notifications", "outbox.local", "outbox.cli", "outbox.__main__", "worker")
MODULES = {_module_name(path): path for path in [*_modules("outbox"), *_modules("worker")]}


def _layer(module: str) -> int:
    """The index in LAYERS of the longest prefix naming ``module`` (-1: not placed)."""
    best, length = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(f"{prefix}.")) and len(prefix) > length:
                best, length = index, len(prefix)
    return best


def _graph() -> dict[str, set[str]]:
    """Each module of outbox/ and worker/ to those of ours it imports (``from a import b``: ``a.b`` if a module)."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {other for other in found if other in MODULES and other != name}
    return graph


def test_every_module_has_a_layer() -> None:
    """A new module is placed in LAYERS (and in docs/architecture.md) before the layer test can pass."""
    assert not [name for name in MODULES if _layer(name) < 0]


def test_no_import_runs_back_up_a_layer() -> None:
    """No module imports one of a layer above its own (the arrows of docs/architecture.md point down)."""
    upward = [
        f"{name} -> {other}"
        for name, imported in sorted(_graph().items())
        for other in sorted(imported)
        if _layer(other) > _layer(name)
    ]
    assert not upward


def test_the_imports_have_no_circle() -> None:
    """The module graph, drawn from every import (at the top, in functions, under TYPE_CHECKING), is acyclic."""
    graph = _graph()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise AssertionError(" -> ".join([*path[path.index(name) :], name]))
        if name in done:
            return
        for other in sorted(graph[name]):
            visit(other, (*path, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())


@pytest.mark.parametrize(
    "name", sorted(n for n in MODULES if not _within({n}, *APPLICATION)), ids=lambda n: n or "outbox"
)
def test_the_core_never_imports_the_notification_api(name: str) -> None:
    """The notification API is an application on the library: nothing of the core imports outbox.notifications."""
    assert not _within(_imports(MODULES[name]), "outbox.notifications")
