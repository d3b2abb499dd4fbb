"""PNG plots of a run's dynamics and of the k / half-life comparison (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DPI = 90


def dynamics(result: dict[str, Any], folder: Path) -> list[Path]:
    """Per evaluated model version: silhouette, cluster sizes, share of users who moved."""
    folder.mkdir(parents=True, exist_ok=True)
    snaps = result["history"]
    versions = [s["model_version"] for s in snaps]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    ax1.plot(versions, [s["silhouette"] for s in snaps], marker=".", label="silhouette")
    ax1.plot(
        versions,
        [s["simplified_silhouette"] for s in snaps],
        marker=".",
        label="simplified (centroid) silhouette",
    )
    ax1.set_ylabel("score")
    ax1.legend(loc="best", fontsize=8)
    ax1.grid(alpha=0.3)

    k = len(snaps[-1]["sizes"])
    sizes = [[s["sizes"][c] if c < len(s["sizes"]) else 0 for s in snaps] for c in range(k)]
    ax2.stackplot(versions, sizes, labels=[f"cluster {c}" for c in range(k)])
    ax2.set_ylabel("users per cluster")
    if k <= 16:
        ax2.legend(loc="upper left", fontsize=7, ncol=2)
    ax2.grid(alpha=0.3)

    changed = [(v, s["changed_share"]) for v, s in zip(versions, snaps, strict=True)]
    changed = [(v, c) for v, c in changed if c is not None]
    ax3.plot([v for v, _ in changed], [c for _, c in changed], marker=".", color="tab:red")
    ax3.set_ylabel("share of users who changed cluster\n(since the previous snapshot)")
    ax3.set_xlabel("model version")
    ax3.set_ylim(bottom=0)
    ax3.grid(alpha=0.3)
    _replay_dates(ax1, result.get("steps", []))
    fig.suptitle(f"MovieLens replay in time order ({result['name']})")
    fig.tight_layout()
    path = folder / "movielens_dynamics.png"
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return [path]


def _replay_dates(ax: Any, steps: list[dict[str, Any]]) -> None:
    """Top axis: the replay date each model version was reached at."""
    reached = [(s["model_version"], s["until"][:4]) for s in steps if s["model_version"]]
    if not reached:
        return
    gap = max(1, reached[-1][0] // 12)  # labels at least this many versions apart
    marks: dict[int, str] = {}
    for v, year in reached:
        if year not in marks.values() and all(v - m >= gap for m in marks):
            marks[v] = year
    if marks:
        top = ax.secondary_xaxis("top")
        top.set_xticks(list(marks), list(marks.values()), fontsize=7)
        top.set_xlabel("replay reached (year)", fontsize=8)


def comparison(results: list[dict[str, Any]], folder: Path) -> Path:
    """Recall lift over popularity and inertia ratio for each (k, half-life) run."""
    folder.mkdir(parents=True, exist_ok=True)
    half_lives = sorted({r["settings"]["APP_PROFILE_HALF_LIFE_DAYS"] for r in results}, key=float)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for hl in half_lives:
        rs = sorted(
            (r for r in results if r["settings"]["APP_PROFILE_HALF_LIFE_DAYS"] == hl),
            key=lambda r: int(r["settings"]["APP_CLUSTERS"]),
        )
        ks = [int(r["settings"]["APP_CLUSTERS"]) for r in rs]
        line = ax1.plot(
            ks, [r["streaming"]["lift"] for r in rs], marker="o", label=f"service, {hl} d"
        )
        color = line[0].get_color()
        spread = [r["offline"]["lift_over_seeds"] for r in rs]
        ax1.errorbar(
            ks,
            [s["mean"] for s in spread],
            yerr=[s["sd"] for s in spread],
            marker="x",
            linestyle="--",
            color=color,
            capsize=3,
            label=f"exact KMeans (10 seeds, mean ± sd), {hl} d",
        )
        ax2.plot(
            ks,
            [r["streaming"]["inertia_ratio"] for r in rs],
            marker="o",
            color=color,
            label=f"streaming, {hl} d",
        )
        rc = [(k, r["recluster"]) for k, r in zip(ks, rs, strict=True) if r.get("recluster")]
        if rc:
            ax1.plot(
                [k for k, _ in rc],
                [x["lift"] for _, x in rc],
                marker="s",
                linestyle=":",
                color=color,
                label=f"service after recluster, {hl} d",
            )
            ax2.plot(
                [k for k, _ in rc],
                [x["inertia_ratio"] for _, x in rc],
                marker="s",
                linestyle=":",
                color=color,
                label=f"after recluster, {hl} d",
            )
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xticks([4, 8, 16, 32], ["4", "8", "16", "32"])
        ax.set_xlabel("k (APP_CLUSTERS)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right" if ax is ax1 else "upper left")
    ax1.axhline(1.0, color="grey", linewidth=0.8)
    ax1.set_ylabel("recall@20 / global popularity")
    ax2.axhline(1.05, color="tab:red", linewidth=0.8, linestyle=":")
    ax2.set_ylabel("service inertia / exact KMeans inertia")
    fig.suptitle("MovieLens: k and profile half-life")
    fig.tight_layout()
    path = folder / "movielens_k_half_life.png"
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def quality(results: list[dict[str, Any]], folder: Path, name: str) -> Path:
    """Per run (one panel each): served inertia / exact KMeans' on the same profiles after each
    replay chunk, with every refit decision marked at the version it made or was judged on."""
    folder.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(results), 1, figsize=(8, 2.6 * len(results) + 0.6), sharey=True)
    for ax, result in zip(np.atleast_1d(axes), results, strict=True):
        probes = [s["quality"] for s in result.get("steps", []) if s.get("quality")]
        ratios = [p["ratio"] for p in probes]
        ax.plot(
            [p["model_version"] for p in probes],
            ratios,
            marker=".",
            label="served model / exact KMeans (inertia, same profiles)",
        )
        refits = [r for r in result.get("refits", []) if r["trigger"] != "recluster"]
        for i, r in enumerate(x for x in refits if x["adopted"]):
            label = "refit adopted" if i == 0 else None
            ax.axvline(r["new_version"], color="tab:green", linewidth=0.8, label=label)
        for i, r in enumerate(x for x in refits if not x["adopted"] and x["model_version"]):
            label = "refit tried, not adopted" if i == 0 else None
            ax.axvline(r["model_version"], color="grey", linewidth=0.8, linestyle=":", label=label)
        ax.axhline(1.02, color="tab:red", linewidth=0.8, linestyle="--", label="target 1.02")
        ax.set_ylim(min([0.96, *ratios]) - 0.01, 1.3)
        ax.set_ylabel("inertia ratio")
        ax.set_title(result["name"], fontsize=9)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper right")
    np.atleast_1d(axes)[-1].set_xlabel("model version (replay in time order)")
    fig.suptitle("MovieLens replay: quality over versions, each refit marked")
    fig.tight_layout()
    path = folder / f"movielens_quality_{name}.png"
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
