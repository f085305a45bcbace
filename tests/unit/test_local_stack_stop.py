"""The local stack stops in bounded time even when a runner is stuck (no AWS, no emulator)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from outbox.local import stack
from outbox.local.stack import LocalStack, StackConfig


class _StuckRunner(threading.Thread):
    """A runner that never ends: each join waits out its whole timeout on the test's clock."""

    def __init__(self, name: str, clock: list[float]) -> None:
        super().__init__(name=name, daemon=True)
        self.clock = clock
        self.timeouts: list[float | None] = []

    def join(self, timeout: float | None = None) -> None:
        self.timeouts.append(timeout)
        self.clock[0] += timeout or 0.0


def test_stop_waits_for_stuck_runners_at_most_the_shared_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten stuck consumers and a stuck stream runner: stop() waits two deadlines in all, not one per runner."""
    # GIVEN a clock that moves only when a runner is waited for, and eleven runners that never end
    now = [0.0]
    monkeypatch.setattr(stack, "time", SimpleNamespace(monotonic=lambda: now[0]))
    local = LocalStack(StackConfig())
    runners = [_StuckRunner(name, now) for name in ["stream-runner", *(f"consumer-{i}" for i in range(10))]]
    local._threads.extend(runners)
    # WHEN the stack stops
    local.stop()
    # THEN each group waited out one deadline (before the emulator stops, and after), every later runner none
    assert now[0] == 2 * stack.STOP_WAIT_S  # a deadline each would be 11 of them
    assert runners[0].timeouts == [stack.STOP_WAIT_S]
    assert runners[1].timeouts == [stack.STOP_WAIT_S]
    assert all(runner.timeouts == [0.0] for runner in runners[2:])
    assert local._threads == []
