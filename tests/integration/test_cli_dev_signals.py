"""``outbox dev`` stops on SIGINT and SIGTERM, and a second signal while it stops does not cut the stop short."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from outbox import cli
from outbox.local import stack as local_stack


class _Stack:
    """A stack whose start is interrupted at once (Ctrl-C) and whose stop is signalled again halfway."""

    last: _Stack
    stopped: list[str]

    def __init__(self, _config: Any) -> None:
        self.stopped = []
        _Stack.last = self

    def start(self) -> Any:
        raise KeyboardInterrupt  # Ctrl-C as soon as the stack serves

    def stop(self) -> None:
        self.stopped.append("runners")
        os.kill(os.getpid(), signal.SIGINT)  # the impatient second Ctrl-C
        os.kill(os.getpid(), signal.SIGTERM)  # and a SIGTERM on top
        self.stopped.append("emulator")  # the emulator's process, stopped only if the stop goes on


def test_a_second_signal_while_stopping_lets_the_stop_finish_and_restores_the_handlers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C stops it (exit 0); SIGINT and SIGTERM during the stop are ignored; the handlers are put back."""
    monkeypatch.setattr(local_stack, "LocalStack", _Stack)
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))

    assert cli.main(["dev", "--port", "0"]) == 0

    assert _Stack.last.stopped == ["runners", "emulator"]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert capsys.readouterr().err == "outbox dev: stopping\n"
