"""Vector index benchmark: recall@10 vs exact, p50/p99 single-query latency, build time, RAM.

    python bench/search_index.py --sizes 100000 [1000000] [--stress 100000] [--sweep 64:16 32:32]

Data: the real dev embeddings (efficientnet-lite0 on myntra-dev, read from /work/bench-home's
vector file) and synthetic catalog-shaped vectors grown from them (see
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


_PCA: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _pca(x: np.ndarray, k: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, singular values / sqrt(n), top-``k`` right singular vectors) of ``x``, cached per ``x``."""
    if id(x) not in _PCA:
        mu = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mu, full_matrices=False)
        _PCA[id(x)] = (mu, (s[:k] / np.sqrt(len(x))).astype(np.float32), vt[:k].astype(np.float32))
    return _PCA[id(x)]


def realistic_vectors(n: int, seed: int = 0, chunk: int | None = None, *, with_parents: bool = False) -> Any:
    """Catalog-shaped vectors: products grown from real embeddings, each with 1-4 variants.

    A product = a real vector + spectrum-shaped noise (drawn in the real data's top-256 PCA
    space, scaled by its singular values) of 0.7x the real vector's centred norm: a new item in
    the same region of the catalog. Variants (colours, sizes, re-shoots) = the product + 0.3x
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
        cnorm = np.linalg.norm(base[pidx] - mu, axis=1, keepdims=True)
        # noise is drawn in the PCA space; vt has orthonormal rows, so norms are taken there and
        # product noise + variant noise go through a single projection to 1280-d
        noise = rng.standard_normal((m, len(sd))).astype(np.float32) * sd
        noise *= 0.7 * cnorm / np.linalg.norm(noise, axis=1, keepdims=True)
        reps = rng.integers(1, 5, m)
        rows = np.repeat(np.arange(m), reps)[:m]
        parent_of[i : i + m] = pidx[rows]
        product_of[i : i + m] = rows + i
        vnoise = rng.standard_normal((m, len(sd))).astype(np.float32) * sd
        vnoise *= 0.3 * cnorm / np.linalg.norm(vnoise, axis=1, keepdims=True)
        v = base[pidx[rows]] + (noise[rows] + vnoise) @ vt
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
    sweep: list[tuple[int, int]] | None = None,
    **search: int,
) -> dict:
    """Build the index from ``n_chunks`` generated chunks (planned for the total size), then measure.

    The ground truth (exact top-10 of the first ``n_truth`` queries) is updated chunk by chunk, so
    the raw vectors are never held at once (1M x 1280 float32 would be 5 GB). The main figures
    use the parameters the library picked (or ``search``); ``sweep`` adds (nprobe, k_factor)
    variants measured on the same built index.
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
    load_build = [os.getloadavg()[0]]
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
        load_build.append(os.getloadavg()[0])
        ram = rss_mb() - before
        idx.save()
        disk = sum(f.stat().st_size for f in (Path(tmp) / "i").rglob("*") if f.is_file()) / 2**20
        faiss.omp_set_num_threads(int(os.environ.get("CATALENS_BENCH_SEARCH_THREADS", "1")))
        recall, lat = _measure(idx, q, truth.ids, n_truth, search)
        variants = []
        for nprobe, k_factor in sweep or []:
            r, lt = _measure(idx, q, truth.ids, n_truth, {"nprobe": nprobe, "k_factor": k_factor})
            variants.append(
                {
                    "nprobe": nprobe,
                    "k_factor": k_factor,
                    "recall_at_10": round(r, 4),
                    "p50_ms": round(float(np.percentile(lt, 50)), 3),
                    "p99_ms": round(float(np.percentile(lt, 99)), 3),
                }
            )
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
        "load_avg_1m_build_start_end": [round(v, 1) for v in load_build],
    } | ({"sweep": variants} if variants else {})


def _measure(idx: Any, q: np.ndarray, truth: np.ndarray, n_truth: int, search: dict) -> tuple[float, list]:
    """(recall@10 of the first ``n_truth`` queries, single-query latencies in ms of up to 300 queries)."""
    got = idx.search(q[:n_truth], 10, **search).ids
    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth, strict=True)]))
    lat = []
    for i in range(min(len(q), 300)):
        t = time.perf_counter()
        idx.search(q[i : i + 1], 10, **search)
        lat.append((time.perf_counter() - t) * 1000)
    return recall, lat


def main() -> None:
    import faiss

    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1, help="OpenMP threads for search (build uses 2)")
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    ap.add_argument("--stress", type=int, default=0, help="size of the stress sets (0: none)")
    ap.add_argument("--stress-kinds", nargs="+", default=["mixture"], choices=["mixture", "uniform"])
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--nprobe", type=int, default=0)
    ap.add_argument("--truth-queries", type=int, default=200, help="queries with exact ground truth")
    ap.add_argument("--sweep", nargs="*", default=[], help="extra NPROBE:K_FACTOR settings, same index")
    ap.add_argument("--no-real", action="store_true", help="skip the real dev embeddings row")
    args = ap.parse_args()
    sweep = [(int(a), int(b)) for a, b in (v.split(":") for v in args.sweep)]
    faiss.omp_set_num_threads(2)
    os.environ["CATALENS_BENCH_SEARCH_THREADS"] = str(args.threads)
    extra = {"nprobe": args.nprobe} if args.nprobe else {}
    real = real_vectors()
    rng = np.random.default_rng(1)
    hold = rng.permutation(len(real))
    if not args.no_real:
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
            sweep=sweep,
            **extra,
        )
        print(json.dumps(res), flush=True)
    for kind in args.stress_kinds if args.stress else []:
        if kind == "uniform":  # isotropic: uniform on the sphere, the hardest case
            x = np.random.default_rng(4).standard_normal((args.stress + args.queries, 1280), dtype=np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
        else:
            x = mixture_vectors(args.stress + args.queries, seed=3)
        res = run_streamed(
            "stress: uniform on the sphere" if kind == "uniform" else "stress: gaussian mixture",
            lambda c, x=x: x[args.queries :],
            1,
            x[: args.queries],
            n_truth=args.truth_queries,
            sweep=sweep,
            **extra,
        )
        print(json.dumps(res), flush=True)
        del x


if __name__ == "__main__":
    main()
