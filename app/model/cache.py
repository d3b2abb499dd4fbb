"""The latest committed centers, cached per version, for queries. Reads never block training."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from app.clustering.codec import decode_arrays
from app.model import repository as model_repository


@dataclass(frozen=True)
class CurrentModel:
    version: int
    centers: np.ndarray  # (k, d) float64
    trained_at: object
    ids: list[int]  # the public id of each centre


class ModelCache:
    """Holds the centers of the newest version seen; reloads only when the version moved."""

    def __init__(self) -> None:
        self._current: CurrentModel | None = None
        self._lock = threading.Lock()

    def get(self, conn: Connection, version: int | None) -> CurrentModel | None:
        """The centers of `version` (the latest, read by the caller in its own query)."""
        if version is None:
            return None
        current = self._current
        if current is not None and current.version == version:
            return current
        with Session(bind=conn) as session:  # once per version: the ORM's cost is paid rarely
            row = model_repository.get_checkpoint(session, version)
        if row is None:  # pruned between the two reads: the next call sees the newer one
            return current
        centers, _ = decode_arrays(model_repository.checkpoint_state(row))
        loaded = CurrentModel(
            version=row.version,
            centers=centers,
            trained_at=row.created_at,
            ids=model_repository.checkpoint_ids(row)[0],
        )
        with self._lock:
            if self._current is None or self._current.version < loaded.version:
                self._current = loaded
        return loaded
