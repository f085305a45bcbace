"""``make test`` and CI run the whole suite: every tier, every test file, and an empty run fails."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _recipe(target: str) -> list[list[str]]:
    """The commands of a Makefile target, each split as the shell would."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    commands = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        commands.append(shlex.split(line.strip()))
    return commands


def test_make_test_runs_pytest_over_the_whole_suite_with_no_selection() -> None:
    """The test target runs pytest once, with --whole-suite and no path, -k, -m or ignore of its own."""
    runs = [command for command in _recipe("test") if command[0].endswith("/pytest")]
    assert runs == [["$(BIN)/pytest", "--whole-suite"]]


def test_the_suite_is_every_test_under_tests() -> None:
    """A bare ``pytest`` collects tests/ (testpaths), with strict markers and config; no test file lives elsewhere."""
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert options["testpaths"] == ["tests"]
    assert {"--strict-markers", "--strict-config"} <= set(options["addopts"])
    assert not any(o.startswith(("-k", "-m", "--ignore", "--deselect")) for o in options["addopts"])
    sources = [p for p in ROOT.iterdir() if p.is_dir() and p.name != "tests" and not p.name.startswith((".", "build"))]
    elsewhere = [str(path.relative_to(ROOT)) for source in sources for path in source.rglob("test_*.py")]
    assert elsewhere == []


def test_ci_runs_make_test() -> None:
    """.ci/run is the developer's command, failing on the first error (pytest's "no tests ran" is exit 5)."""
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "set -euo pipefail" in script
    assert "make test" in script


A_TEST = "def test_it():\n    pass\n"
NO_TEST = "def check_it():\n    pass\n"  # a file of helpers, or tests named so pytest never collects them
EVERY_TIER = {f"tests/{tier}/test_{tier}.py": A_TEST for tier in ("unit", "integration", "e2e", "infra")}


def _whole_suite(pytester: pytest.Pytester, files: dict[str, str]) -> pytest.RunResult:
    """``pytest --whole-suite`` over ``files`` (path: source), under tests/conftest.py's check."""
    pytester.makeini("[pytest]\ntestpaths = tests\n")
    pytester.makeconftest("from tests.conftest import pytest_addoption, pytest_collection_modifyitems\n")
    for path, source in files.items():
        (pytester.path / path).parent.mkdir(parents=True, exist_ok=True)
        (pytester.path / path).write_text(source)
    return pytester.runpytest_inprocess(
        "--whole-suite", "-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:hypothesispytest"
    )


def test_the_whole_suite_runs_when_every_file_gives_a_test(pytester: pytest.Pytester) -> None:
    """A test in every file of every tier: the run goes ahead."""
    _whole_suite(pytester, EVERY_TIER).assert_outcomes(passed=4)


@pytest.mark.parametrize(
    ("files", "reported"),
    [
        (EVERY_TIER | {"tests/unit/test_named_wrong.py": NO_TEST}, "files ['unit/test_named_wrong.py']"),
        (EVERY_TIER | {"tests/e2e/test_e2e.py": NO_TEST}, "tiers ['e2e']"),
    ],
    ids=["a file", "a tier"],
)
def test_a_file_or_a_tier_that_gives_no_test_stops_the_whole_suite(
    pytester: pytest.Pytester, files: dict[str, str], reported: str
) -> None:
    """A test file that gives no test, or a tier with none, is a usage error (exit 4), never a quieter run."""
    result = _whole_suite(pytester, files)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert reported in result.stderr.str()
