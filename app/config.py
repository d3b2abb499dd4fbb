"""Settings: one class, read from `APP_*` environment variables."""

from __future__ import annotations

import logging
import re
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

from app.clustering.refit import first_fit_users

DEFAULT_EVENT_WEIGHTS = {
    "view": 1.0,
    "click": 1.0,
    "search": 1.5,
    "like": 3.0,
    "dislike": -2.0,
    "share": 3.0,
    "purchase": 4.0,
    "review": 3.0,
}
SCOPES = frozenset({"ingest", "read", "admin"})
# The largest |weight| of an event type or of one event. Each event adds at most |w| to a profile
# sum (embeddings are unit vectors, decay factors are <= 1), so sums of any realistic number of
# events stay far from float64's 1.8e308 and profile math never overflows.
MAX_WEIGHT = 1e6
AUTO_FIRST_CLUSTERS = 8  # the first model's k under APP_CLUSTERS=auto; refits then choose


class WorkerMode(StrEnum):
    inline = "inline"  # the API process also runs the worker loop in a thread
    off = "off"  # workers run elsewhere (`python -m app worker`)


class LogFormat(StrEnum):
    text = "text"
    json = "json"


def _parse_api_keys(value: object) -> dict[str, frozenset[str]]:
    """`key:scope+scope,key2:scope` -> {key: scopes}; `admin` implies every scope."""
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    else:
        for entry in str(value or "").split(","):
            if not entry.strip():
                continue
            key, sep, scopes = entry.strip().partition(":")
            if not sep or not key:
                raise ValueError("each key must look like KEY:scope[+scope...]")
            items.append((key, scopes.split("+")))
    keys: dict[str, frozenset[str]] = {}
    for key, scopes in items:
        scope_set = frozenset(s.strip() for s in scopes if s.strip())
        if not scope_set or not scope_set <= SCOPES:
            raise ValueError(f"scopes must be some of {sorted(SCOPES)}")
        if len(key) < 16:
            raise ValueError("each key must be at least 16 characters")
        keys[key] = SCOPES if "admin" in scope_set else scope_set
    return keys


def _check_weights(weights: dict[str, float]) -> dict[str, float]:
    if not weights:
        raise ValueError("at least one event type is required")
    for name, weight in weights.items():
        if not name or len(name) > 32 or not abs(weight) <= MAX_WEIGHT:
            raise ValueError(
                f"bad event type or weight (|weight| <= {MAX_WEIGHT:g}): {name!r}={weight!r}"
            )
    return weights


class Settings(BaseSettings):
    """Every knob of the service; a bad value stops start-up naming the variable."""

    model_config = SettingsConfigDict(env_prefix="APP_", extra="ignore", frozen=True)

    database_url: str = "sqlite:///./var/interest-clusters.db"
    embedding_model: str = "all-MiniLM-L6-v2"
    # The runtime that encodes (README: Embedding backends). The default is the fastest one
    # within the quality bars on the bundled model (benchmarks/RESULTS.md, bench_encode).
    embedding_backend: Literal["torch", "onnx", "onnx-int8", "openvino", "openvino-int8"] = (
        "openvino"
    )
    # Encoding threads; 0: every core in a standalone worker, half of them in an inline one
    # (the API answers from the same cores).
    embedding_threads: int = Field(0, ge=0, le=1024)
    embedding_cache_dir: Path = Path("var/embedding-models")  # the onnx/openvino exports
    # A fixed k, or "auto": each generation takes the k its k report chooses (app/clustering/
    # k_selection.py), starting from AUTO_FIRST_CLUSTERS. The default: on MovieLens auto ended
    # at k=24 with 1.59x lift over popularity against 1.48x at k=8 (benchmarks/EVALUATION.md).
    clusters: int | Literal["auto"] = "auto"
    profile_half_life_days: float = Field(30.0, gt=0)
    event_weights: Annotated[dict[str, float], AfterValidator(_check_weights)] = Field(
        default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS)
    )
    model_half_life: float = Field(50_000.0, ge=0)  # profile updates; 0 turns forgetting off
    batch_size: int = Field(1024, ge=1, le=100_000)  # events per profile step, rows per fit
    # A train step partial_fits up to this many batches of batch_size profiles and commits them
    # as one version: the step's database work is paid once per batches * batch_size rows.
    train_step_batches: int = Field(16, ge=1, le=1000)
    metrics_sample_size: int = Field(2000, ge=10)  # users in the (O(n^2)) silhouette
    metrics_max_users: int = Field(20_000, ge=10)  # users in one evaluation, sampled beyond
    consolidate: bool = True  # when the trainer is idle: one Lloyd step over all profiles
    # Each consolidation reads every profile once: at most one per interval (0: whenever idle).
    consolidate_interval_seconds: float = Field(60.0, ge=0)
    api_keys: Annotated[dict[str, frozenset[str]], NoDecode] = Field(default_factory=dict)
    worker: WorkerMode = WorkerMode.inline

    max_events_per_request: int = Field(1000, ge=1, le=100_000)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    # None: the first model fits once first_fit_users(k) users have a profile (10 per cluster).
    min_users_first_fit: int | None = Field(None, ge=2)
    refit: bool = True  # the trainer tries new generations by itself (growth, turnover)
    # Each refit try reads a sample and fits it: at most one per interval (0: whenever due).
    refit_interval_seconds: float = Field(60.0, ge=0)
    refit_sample_size: int = Field(20_000, ge=20)  # profiles a refit fits and judges on
    checkpoints_keep: int = Field(20, ge=1)
    evaluate_interval_seconds: float = Field(60.0, gt=0)
    poll_interval_seconds: float = Field(0.2, gt=0)
    # /readyz fails once every worker step has failed for this long (an inline worker only).
    worker_stall_seconds: float = Field(60.0, ge=0)
    # Acting on the clusters (docs/recommendations.md): the change feed keeps this long;
    # cluster rankings (and the sweep that brings every assignment to the current model) are
    # refreshed after an evaluation, at most once per interval, counting the newest
    # `recommend_max_events` events.
    changes_retention_days: float = Field(30.0, gt=0)
    recommend_interval_seconds: float = Field(60.0, ge=0)
    recommend_max_events: int = Field(2_000_000, ge=1)
    recommend_items_per_cluster: int = Field(500, ge=100)
    interests: int = Field(3, ge=1, le=10)  # interests per user (GET /v1/users/{id}/interests)
    recommend_by_interests: bool = True  # blend the interests' clusters, else the one cluster
    seed: int = 0
    log_format: LogFormat = LogFormat.text
    log_level: str = "INFO"

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys(cls, value: object) -> dict[str, frozenset[str]]:
        return _parse_api_keys(value)

    @field_validator("clusters")
    @classmethod
    def _clusters(cls, value: int | str) -> int | str:
        if value != "auto" and not (isinstance(value, int) and 2 <= value <= 1024):
            raise ValueError('must be a number of clusters from 2 to 1024, or "auto"')
        return value

    @property
    def fixed_clusters(self) -> int | None:
        """The configured k, or None for auto."""
        return None if self.clusters == "auto" else int(self.clusters)

    @property
    def first_clusters(self) -> int:
        """The k of the first model (auto starts from AUTO_FIRST_CLUSTERS)."""
        return self.fixed_clusters or AUTO_FIRST_CLUSTERS

    @property
    def first_fit_users(self) -> int:
        """Users with a profile the first model waits for."""
        return self.min_users_first_fit or first_fit_users(self.first_clusters)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in logging.getLevelNamesMapping():
            raise ValueError("not a logging level")
        return value.upper()

    @property
    def profile_half_life_seconds(self) -> float:
        return self.profile_half_life_days * 86_400.0


class SettingsError(SystemExit):
    """Raised at start-up; the message names every bad `APP_*` variable."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"APP_{'_'.join(str(p) for p in err['loc'][:1]).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
    except PydanticSettingsError as exc:  # a value that is not even valid JSON
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"APP_{field.group(1).upper()}" if field else "an APP_ variable"
        raise SettingsError(f"invalid settings: {name}: not valid JSON") from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()
