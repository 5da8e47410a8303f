"""Vector index benchmark: recall@10 vs exact, p50/p99 single-query latency, build time, RAM.

    python bench/search_index.py --sizes 100000 [1000000] [--stress 100000]

Data: the real dev embeddings (efficientnet-lite0 on myntra-dev, read from /work/bench-home's
vector file) and synthetic catalogue-shaped vectors grown from them (see
:func:`realistic_vectors`); queries are held-out vectors from the same generator. ``--stress``
adds a Gaussian-mixture set (near-isotropic, much harder). Prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BENCH_HOME = Path(os.environ.get("CATALENS_BENCH_HOME", "/work/bench-home"))
_BASE: np.ndarray | None = None


def real_vectors() -> np.ndarray:
    """The dev embeddings, read straight from the vector file (the bench home stays untouched)."""
    global _BASE
    if _BASE is None:
        f = sorted((BENCH_HOME / "vectors").glob("*.f32"))[0]
        x = np.fromfile(f, dtype=np.float32).reshape(-1, 1280)
        _BASE = x / np.linalg.norm(x, axis=1, keepdims=True)
    return _BASE


def _pca(x: np.ndarray, k: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mu, full_matrices=False)
    return mu, (s[:k] / np.sqrt(len(x))).astype(np.float32), vt[:k].astype(np.float32)


def realistic_vectors(n: int, seed: int = 0, chunk: int | None = None, *, with_parents: bool = False) -> Any:
    """Catalogue-shaped vectors: products grown from real embeddings, each with 1-4 variants.

    A product = a real vector + spectrum-shaped noise (drawn in the real data's top-256 PCA
    space, scaled by its singular values) of 0.7x the real vector's centred norm: a new item in
    the same region of the catalogue. Variants (colours, sizes, re-shoots) = the product + 0.3x
    noise of the same shape. So the set keeps the anisotropy and clustering of real data.
    With ``with_parents``: also (real parent row, product number) of every vector.
    """
    base = real_vectors()
    mu, sd, vt = _pca(base)
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    parent_of = np.empty(n, dtype=np.int64)
    product_of = np.empty(n, dtype=np.int64)
    i = 0
    while i < n:
        m = min(20000, n - i)
        pidx = rng.integers(0, len(base), m)
        parents = base[pidx]
        cnorm = np.linalg.norm(parents - mu, axis=1, keepdims=True)
        noise = (rng.standard_normal((m, len(sd))).astype(np.float32) * sd) @ vt
        noise *= 0.7 * cnorm / np.linalg.norm(noise, axis=1, keepdims=True)
        prods = parents + noise
        reps = rng.integers(1, 5, m)
        prods = np.repeat(prods, reps, axis=0)[:m]
        parent_of[i : i + m] = np.repeat(pidx, reps)[:m]
        product_of[i : i + m] = np.repeat(np.arange(i, i + m), reps)[:m]
        vnoise = (rng.standard_normal((m, len(sd))).astype(np.float32) * sd) @ vt
        vnoise *= 0.3 * cnorm[: len(vnoise)] / np.linalg.norm(vnoise, axis=1, keepdims=True)
        v = prods + vnoise
        out[i : i + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
        i += m
    return (out, parent_of, product_of) if with_parents else out


def mixture_vectors(n: int, seed: int = 0, dim: int = 1280, k: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim)).astype(np.float32)
    x = centres[rng.integers(0, k, n)] + 0.8 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def exact_top10(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    return TopK(q).update(x, 0).ids


class TopK:
    """Exact top-10 of a few queries, updated block by block (blocked matmul; the data is never held whole)."""

    def __init__(self, q: np.ndarray, k: int = 10) -> None:
        self.q, self.k = q, k
        self.scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        self.ids = np.zeros((len(q), k), dtype=np.int64)

    def update(self, x: np.ndarray, offset: int) -> TopK:
        k = self.k
        for s in range(0, len(x), 100_000):
            sims = self.q @ x[s : s + 100_000].T
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            cs = np.concatenate([self.scores, np.take_along_axis(sims, top, axis=1)], axis=1)
            ci = np.concatenate([self.ids, top + offset + s], axis=1)
            o = np.argsort(-cs, axis=1)[:, :k]
            self.scores, self.ids = np.take_along_axis(cs, o, axis=1), np.take_along_axis(ci, o, axis=1)
        return self


def run(name: str, x: np.ndarray, q: np.ndarray, **search: int) -> dict:
    return run_streamed(name, lambda c: x, 1, q, n_truth=len(q), **search)


def run_streamed(
    name: str,
    chunk: Callable[[int], np.ndarray],
    n_chunks: int,
    q: np.ndarray,
    *,
    n_truth: int = 200,
    **search: int,
) -> dict:
    """Build the index from ``n_chunks`` generated chunks (planned for the total size), then measure.

    The ground truth (exact top-10 of the first ``n_truth`` queries) is updated chunk by chunk, so
    the raw vectors are never held at once (1M x 1280 float32 would be 5 GB).
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import faiss

    from catalens.index.faiss_index import FaissIndex

    before = rss_mb()
    first: np.ndarray | None = chunk(0)
    step = len(first)
    n = step * n_chunks
    truth = TopK(q[:n_truth])
    gen_s = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        idx = FaissIndex.open(Path(tmp) / "i", dim=q.shape[1])
        idx.reserve(n)
        t0 = time.perf_counter()
        for c in range(n_chunks):
            t = time.perf_counter()
            x = first if c == 0 else chunk(c)
            first = None
            truth.update(x, c * step)
            gen_s += time.perf_counter() - t
            idx.upsert(np.arange(c * step, c * step + len(x)), x)
            del x
            msg = {"progress": name, "chunk": c + 1, "of": n_chunks, "s": round(time.perf_counter() - t0)}
            print(json.dumps(msg), file=sys.stderr, flush=True)
        build = time.perf_counter() - t0 - gen_s
        ram = rss_mb() - before
        idx.save()
        disk = sum(f.stat().st_size for f in (Path(tmp) / "i").rglob("*") if f.is_file()) / 2**20
        faiss.omp_set_num_threads(int(os.environ.get("CATALENS_BENCH_SEARCH_THREADS", "1")))
        got = idx.search(q[:n_truth], 10, **search).ids
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth.ids, strict=True)]))
        lat = []
        for i in range(min(len(q), 300)):
            t = time.perf_counter()
            idx.search(q[i : i + 1], 10, **search)
            lat.append((time.perf_counter() - t) * 1000)
        info = idx.info()
        faiss.omp_set_num_threads(2)
    return {
        "set": name,
        "search_threads": int(os.environ.get("CATALENS_BENCH_SEARCH_THREADS", "1")),
        "n": n,
        "dim": q.shape[1],
        "kind": info["kind"],
        "params": {k: v for k, v in info["params"].items() if k != "trained_on"} | search,
        "trained_on": info["params"].get("trained_on"),
        "recall_at_10": round(recall, 4),
        "recall_queries": n_truth,
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "build_s": round(build, 1),
        "index_ram_mb": round(ram, 1),
        "index_disk_mb": round(disk, 1),
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    import faiss

    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1, help="OpenMP threads for search (build uses 2)")
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    ap.add_argument("--stress", type=int, default=0)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--nprobe", type=int, default=0)
    ap.add_argument("--truth-queries", type=int, default=200, help="queries with exact ground truth")
    args = ap.parse_args()
    faiss.omp_set_num_threads(2)
    os.environ["CATALENS_BENCH_SEARCH_THREADS"] = str(args.threads)
    extra = {"nprobe": args.nprobe} if args.nprobe else {}
    real = real_vectors()
    rng = np.random.default_rng(1)
    hold = rng.permutation(len(real))
    print(json.dumps(run("real dev embeddings", real[hold[300:]], real[hold[:300]], **extra)), flush=True)
    q = realistic_vectors(args.queries, seed=99)
    for n in args.sizes:
        step = min(n, 100_000)  # generated and added in chunks; the index trains on the first
        res = run_streamed(
            "realistic synthetic",
            lambda c, step=step: realistic_vectors(step, seed=c),
            max(1, n // step),
            q,
            n_truth=args.truth_queries,
            **extra,
        )
        print(json.dumps(res), flush=True)
    if args.stress:
        x = mixture_vectors(args.stress + args.queries, seed=3)
        res = run_streamed(
            "stress: gaussian mixture",
            lambda c: x[args.queries :],
            1,
            x[: args.queries],
            n_truth=args.truth_queries,
            **extra,
        )
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
