"""The local stack stops in bounded time even when a runner is stuck (no AWS, no emulator)."""

from __future__ import annotations

import threading
import time

import pytest

from outbox.local import stack
from outbox.local.stack import LocalStack, StackConfig


def test_stop_waits_for_stuck_runners_at_most_the_shared_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten stuck consumers and a stuck stream runner: stop() returns after two short waits, not eleven."""
    monkeypatch.setattr(stack, "STOP_WAIT_S", 0.5)
    release = threading.Event()
    local = LocalStack(StackConfig())
    names = ["stream-runner", *(f"consumer-{i}" for i in range(10))]
    for name in names:
        thread = threading.Thread(target=release.wait, args=(30,), name=name, daemon=True)
        thread.start()
        local._threads.append(thread)
    started = time.monotonic()
    local.stop()
    took = time.monotonic() - started
    release.set()
    assert 1.0 <= took < 2.0  # 0.5 s before the emulator stops, 0.5 s after; a join each would be 5.5 s
    assert local._threads == []
