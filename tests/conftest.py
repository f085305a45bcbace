"""Shared fixtures (a clean AWS-free environment for every test) and the whole-suite check of `make test`."""

from __future__ import annotations

import pytest

from outbox.logs import configure_logging

# pytester: tests/unit/test_isolation.py runs a small suite under the unit tests' guard, in process.
pytest_plugins = ("pytester",)

# The tiers of the suite (docs/evidence.md, "Tests"); the whole suite runs a test of every one of them.
TIERS = ("unit", "integration", "e2e", "infra")


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--whole-suite``: what ``make test`` and CI run, held to run every test file."""
    parser.addoption(
        "--whole-suite",
        action="store_true",
        help="fail unless every tests/**/test_*.py file gives at least one test (make test and CI pass it)",
    )


@pytest.hookimpl(tryfirst=True)  # before -k, -m and --lf deselect anything
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--whole-suite``, a test file or a tier that gave no test is an error, not a quieter run."""
    if not config.getoption("whole_suite"):
        return
    tests = config.rootpath / "tests"
    collected = {item.path for item in items}
    missing = sorted(str(path.relative_to(tests)) for path in tests.rglob("test_*.py") if path not in collected)
    empty = [tier for tier in TIERS if not any(path.is_relative_to(tests / tier) for path in collected)]
    if missing or empty:
        raise pytest.UsageError(f"--whole-suite: no test collected from tiers {empty} or files {missing}")


FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture(autouse=True)
def _isolated_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach real AWS or read a developer's profile."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    # OUTBOX_METRICS: the `outbox sweep` command turns metric lines off in its own process environment.
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "OUTBOX_TABLE_NAME", "OUTBOX_QUEUE_URL", "OUTBOX_METRICS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    configure_logging(level="WARNING")
