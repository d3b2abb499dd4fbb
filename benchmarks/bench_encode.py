"""Raw encoding per embedding backend, side by side: speed, agreement with PyTorch, memory.

    python -m benchmarks.bench_encode ../shared/data/movielens-ml-latest-small \
        --backend torch --backend onnx --backend openvino --backend openvino-int8

Two kinds of real text: MovieLens movie texts ("title — genres", ~12 tokens) and 60-word
texts (consecutive movie texts with their tags, cut at 60 words, ~100 tokens). Every backend
encodes every text, in chunks that rotate over the backends, so a change in the machine's
background load hits all alike; torch (the raw limit) is always in the run. Agreement is the
cosine of each text's vector with PyTorch fp32's. Memory: each backend in a fresh process
(`--rss-child`), as a standalone worker holds it: loaded, verified, 512 60-word texts encoded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from app.embedding.embedder import DEFAULT_CACHE_DIR, DEFAULT_MODEL, load_embedder
from benchmarks import common, movielens

LONG_WORDS = 60


def texts(data_dir: Path, *, titles: int, long: int) -> tuple[list[str], list[str]]:
    """(movie texts, 60-word texts), all distinct, from the MovieLens files."""
    data = movielens.load(data_dir)
    short = list(dict.fromkeys(data.titles.values()))[:titles]
    words = " ".join(data.item_texts(with_tags=True).values()).split()
    step = LONG_WORDS // 2  # half-overlapping windows: more distinct texts from the corpus
    longs = [" ".join(words[i : i + LONG_WORDS]) for i in range(0, len(words), step)]
    longs = [t for t in dict.fromkeys(longs) if len(t.split()) == LONG_WORDS]
    if len(longs) < long:
        raise SystemExit(f"only {len(longs)} distinct {LONG_WORDS}-word texts in {data_dir}")
    return short, longs[:long]


def rss_child(backend: str, cache_dir: str) -> None:
    """Load, encode a little, print this process's memory (run as a fresh process)."""
    data = sys.stdin.read().split("\n")
    embedder = load_embedder(DEFAULT_MODEL, backend=backend, cache_dir=cache_dir)
    embedder.encode(data)
    pid = os.getpid()
    print(json.dumps({"peak": common.rss_peak_mb(pid), "now": common.rss_mb(pid)}))


def memory(backend: str, cache_dir: str, sample: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_encode", "--rss-child", backend,
         "--cache-dir", cache_dir, "-"],
        input="\n".join(sample), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("movielens", type=Path, help="the MovieLens ml-latest-small directory")
    parser.add_argument("--backend", action="append", help="besides torch (default: all)")
    parser.add_argument("--titles", type=int, default=8000, help="movie texts encoded")
    parser.add_argument("--long", type=int, default=2000, help=f"{LONG_WORDS}-word texts")
    parser.add_argument("--rounds", type=int, default=8, help="chunks rotated over backends")
    parser.add_argument("--threads", type=int, default=None, help="default: every core")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR))
    parser.add_argument("--no-rss", action="store_true", help="skip the per-process memory")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        return rss_child(args.rss_child, args.cache_dir)

    from app.embedding.backends import BACKENDS

    names = ["torch", *[b for b in (args.backend or BACKENDS) if b != "torch"]]
    print(common.machine())
    print("command:", common.command_line())
    print("load average at start:", os.getloadavg())
    short, longs = texts(args.movielens, titles=args.titles, long=args.long)
    embedders, refused = {}, {}
    for name in names:
        try:
            embedders[name] = load_embedder(
                DEFAULT_MODEL, backend=name, threads=args.threads, cache_dir=args.cache_dir
            )
        except Exception as exc:  # a backend refused by its verification is a result too
            refused[name] = str(exc)
    seconds = {(n, kind): 0.0 for n in embedders for kind in ("titles", "long")}
    vectors: dict[tuple[str, str], list[np.ndarray]] = {key: [] for key in seconds}
    order = list(embedders)
    for r in range(args.rounds):
        for kind, corpus in (("titles", short), ("long", longs)):
            chunk = corpus[r :: args.rounds]
            for name in order[r % len(order) :] + order[: r % len(order)]:
                started = time.perf_counter()
                vectors[name, kind].append(embedders[name].encode(chunk))
                seconds[name, kind] += time.perf_counter() - started
    print("load average at end:", os.getloadavg())

    # Batch independence: the same text alone and in a mixed batch (profiles are order-free sums).
    mixed = [t for pair in zip(short[:48], longs[:48], strict=True) for t in pair]
    drift = {
        name: float(np.max(np.abs(
            embedder.encode(mixed) - np.vstack([embedder.encode([t]) for t in mixed])
        )))
        for name, embedder in embedders.items()
    }  # fmt: skip
    rows: list[list[object]] = []
    sample = longs[:512]
    for name in embedders:
        rates = {k: len(c) / seconds[name, k] for k, c in (("titles", short), ("long", longs))}
        x = {k: rates[k] / (len(c) / seconds["torch", k])
             for k, c in (("titles", short), ("long", longs))}  # fmt: skip
        cos = np.concatenate([
            np.sum(np.vstack(vectors[name, k]) * np.vstack(vectors["torch", k]), axis=1)
            for k in ("titles", "long")
        ])  # fmt: skip
        mem = {"peak": float("nan"), "now": float("nan")}
        if not args.no_rss:
            mem = memory(name, args.cache_dir, sample)
        rows.append([
            embedders[name].model_id, rates["titles"], f"{x['titles']:.2f}x", rates["long"],
            f"{x['long']:.2f}x", f"{cos.mean():.6f}", f"{cos.min():.6f}", f"{drift[name]:.1e}",
            f"{mem['peak']:.0f} / {mem['now']:.0f}",
            "met" if min(x.values()) >= 2.5 and cos.mean() >= 0.99 else "",
        ])  # fmt: skip
    header = ["backend (cache model id)", "titles/s", "vs torch", f"{LONG_WORDS}-word/s",
              "vs torch", f"mean cos ({len(cos):,} texts)", "min cos", "batch drift",
              "RSS peak / after (MiB)", ">= 2.5x both, cos >= 0.99"]  # fmt: skip
    print(common.table("Raw encoding by backend", header, rows))
    for name, why in refused.items():
        print(f"\n{name}: refused: {why}")


if __name__ == "__main__":
    main()
