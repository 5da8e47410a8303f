"""All-images k-nearest-neighbour pairs for duplicate candidates, without an n x n matrix.

:func:`neighbour_pairs` works on the embedding matrix directly (it does not need, or touch, the
catalog's search index, which may be remote or compressed):

* up to ``exact_max`` vectors (default 20,000): exact cosine with a flat FAISS index, queries in
  blocks (O(n^2 d) but BLAS-fast at this size);
* above: a throw-away inverted file on a PCA projection (``PCA128 + IVF{nlist},Flat``, nlist
  about 4 sqrt(n), trained on a sample of max(20k, 40 per list); ``nprobe``
  lists per query), asked for ``2k`` neighbours, then re-scored with the exact full-dimension
  cosine and cut to the ``k`` best. Near-duplicates sit very close to each other, so a few
  probed lists find them; the measured pair recall against exact search is printed by
  ``bench/search_dedup_scale.py``.
"""

from __future__ import annotations

import math

import numpy as np

EXACT_MAX = 20_000
PCA_DIM = 128
TRAIN_SAMPLE = 20_000  # at least 40 points per inverted list are used


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _pairs(a: np.ndarray, b: np.ndarray, s: np.ndarray, min_cos: float) -> tuple[np.ndarray, ...]:
    keep = (b >= 0) & (b != a) & (s >= min_cos)
    a, b, s = a[keep], b[keep], s[keep]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    if len(lo) == 0:
        return lo.astype(np.int64), hi.astype(np.int64), s.astype(np.float32)
    keys = lo.astype(np.int64) * (int(hi.max()) + 1) + hi
    _, first = np.unique(keys, return_index=True)
    return lo[first].astype(np.int64), hi[first].astype(np.int64), s[first].astype(np.float32)


def neighbour_pairs(
    vectors: np.ndarray,
    k: int,
    min_cos: float,
    *,
    exact_max: int = EXACT_MAX,
    nprobe: int = 8,
    block: int = 4096,
    threads: int = 2,
    timings: dict[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row_a, row_b, cosine) with row_a < row_b: each row's ``k`` nearest rows with cosine >= ``min_cos``.

    ``timings``, when given, receives the wall seconds of the stages (``train``, ``add``, ``search``).
    """
    import time

    import faiss

    n = len(vectors)
    if n < 2:
        z = np.zeros(0, dtype=np.int64)
        return z, z, np.zeros(0, dtype=np.float32)
    k = min(int(k), n - 1)
    faiss.omp_set_num_threads(max(1, int(threads)))
    x = _normalised(vectors)
    a_all, b_all, s_all = [], [], []
    if n <= exact_max:
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        for s in range(0, n, block):
            sims, ids = index.search(x[s : s + block], k + 1)
            a_all.append(np.repeat(np.arange(s, s + len(ids)), k + 1))
            b_all.append(ids.reshape(-1))
            s_all.append(sims.reshape(-1))
        return _pairs(np.concatenate(a_all), np.concatenate(b_all), np.concatenate(s_all), min_cos)
    t0 = time.perf_counter()
    dim = min(PCA_DIM, x.shape[1])
    rng = np.random.default_rng(0)
    nlist = int(2 ** round(math.log2(max(64, 4 * math.sqrt(n)))))
    size = min(n, max(TRAIN_SAMPLE, 40 * nlist))
    sample = x[np.sort(rng.choice(n, size=size, replace=False))]
    pca = faiss.PCAMatrix(x.shape[1], dim)
    pca.train(sample)
    quantizer = faiss.IndexFlatL2(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_L2)
    ivf.train(pca.apply(sample))
    t1 = time.perf_counter()
    for s in range(0, n, 50_000):
        ivf.add(pca.apply(x[s : s + 50_000]))
    ivf.nprobe = int(nprobe)
    t2 = time.perf_counter()
    kk = min(2 * k + 1, n)
    qblock = max(1, block // 4)  # the candidates' full vectors are gathered per block
    for s in range(0, n, qblock):
        q = x[s : s + qblock]
        _, ids = ivf.search(pca.apply(q), kk)
        safe = np.maximum(ids, 0)
        sims = np.einsum("qd,qkd->qk", q, x[safe])  # exact cosines of the candidates
        sims[ids < 0] = -np.inf
        sims[ids == np.arange(s, s + len(q))[:, None]] = -np.inf  # itself
        top = (
            np.argpartition(-sims, k - 1, axis=1)[:, :k] if kk > k else np.arange(kk)[None].repeat(len(q), 0)
        )
        a_all.append(np.repeat(np.arange(s, s + len(q)), top.shape[1]))
        b_all.append(np.take_along_axis(ids, top, axis=1).reshape(-1))
        s_all.append(np.take_along_axis(sims, top, axis=1).reshape(-1))
    if timings is not None:
        timings.update(
            {
                "train": round(t1 - t0, 2),
                "add": round(t2 - t1, 2),
                "search": round(time.perf_counter() - t2, 2),
            }
        )
    return _pairs(np.concatenate(a_all), np.concatenate(b_all), np.concatenate(s_all), min_cos)
