"""Answers shared by every request of one process, so that a page view costs no real work."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from pydantic import BaseModel

log = logging.getLogger(__name__)
T = TypeVar("T")
RENEW_COST_FACTOR = 10  # wait at least ten times as long as the last read took


class Recent(Generic[T]):
    """Requests get the last result from memory. Once it is older than `fresh` seconds, one
    background thread reads it again, so the read runs at most once per `fresh` seconds however
    many pages poll, and never while nobody asks. Older than `stale` seconds (nobody asked for a
    while), the request reads it itself rather than show something that old.

    A read that takes long (counts over a big event log) is renewed less often: never more
    than `1 / RENEW_COST_FACTOR` of the time is spent reading, and `stale` stretches alike."""

    def __init__(self, read: Callable[[], T], *, fresh: float, stale: float) -> None:
        self._read = read
        self._fresh, self._stale = fresh, stale
        self._lock = threading.Lock()
        self._value: T | None = None
        self._read_at = -float("inf")
        self._reading = False
        self._cost = 0.0  # seconds the last read took

    def get(self) -> T:
        with self._lock:
            value, age = self._value, time.monotonic() - self._read_at
            fresh = max(self._fresh, RENEW_COST_FACTOR * self._cost)
            stale = max(self._stale, 2 * fresh)
            refresh = value is not None and fresh < age <= stale and not self._reading
            self._reading = self._reading or refresh
        if value is None or age > stale:
            return self._read_now()
        if refresh:
            threading.Thread(target=self._refresh, name="dashboard-refresh", daemon=True).start()
        return value

    def _read_now(self) -> T:
        started = time.monotonic()
        value = self._read()
        with self._lock:
            if started >= self._read_at:  # a slower, older read never replaces a newer one
                self._value, self._read_at = value, started
                self._cost = time.monotonic() - started
        return value

    def _refresh(self) -> None:
        try:
            self._read_now()
        except Exception:  # the next request retries; past `stale` it reads (and fails) itself
            log.warning("refreshing the dashboard's pipeline state failed", exc_info=True)
        finally:
            with self._lock:
                self._reading = False


class Keyed:
    """The JSON of an answer for one state of its data, named by a key that is cheap to read
    (the newest snapshot's id, say): built once per key, then served as stored bytes."""

    def __init__(self) -> None:
        self._entry: tuple[Hashable, bytes] | None = None

    def get(self, key: Hashable, build: Callable[[], BaseModel]) -> bytes:
        entry = self._entry  # one tuple, swapped whole: safe to read while another thread sets
        if entry is not None and entry[0] == key:
            return entry[1]
        body = build().model_dump_json().encode()
        self._entry = (key, body)
        return body
