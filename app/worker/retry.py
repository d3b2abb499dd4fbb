"""How the worker loop fails: backing off with jitter, one log line per distinct error (with a
count, not a traceback per try), and a status /readyz can read."""

from __future__ import annotations

import logging
import random
import time

from app.db.errors import ADVICE, classify, describe

log = logging.getLogger("app.worker")
BASE_DELAY = 0.2  # seconds before the first retry
MAX_DELAY = 30.0
SUMMARY_EVERY = 60.0  # seconds between "still failing" lines for the same error


class Retry:
    """State of a loop that keeps failing, and how long to wait before the next try."""

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self.failures = 0
        self.failing_since: float | None = None  # monotonic
        self.last_error: str | None = None
        self._summarised_at = 0.0
        self._rng = rng or random.Random()

    def failed(self, exc: BaseException) -> float:
        """Record a failed step; returns the seconds to wait before the next one."""
        now = time.monotonic()
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = now
        error = describe(exc)
        trouble = classify(exc)
        if error != self.last_error:
            self.last_error, self._summarised_at = error, now
            if trouble is not None:  # the database's state, not a bug: no traceback
                log.warning("worker step failed: %s (%s); backing off", ADVICE[trouble], error)
            else:
                log.error("worker step failed; backing off: %s", error, exc_info=exc)
        elif now - self._summarised_at >= SUMMARY_EVERY:
            self._summarised_at = now
            log.warning(
                "worker step still failing: %d times over %.0f s: %s",
                self.failures,
                now - self.failing_since,
                error,
            )
        # Full jitter on an exponential ceiling: workers that failed together retry apart.
        ceiling = min(MAX_DELAY, BASE_DELAY * 2 ** min(self.failures - 1, 16))
        return ceiling * self._rng.uniform(0.5, 1.0)

    def succeeded(self) -> None:
        if self.failures:
            elapsed = time.monotonic() - (self.failing_since or time.monotonic())
            log.info("worker recovered after %d failed steps over %.0f s", self.failures, elapsed)
        self.failures, self.failing_since, self.last_error = 0, None, None

    def status(self, *, stall_seconds: float) -> str:
        """ "ok", or how long the loop has been failing (once that is `stall_seconds` or more)."""
        if self.failing_since is None:
            return "ok"
        failing_for = time.monotonic() - self.failing_since
        if failing_for < stall_seconds:
            return "ok"
        return f"failing for {failing_for:.0f} s ({self.failures} tries): {self.last_error}"
