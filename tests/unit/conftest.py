"""Fixtures of the unit tests (the in-memory fakes), and the guard that keeps them unit tests.

A unit test starts no process, opens no socket and uses no emulator: while one runs (its fixtures
included), connecting, binding or sending on a socket, resolving a host name, starting a process
and importing moto raise ``IsolationError``, and a test that caught the error fails all the same.
Such a test belongs in tests/integration (moto in process, programs) or tests/e2e (over HTTP).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

import pytest
import urllib3.util.connection  # noqa: F401 - its import probes IPv6 by binding ::1: done here, before any guard

from outbox.testing import FakePublisher, InMemoryMessageStore

# The packages of the emulator: a unit test runs on the fakes of outbox.testing instead.
EMULATOR_PACKAGES = ("moto",)
# (owner, attribute) of every way out of the process a unit test could take.
GUARDED: tuple[tuple[Any, str], ...] = (
    (socket.socket, "connect"),
    (socket.socket, "connect_ex"),
    (socket.socket, "bind"),
    (socket.socket, "sendto"),
    (socket, "getaddrinfo"),
    (subprocess.Popen, "__init__"),
    (os, "system"),
    (os, "fork"),
    (os, "posix_spawn"),
    (os, "posix_spawnp"),
)


_INHERITED = object()  # stands for "not the owner's own attribute" among the saved originals


class IsolationError(RuntimeError):
    """A unit test reached outside its process: a socket, a process or the emulator."""


class _NoEmulator(MetaPathFinder):
    """Refuses to import the emulator's packages."""

    def __init__(self, refuse: Callable[[str], IsolationError]) -> None:
        self.refuse = refuse
        self.active = True  # off when its test is done (pytester may put a copy of sys.meta_path back)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if self.active and fullname.partition(".")[0] in EMULATOR_PACKAGES:
            raise self.refuse(f"import {fullname}")
        return None


@contextmanager
def isolated(test: str) -> Iterator[list[str]]:
    """Within the block, every way out of the process raises ``IsolationError``; yields what was tried."""
    tried: list[str] = []

    def refuse(what: str) -> IsolationError:
        tried.append(what)
        return IsolationError(
            f"{test}: {what}: a unit test starts no process, opens no socket and uses no emulator; "
            "use the fakes of outbox.testing, or move the test to tests/integration (or tests/e2e over HTTP)"
        )

    def blocked(name: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            raise refuse(f"{name}{_shown(args, kwargs)}")

        return refused

    # socket.socket's methods live on its C base class: the patch shadows them, and its removal uncovers them.
    guarded = [(owner, name, owner.__dict__.get(name, _INHERITED)) for owner, name in GUARDED if hasattr(owner, name)]
    finder = _NoEmulator(refuse)
    for owner, name, _ in guarded:
        setattr(owner, name, blocked(f"{getattr(owner, '__name__', owner)}.{name}"))
    sys.meta_path.insert(0, finder)
    try:
        yield tried
    finally:
        finder.active = False
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
        for owner, name, original in guarded:
            if original is _INHERITED:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


def _shown(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The call's arguments, short (the first is the socket or Popen itself on a method)."""
    shown = ", ".join([*(repr(a) for a in args if not isinstance(a, socket.socket | subprocess.Popen)), *kwargs])
    return f"({shown[:120]})"


def _guarded(item: pytest.Item) -> Generator[None, object, object]:
    """Run one phase of ``item`` isolated; fail it if it tried to leave, even when it caught the error."""
    with isolated(item.nodeid) as tried:
        result = yield
    if tried:
        pytest.fail(f"{item.nodeid} tried to leave its process: {'; '.join(tried)}", pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    """The fixtures are set up isolated."""
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """The test runs isolated."""
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    """The fixtures are torn down isolated."""
    return (yield from _guarded(item))


@pytest.fixture
def store() -> InMemoryMessageStore:
    """A fresh store."""
    return InMemoryMessageStore()


@pytest.fixture
def publisher() -> FakePublisher:
    """A fresh publisher."""
    return FakePublisher()
