"""Fixtures of the unit tests: the in-memory fakes."""

from __future__ import annotations

import pytest

from outbox.testing import FakePublisher, InMemoryMessageStore


@pytest.fixture
def store() -> InMemoryMessageStore:
    """A fresh store."""
    return InMemoryMessageStore()


@pytest.fixture
def publisher() -> FakePublisher:
    """A fresh publisher."""
    return FakePublisher()
