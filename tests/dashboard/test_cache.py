"""The shared pipeline read: one read serves every poll, refreshed behind the answers."""

from __future__ import annotations

import threading
import time

import pytest

from app.dashboard.cache import Recent


class Reads:
    """A read that counts itself and can be made slow or failing."""

    def __init__(self) -> None:
        self.count = 0
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False

    def __call__(self) -> int:
        self.gate.wait(5)
        if self.fail:
            raise RuntimeError("database down")
        self.count += 1
        return self.count


def eventually(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_polls_share_one_read_until_it_ages_then_one_background_read_renews_it():
    reads = Reads()
    recent = Recent(reads, fresh=0.2, stale=30)
    assert [recent.get() for _ in range(5)] == [1] * 5  # the first request read it itself
    time.sleep(0.25)
    reads.gate.clear()  # the renewal now hangs until released
    assert [recent.get() for _ in range(5)] == [1] * 5  # answered at once, from memory
    reads.gate.set()
    eventually(lambda: recent.get() == 2)
    assert reads.count == 2  # five aged polls, one renewal


def test_after_nobody_asked_for_a_while_a_request_reads_afresh():
    reads = Reads()
    recent = Recent(reads, fresh=0.05, stale=0.2)
    assert recent.get() == 1
    time.sleep(0.3)
    assert recent.get() == 2 and reads.count == 2  # not the old value, and not in background


def test_a_failed_renewal_keeps_the_last_answer_and_a_stale_one_is_not_shown():
    reads = Reads()
    recent = Recent(reads, fresh=0.05, stale=0.5)
    assert recent.get() == 1
    reads.fail = True
    time.sleep(0.1)
    assert recent.get() == 1  # the renewal fails in the background
    eventually(lambda: not recent._reading)
    time.sleep(0.5)
    with pytest.raises(RuntimeError, match="database down"):
        recent.get()


def test_a_slow_read_is_renewed_less_often():
    reads = Reads()

    def slow() -> int:
        time.sleep(0.1)
        return reads()

    recent = Recent(slow, fresh=0.01, stale=30)
    assert recent.get() == 1  # took ~0.1 s: the next renewal waits ~1 s, not 0.01 s
    time.sleep(0.3)
    assert recent.get() == 1
    time.sleep(0.2)
    assert recent.get() == 1 and reads.count == 1  # no renewal started yet
    time.sleep(0.7)
    recent.get()  # past ten times the read's cost: renewed in the background
    eventually(lambda: reads.count == 2)


def test_a_keyed_answer_is_built_once_per_key():
    from pydantic import BaseModel

    from app.dashboard.cache import Keyed

    class Answer(BaseModel):
        n: int

    builds: list[int] = []

    def build(n: int) -> Answer:
        builds.append(n)
        return Answer(n=n)

    cache = Keyed()
    assert cache.get(1, lambda: build(1)) == b'{"n":1}'
    assert cache.get(1, lambda: build(99)) == b'{"n":1}'  # same key: the stored bytes
    assert cache.get(2, lambda: build(2)) == b'{"n":2}'
    assert builds == [1, 2]
