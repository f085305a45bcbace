"""Shared fixtures: a clean AWS-free environment for every test."""

from __future__ import annotations

import pytest

from outbox.logs import configure_logging

# Our own suite tests the fixtures the package ships for its users (and opts in as they do).
pytest_plugins = ["outbox.pytest_plugin"]

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
