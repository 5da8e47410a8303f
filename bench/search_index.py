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
from pathlib import Path

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


def realistic_vectors(n: int, seed: int = 0, chunk: int | None = None) -> np.ndarray:
    """Catalogue-shaped vectors: products grown from real embeddings, each with 1-4 variants.

    A product = a real vector + spectrum-shaped noise (drawn in the real data's top-256 PCA
    space, scaled by its singular values) of 0.7x the real vector's centred norm: a new item in
    the same region of the catalogue. Variants (colours, sizes, re-shoots) = the product + 0.3x
    noise of the same shape. So the set keeps the anisotropy and clustering of real data.
    """
    base = real_vectors()
    mu, sd, vt = _pca(base)
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    i = 0
    while i < n:
        m = min(20000, n - i)
        parents = base[rng.integers(0, len(base), m)]
        cnorm = np.linalg.norm(parents - mu, axis=1, keepdims=True)
        noise = (rng.standard_normal((m, len(sd))).astype(np.float32) * sd) @ vt
        noise *= 0.7 * cnorm / np.linalg.norm(noise, axis=1, keepdims=True)
        prods = parents + noise
        reps = rng.integers(1, 5, m)
        prods = np.repeat(prods, reps, axis=0)[:m]
        vnoise = (rng.standard_normal((m, len(sd))).astype(np.float32) * sd) @ vt
        vnoise *= 0.3 * cnorm[: len(vnoise)] / np.linalg.norm(vnoise, axis=1, keepdims=True)
        v = prods + vnoise
        out[i : i + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
        i += m
    return out


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
    best_s = np.full((len(q), 10), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), 10), dtype=np.int64)
    for s in range(0, len(x), 100_000):
        sims = q @ x[s : s + 100_000].T
        top = np.argpartition(-sims, 9, axis=1)[:, :10]
        cs = np.concatenate([best_s, np.take_along_axis(sims, top, axis=1)], axis=1)
        ci = np.concatenate([best_i, top + s], axis=1)
        o = np.argsort(-cs, axis=1)[:, :10]
        best_s, best_i = np.take_along_axis(cs, o, axis=1), np.take_along_axis(ci, o, axis=1)
    return best_i


def run(name: str, x: np.ndarray, q: np.ndarray, **search: int) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from catalens.index.faiss_index import FaissIndex

    truth = exact_top10(x, q)
    before = rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        idx = FaissIndex.open(Path(tmp) / "i", dim=x.shape[1])
        idx.reserve(len(x))
        for s in range(0, len(x), 100_000):
            idx.upsert(np.arange(s, min(s + 100_000, len(x))), x[s : s + 100_000])
        build = time.perf_counter() - t0
        ram = rss_mb() - before
        idx.save()
        disk = sum(f.stat().st_size for f in (Path(tmp) / "i").rglob("*") if f.is_file()) / 2**20
        import faiss

        faiss.omp_set_num_threads(int(os.environ.get("CATALENS_BENCH_SEARCH_THREADS", "1")))
        got = idx.search(q, 10, **search).ids
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth, strict=True)]))
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
        "n": len(x),
        "dim": x.shape[1],
        "kind": info["kind"],
        "params": {k: v for k, v in info["params"].items() if k != "trained_on"} | search,
        "recall_at_10": round(recall, 4),
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "build_s": round(build, 1),
        "index_ram_mb": round(ram, 1),
        "index_disk_mb": round(disk, 1),
    }


def main() -> None:
    import faiss

    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1, help="OpenMP threads for search (build uses 2)")
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    ap.add_argument("--stress", type=int, default=0)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--nprobe", type=int, default=0)
    args = ap.parse_args()
    faiss.omp_set_num_threads(2)
    os.environ["CATALENS_BENCH_SEARCH_THREADS"] = str(args.threads)
    extra = {"nprobe": args.nprobe} if args.nprobe else {}
    real = real_vectors()
    rng = np.random.default_rng(1)
    hold = rng.permutation(len(real))
    print(json.dumps(run("real dev embeddings", real[hold[300:]], real[hold[:300]], **extra)), flush=True)
    for n in args.sizes:
        x = realistic_vectors(n, seed=0)
        q = realistic_vectors(args.queries, seed=99)
        print(json.dumps(run("realistic synthetic", x, q, **extra)), flush=True)
        del x
    if args.stress:
        x = mixture_vectors(args.stress + args.queries, seed=3)
        print(
            json.dumps(run("stress: gaussian mixture", x[args.queries :], x[: args.queries], **extra)),
            flush=True,
        )


if __name__ == "__main__":
    main()
