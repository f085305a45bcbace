"""Invariant 8's write order in the domain: created_at never goes back, and one writer's sort keys sort as it wrote."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from outbox.domain.clock import WRITE_CLOCK, WriteClock, sequence_of, writer_of
from outbox.domain.keys import outbox_sk, outbox_sk_created_at, outbox_sk_floor, outbox_sk_sequence, outbox_sk_time
from outbox.domain.message import new_message_id
from outbox.service.accept import new_message

T0 = datetime(2026, 3, 1, 12, 0, 0, 123_000, tzinfo=UTC)


class _SteppedClock:
    """A system clock that reads the times it is given, one per call."""

    def __init__(self, *times: datetime) -> None:
        self.times = list(times)

    def __call__(self) -> datetime:
        return self.times.pop(0)


def _keys(clock: WriteClock, count: int) -> list[str]:
    """The sort keys of ``count`` messages stamped by ``clock``, each with a random id."""
    stamps = [clock.stamp() for _ in range(count)]
    return [outbox_sk(s.created_at, new_message_id(), s.sequence) for s in stamps]


def test_messages_of_one_millisecond_sort_in_the_order_they_were_made() -> None:
    """Same millisecond, random ids: the sort keys, as text, still sort in write order."""
    clock = WriteClock(lambda: T0)

    keys = _keys(clock, 50)

    assert {outbox_sk_created_at(k) for k in keys} == {"2026-03-01T12:00:00.123Z"}
    assert sorted(keys) == keys


def test_created_at_never_goes_back_when_the_system_clock_does() -> None:
    """The clock steps back a second: the next message keeps the previous created_at, and sorts after it."""
    clock = WriteClock(_SteppedClock(T0, T0 - timedelta(seconds=1), T0 + timedelta(milliseconds=5)))

    stamps = [clock.stamp() for _ in range(3)]

    assert [s.created_at for s in stamps] == [
        "2026-03-01T12:00:00.123Z",
        "2026-03-01T12:00:00.123Z",  # not 12:00:00.123 less a second
        "2026-03-01T12:00:00.128Z",
    ]
    keys = [outbox_sk(s.created_at, new_message_id(), s.sequence) for s in stamps]
    assert sorted(keys) == keys


def test_the_counter_sorts_as_text_past_a_power_of_ten() -> None:
    """Zero-padded: the 10th message of a millisecond sorts after the 9th, not between the 1st and the 2nd."""
    assert sorted([sequence_of(10, "w"), sequence_of(9, "w"), sequence_of(1, "w")]) == [
        sequence_of(1, "w"),
        sequence_of(9, "w"),
        sequence_of(10, "w"),
    ]


def test_threads_sharing_a_clock_never_share_a_place() -> None:
    """The clock is one process's: threads stamping at once get distinct, ordered places."""
    clock = WriteClock(lambda: T0)
    sequences: list[str] = []
    lock = threading.Lock()

    def stamp() -> None:
        for _ in range(200):
            sequence = clock.stamp().sequence
            with lock:
                sequences.append(sequence)

    threads = [threading.Thread(target=stamp) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(sequences)) == 800


def test_each_clock_is_a_writer_of_its_own() -> None:
    """Two processes (two clocks) name two writers; a sequence without a writer names none."""
    one, other = WriteClock(), WriteClock()

    assert writer_of(one.stamp().sequence) == one.writer
    assert one.writer != other.writer
    assert writer_of(one.loose_sequence()) is None
    assert writer_of("") is None
    assert writer_of("not-a-sequence") is None


def test_a_forked_process_writes_as_another_writer() -> None:
    """After fork the child takes a writer of its own: two processes never pass for one."""
    clock = WriteClock(lambda: T0)
    before = clock.writer

    clock.forked()

    assert clock.writer != before
    assert writer_of(clock.stamp().sequence) == clock.writer


def test_the_sort_key_of_today_and_of_0_1_0() -> None:
    """A key holds time, sequence and id; a 0.1.0 key (time and id) reads back with no sequence."""
    message_id = new_message_id()
    new = outbox_sk("2026-03-01T12:00:00.123Z", message_id, "000000000001-abc")
    old = outbox_sk("2026-03-01T12:00:00.123Z", message_id)

    assert new == f"2026-03-01T12:00:00.123Z#000000000001-abc#{message_id}"
    assert old == f"2026-03-01T12:00:00.123Z#{message_id}"
    assert (outbox_sk_created_at(new), outbox_sk_sequence(new)) == ("2026-03-01T12:00:00.123Z", "000000000001-abc")
    assert (outbox_sk_created_at(old), outbox_sk_sequence(old)) == ("2026-03-01T12:00:00.123Z", None)


def test_keys_of_both_formats_sort_by_time() -> None:
    """Entries 0.1.0 wrote and entries of today, in one bucket: oldest first, whatever the format."""
    earlier = outbox_sk("2026-03-01T12:00:00.122Z", "ffffffff-ffff-4fff-bfff-ffffffffffff")
    later = outbox_sk("2026-03-01T12:00:00.123Z", "00000000-0000-4000-8000-000000000000", sequence_of(1, "w"))
    latest = outbox_sk("2026-03-01T12:00:00.124Z", "00000000-0000-4000-8000-000000000000")

    assert sorted([latest, later, earlier]) == [earlier, later, latest]


def test_the_sweepers_horizon_and_age_read_every_format() -> None:
    """outbox_sk_floor and outbox_sk_time (the sweeper's) agree with keys of today, of 0.1.0 and in flight."""
    message_id = new_message_id()
    keys = [
        outbox_sk("2026-03-01T12:00:00.123Z", message_id, sequence_of(7, "w")),  # PENDING, today
        outbox_sk("2026-03-01T12:00:00.123Z", message_id),  # 0.1.0's, and a record in flight's
    ]

    for key in keys:
        assert outbox_sk_time(key) == T0
        assert outbox_sk_floor(T0) <= key < outbox_sk_floor(T0 + timedelta(milliseconds=1))
        assert outbox_sk_floor(T0 - timedelta(milliseconds=1)) < key


def test_new_message_is_stamped_by_the_clock_it_is_given() -> None:
    """Two messages made in one millisecond: one created_at, increasing sequences of the clock's writer."""
    clock = WriteClock(lambda: T0)

    first, second = (new_message({"n": n}, type="T", clock=clock) for n in range(2))

    assert first.envelope.created_at == second.envelope.created_at == "2026-03-01T12:00:00.123Z"
    assert first.sequence is not None
    assert second.sequence is not None
    assert first.sequence < second.sequence
    assert writer_of(first.sequence) == clock.writer


def test_by_default_messages_are_stamped_by_the_process_clock() -> None:
    """Without a clock: the process's own, whose writer every Outbox and the API share."""
    message = new_message({"n": 1}, type="T")

    assert message.sequence is not None
    assert writer_of(message.sequence) == WRITE_CLOCK.writer
