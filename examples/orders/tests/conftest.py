"""The order service's fixtures: the outbox's own (``outbox.pytest_plugin``), on the shop's table."""

from __future__ import annotations

import pytest
from orders.service import HASH_KEY, RANGE_KEY, TABLE

from outbox.harness import LocalTable

pytest_plugins = ["outbox.pytest_plugin"]


@pytest.fixture
def outbox_table() -> LocalTable:
    """The shop's own table, keyed PK/SK, as the service deploys it."""
    return LocalTable(TABLE, hash_key=HASH_KEY, range_key=RANGE_KEY)
