"""When the model fits first, when a new generation is due, and when it may replace the old one.

Pure rules over counts and inertias, so the trainer's decisions can be tested and explained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# A centre estimated as the mean of m members misses the cluster's true mean by sigma^2/m in
# expectation, so a user it did not see lies sigma^2 (1 + 1/m) from it instead of sigma^2: the
# model's inertia on new users is about 1/m above that of centres known exactly. Ten members
# per cluster keep the first model within about 10% of that (measured on MovieLens in
# benchmarks/EVALUATION.md), and refits close the rest as the population grows.
MEMBERS_PER_CLUSTER = 10
GROWTH = 1.25  # a refit is tried when the population grew by a quarter since the last try
TURNOVER = 0.25  # ... or when a quarter as many profile updates as users were trained since
HELD_OUT_SHARE = 0.2  # of the refit sample: scored, never fitted on
MIN_GAIN = 0.005  # a candidate replaces the model only when 0.5% better on the held-out users


def first_fit_users(clusters: int) -> int:
    """Users with a profile the first model waits for."""
    if clusters < 1:
        raise ValueError(f"clusters must be >= 1, got {clusters}")
    return MEMBERS_PER_CLUSTER * clusters


@dataclass(frozen=True)
class RefitMark:
    """What the trainer had seen when it last tried a refit (or fitted its first model)."""

    users: int  # profiles in the population then
    trained_rows: int  # profile rows trained by the model since it started, then
    at: float  # monotonic seconds


def refit_trigger(
    *, last: RefitMark, users: int, trained_rows: int, now: float, min_interval: float
) -> str | None:
    """Why a new generation is due now, or None.

    'growth': the population grew by GROWTH since the last try (the model was fitted on fewer
    users than it now serves; geometric, so a growing population costs O(log n) refits).
    'turnover': TURNOVER times as many profile updates were trained since the last try as there
    were users (interests may have drifted away from the centres although the population did not
    grow; on the MovieLens drift evaluation a whole turnover was too slow to follow a switch).
    At most one try per min_interval seconds, because each one reads and fits a sample."""
    if now - last.at < min_interval:
        return None
    if users >= math.ceil(GROWTH * last.users) and users > last.users:
        return "growth"
    if last.users and trained_rows - last.trained_rows >= TURNOVER * last.users:
        return "turnover"
    return None


def split_held_out(n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, held-out rows) of a sample of n: a seeded shuffle, HELD_OUT_SHARE held out."""
    order = np.random.default_rng(seed).permutation(n)
    held = max(1, round(n * HELD_OUT_SHARE)) if n > 1 else 0
    return np.sort(order[held:]), np.sort(order[:held])


def better(*, current: float, candidate: float) -> bool:
    """Whether a candidate's held-out inertia beats the current model's by MIN_GAIN."""
    if not (math.isfinite(current) and math.isfinite(candidate)):
        return False
    return candidate < current * (1.0 - MIN_GAIN)
