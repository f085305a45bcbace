"""A local stack whose start fails midway stops what it started: the emulator, and the API's port on loopback."""

from __future__ import annotations

import threading

import pytest

from outbox.domain.errors import AwsError
from outbox.local import stack
from outbox.local.stack import LocalStack, StackConfig


class _Emulator:
    """Stands for the emulator's child process: started and stopped, nothing else."""

    endpoint_url = "http://127.0.0.1:9"

    def __init__(self) -> None:
        self.running = False

    def start(self) -> str:
        self.running = True
        return self.endpoint_url

    def stop(self) -> None:
        self.running = False


@pytest.mark.parametrize("failure", [AwsError("bootstrap failed (InternalError)"), KeyboardInterrupt()])
def test_a_start_that_fails_midway_stops_what_it_started(
    monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    """A failed bootstrap or a Ctrl-C after the emulator started: the emulator is stopped, the port closed."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")  # recorded, so what start() sets is undone after the test

    def bootstrap(*_: object, **__: object) -> None:
        raise failure

    monkeypatch.setattr(stack, "bootstrap", bootstrap)
    local = LocalStack(StackConfig(api_port=0))
    emulator = _Emulator()
    local.emulator = emulator  # type: ignore[assignment]
    before = set(threading.enumerate())  # other tests' threads may end meanwhile: only new ones count

    with pytest.raises(type(failure)):
        local.start()

    assert not emulator.running
    assert local._server is None
    assert set(threading.enumerate()) - before == set()
