"""pytest fixtures for code that uses the outbox; opt in with ``pytest_plugins = ["outbox.pytest_plugin"]``.

It is not an entry point, so it loads only into the test suites that ask for it: a library in
your process is a guest, and an autoloaded plugin would be one in every pytest run you make.
What the fixtures hand out is ``outbox.harness``'s (import its names from there, also in a
``conftest.py``); the events they build, ``outbox.lambda_events``'.

- ``outbox_memory``: the delivery side in memory, no AWS and no emulator (``MemoryOutbox``).
- ``outbox_local``: your table and its queues on moto in process (``LocalOutbox``; the ``[local]``
  extra, and without it the test fails in one line naming it), the ``OUTBOX_*`` environment set
  for the test.
- ``outbox_table``: which table ``outbox_local`` makes (``LocalTable``); override it in your
  ``conftest.py`` with your table's name and key names.
- ``lambda_context``: a Lambda context with time left (``outbox.testing.FakeLambdaContext``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from outbox.harness import LocalExtraMissingError, LocalOutbox, LocalTable, MemoryOutbox, local_outbox
from outbox.testing import FakeLambdaContext

__all__ = ["lambda_context", "outbox_local", "outbox_memory", "outbox_table"]


@pytest.fixture
def outbox_table() -> LocalTable:
    """The table ``outbox_local`` makes: ``outbox`` keyed ``pk``/``sk``; override this fixture with yours."""
    return LocalTable()


@pytest.fixture
def outbox_local(outbox_table: LocalTable) -> Iterator[LocalOutbox]:
    """Your table and its queues on moto in process, an ``Outbox`` on it, the ``OUTBOX_*`` environment set."""
    with contextlib.ExitStack() as stack:
        try:
            local = stack.enter_context(local_outbox(outbox_table))
        except LocalExtraMissingError as exc:
            pytest.fail(f"outbox_local: {exc}", pytrace=False)
        yield local


@pytest.fixture
def outbox_memory() -> Iterator[MemoryOutbox]:
    """The delivery side in memory (no AWS): ``message``, ``relay``, ``consume(deliver)``, ``record``."""
    memory = MemoryOutbox()
    try:
        yield memory
    finally:
        memory.close()


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    """A Lambda context with a minute left and a fixed request id."""
    return FakeLambdaContext()
