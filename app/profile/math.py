"""Order-free, time-decayed interest profile sums (pure numpy, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.clustering.vectors import unit_vectors


@dataclass(frozen=True, eq=False)
class ProfileSum:
    """Decayed sum S_u of weighted event embeddings, valued at ref_time."""

    vector_sum: np.ndarray  # float64 (dim,); float64 so folding order changes only the last bits
    ref_time: float  # epoch seconds: the newest event time folded so far

    def __post_init__(self) -> None:
        v = np.array(self.vector_sum, dtype=np.float64)  # own copy: frozen means frozen
        if v.ndim != 1 or not np.all(np.isfinite(v)):
            raise ValueError("vector_sum must be a finite 1-D array")
        if not np.isfinite(self.ref_time):
            raise ValueError("ref_time must be finite")
        v.flags.writeable = False
        object.__setattr__(self, "vector_sum", v)
        object.__setattr__(self, "ref_time", float(self.ref_time))


def rebase(p: ProfileSum, ref_time: float, *, half_life_seconds: float) -> ProfileSum:
    """Value the same sum at another reference time (scales by 2^(-(new - old)/H))."""
    _check_half_life(half_life_seconds)
    scale = np.exp2(-(ref_time - p.ref_time) / half_life_seconds)
    return ProfileSum(vector_sum=p.vector_sum * scale, ref_time=ref_time)


def fold(
    current: ProfileSum | None,
    *,
    times: np.ndarray,
    weights: np.ndarray,
    vectors: np.ndarray,
    half_life_seconds: float,
) -> ProfileSum:
    """Add weighted events to a profile sum, rebasing to the newest time seen."""
    _check_half_life(half_life_seconds)
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    e = np.asarray(vectors, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] != t.shape[0] or w.shape != t.shape:
        raise ValueError(
            f"times {t.shape}, weights {w.shape} and vectors {e.shape} must describe n events"
        )
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(w)) and np.all(np.isfinite(e))):
        raise ValueError("times, weights and vectors must be finite")
    if current is not None and e.shape[1] != current.vector_sum.shape[0]:
        raise ValueError(
            f"vectors have dim {e.shape[1]}, profile has {current.vector_sum.shape[0]}"
        )
    if t.size == 0:
        if current is None:
            raise ValueError("cannot start a profile from zero events")
        return current
    new_ref = float(t.max())
    if current is not None:
        new_ref = max(new_ref, current.ref_time)
    # Every exponent is <= 0, so decay never overflows; very old terms underflow to 0, as they
    # should. Only weights far beyond the bounded ones (stored before the bound) can overflow
    # the sum: that is refused with a ValueError, which quarantines the event.
    with np.errstate(over="ignore", invalid="ignore"):
        coeffs = w * np.exp2(-(new_ref - t) / half_life_seconds)
        total = coeffs @ e
        if current is not None:
            decay = np.exp2(-(new_ref - current.ref_time) / half_life_seconds)
            total += current.vector_sum * decay
    if not np.all(np.isfinite(total)):
        raise ValueError("folding these events overflows the profile sum (weights too large)")
    return ProfileSum(vector_sum=total, ref_time=new_ref)


@dataclass(frozen=True, eq=False)
class FoldedSums:
    """Many users' sums after one fold: row i of `sums` is valued at `ref_times[i]`."""

    sums: np.ndarray  # float64 (users, dim)
    ref_times: np.ndarray  # float64 (users,)


def fold_many(
    current: np.ndarray,
    current_ref_times: np.ndarray,
    has_current: np.ndarray,
    *,
    users: np.ndarray,
    times: np.ndarray,
    weights: np.ndarray,
    vectors: np.ndarray,
    half_life_seconds: float,
) -> FoldedSums:
    """`fold` for a whole batch at once: event j goes to user `users[j]` (an index into the
    rows of `current`, every row getting at least one event); `has_current[i]` says whether
    row i is an existing profile or a new one starting from nothing. One numpy pass over the
    batch instead of one small fold per user: the same sums up to the last bits of float64
    (the events' order within a user changes, as it does between batchings)."""
    _check_half_life(half_life_seconds)
    s = np.asarray(current, dtype=np.float64)
    r = np.asarray(current_ref_times, dtype=np.float64).reshape(-1)
    known = np.asarray(has_current, dtype=bool).reshape(-1)
    u = np.asarray(users, dtype=np.intp).reshape(-1)
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    e = np.asarray(vectors)
    n_users = s.shape[0] if s.ndim == 2 else -1
    if (
        s.ndim != 2
        or r.shape != (n_users,)
        or known.shape != (n_users,)
        or e.ndim != 2
        or e.shape[1] != s.shape[1]
        or not (u.shape == t.shape == w.shape == (e.shape[0],))
    ):
        raise ValueError("fold_many: inconsistent shapes")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(w)) and np.all(np.isfinite(e))):
        raise ValueError("times, weights and vectors must be finite")
    order = np.argsort(u, kind="stable")
    sorted_users = u[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    if not np.array_equal(sorted_users[starts], np.arange(n_users)):
        raise ValueError("fold_many: every user needs at least one event")
    new_ref = np.maximum.reduceat(t[order], starts)
    new_ref = np.where(known, np.maximum(new_ref, r), new_ref)
    with np.errstate(over="ignore", invalid="ignore"):
        coeffs = w * np.exp2(-(new_ref[u] - t) / half_life_seconds)
        total = np.add.reduceat((coeffs[:, None] * e)[order], starts, axis=0, dtype=np.float64)
        decay = np.exp2(-(new_ref - np.where(known, r, new_ref)) / half_life_seconds)
        total += np.where(known[:, None], s, 0.0) * decay[:, None]
    if not np.all(np.isfinite(total)):
        raise ValueError("folding these events overflows the profile sum (weights too large)")
    return FoldedSums(sums=total, ref_times=new_ref)


def profile_vector(p: ProfileSum) -> np.ndarray | None:
    """Unit float32 profile vector S/||S||, or None when the sum is (near) zero."""
    rows, kept = unit_vectors(p.vector_sum[None, :])
    return rows[0] if len(kept) else None


def encode_sum(p: ProfileSum) -> bytes:
    """Serialise the vector sum as raw little-endian float64 (ref_time is stored beside it)."""
    return p.vector_sum.astype("<f8", copy=False).tobytes()


def decode_sum(b: bytes, dim: int) -> np.ndarray:
    """Parse bytes from encode_sum, checking length and finiteness."""
    if dim <= 0 or len(b) != 8 * dim:
        raise ValueError(f"profile sum has {len(b)} bytes, expected {8 * dim} for dim {dim}")
    v = np.frombuffer(b, dtype="<f8").astype(np.float64)
    if not np.all(np.isfinite(v)):
        raise ValueError("profile sum contains non-finite values")
    return v


def _check_half_life(half_life_seconds: float) -> None:
    if not (np.isfinite(half_life_seconds) and half_life_seconds > 0):
        raise ValueError(f"half_life_seconds must be a positive number, got {half_life_seconds!r}")
