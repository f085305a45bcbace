"""The unit tests' guard: a unit test that reaches outside its process fails, even if it caught the error."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
# A suite of one test per way out, run under tests/unit/conftest.py's hooks.
LEAVING = """
import socket
import subprocess
import sys

import pytest


@pytest.fixture
def bound():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


def test_connects_and_swallows_the_error():
    try:
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    except Exception:
        pass


def test_starts_a_process():
    subprocess.run([sys.executable, "-c", "pass"], check=False)


def test_binds_in_a_fixture(bound):
    pass


def test_imports_the_emulator(monkeypatch):
    monkeypatch.delitem(sys.modules, "moto", raising=False)
    import moto  # noqa: F401


def test_stays_in_its_process():
    assert sorted([2, 1]) == [1, 2]
"""


def test_a_unit_test_that_leaves_its_process_fails(pytester: pytest.Pytester) -> None:
    """A connect (error swallowed), a process, a bind in a fixture and an import of moto each fail; the rest passes."""
    # GIVEN the unit tests' hooks and a test for each way out of the process
    pytester.makeconftest(
        "from tests.unit.conftest import pytest_runtest_call, pytest_runtest_setup, pytest_runtest_teardown\n"
    )
    pytester.makepyfile(test_leaving=LEAVING)
    # WHEN they run
    result = pytester.runpytest_inprocess("-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    # THEN each one that left fails, naming what it tried, and only the one that stayed passes
    result.assert_outcomes(passed=1, failed=3, errors=1)
    result.stdout.fnmatch_lines_random(
        [
            "*test_connects_and_swallows_the_error tried to leave its process: socket.getaddrinfo*",
            "*IsolationError*Popen.__init__*",
            "*IsolationError*socket.bind*",
            "*IsolationError*import moto*",
        ]
    )


def _imported(path: Path) -> set[str]:
    """The modules ``path`` imports, at any depth of its code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_unit_test_imports_the_emulator_or_another_tier() -> None:
    """Neither tests/unit nor the shared helpers it imports import moto or the integration, e2e or infra tests."""
    files = sorted((TESTS / "unit").glob("*.py"))
    helpers = {n for f in files for n in _imported(f) if n.startswith("tests.") and not n.startswith("tests.unit")}
    files += [TESTS.parent / (name.replace(".", "/") + ".py") for name in sorted(helpers)]
    banned = ("moto", "tests.integration", "tests.e2e", "tests.infra")
    found = {
        f"{path.relative_to(TESTS.parent)}: {name}"
        for path in files
        for name in _imported(path)
        if name.startswith(banned) and name.partition(".")[0] in {"moto", "tests"}
    }
    assert found == set()
