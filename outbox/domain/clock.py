"""The write clock: each message's ``created_at`` and its place in this process's write order.

An outbox entry's sort key is ``<created_at>#<sequence>#<message_id>`` (``keys.outbox_sk``).
``created_at`` alone cannot order two messages of one millisecond (two in one transaction is the
common case), and a random id would order them by chance; so every message a process makes gets
a ``sequence``: a counter that grows with each message, then the process's writer token. The
clock also never runs backwards: a message's ``created_at`` is never earlier than the previous
one's of the same clock, even when the system clock steps back. So, as text, the sort keys of
one process's messages sort in the order they were made, on every path that reads the table.

The writer token tells the stream worker that two messages come from the same process, whose
order it can then trust over the clocks of two processes (``service/order.py``). A process made
by ``fork`` starts a new token, so two processes never share one.
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from outbox.domain.keys import iso, utc_now

COUNTER_DIGITS = 12  # zero-padded, so that the counter sorts as text
WRITER_CHARS = 12  # hex: 48 random bits per process


@dataclass(frozen=True)
class Stamp:
    """When a message was made and its place in its writer's order."""

    created_at: str
    sequence: str


def sequence_of(counter: int, writer: str = "") -> str:
    """``<counter, zero-padded>-<writer>``; an empty writer stands for an unknown one."""
    return f"{counter:0{COUNTER_DIGITS}d}-{writer}"


def writer_of(sequence: str) -> str | None:
    """The writer token of a ``sequence``, or None when it names none (or is not a sequence)."""
    counter, dash, writer = sequence.partition("-")
    return writer if dash and writer and counter.isdigit() else None


class WriteClock:
    """A process's write clock: ``created_at`` that never goes back and a sequence that always grows.

    Thread-safe. ``now`` is the system clock by default (a test passes another to play a second
    process or a clock that is off); ``writer`` a random token unless given.
    """

    def __init__(self, now: Callable[[], datetime] | None = None, *, writer: str | None = None) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._last = ""
        self.writer = writer or secrets.token_hex(WRITER_CHARS // 2)

    def now(self) -> datetime:
        """The clock's time as it reads now (not held back: for what is not a message's ``created_at``)."""
        return (self._now or utc_now)()

    def stamp(self) -> Stamp:
        """The next message's ``created_at`` (the clock's time, or the last one if the clock went back) and sequence."""
        with self._lock:
            created_at = max(iso(self.now()), self._last)
            self._last = created_at
            return Stamp(created_at, sequence_of(next(self._counter), self.writer))

    def loose_sequence(self) -> str:
        """A sequence for a message whose ``created_at`` this clock did not stamp: next in order, no writer named."""
        with self._lock:
            return sequence_of(next(self._counter))

    def forked(self) -> None:
        """In a child process made by ``fork``: a writer of its own, so two processes never share a token."""
        self._lock = threading.Lock()
        self.writer = secrets.token_hex(WRITER_CHARS // 2)


WRITE_CLOCK = WriteClock()
"""The clock of this process: every message made through ``Outbox`` or the API is stamped by it."""

if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=WRITE_CLOCK.forked)
