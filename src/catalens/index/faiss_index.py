"""The embedded FAISS backend: exact below a size threshold, approximate (compressed) above it.

Layout of the index folder (all writes are atomic: a new generation folder is written and
fsynced, then ``current.json`` is replaced by rename; a crash leaves the previous generation)::

    current.json        {"generation": N, "kind": ..., "params": {...}, "manifest": {...}}
    gen-000N/index.faiss
    gen-000N/ids.npy    internal position -> external id (int64)
    gen-000N/alive.npy  internal position -> still live (bool)
    gen-000N/meta.json  external id -> metadata (only ids that have metadata)

Index kinds (``info()["kind"]``):

* ``exact``  ``IndexFlatIP`` over the normalised vectors: exact cosine top-k (used while the
  live count is at most ``exact_threshold``, default 50,000).
* ``ivfpq``  past the threshold the index is rebuilt once as
  ``PCAR{p},IVF{nlist},PQ{p/4}x4fs,Refine(SQ8)`` in L2 (equal ranking to cosine on unit
  vectors): a PCA to ``p <= 256`` dims, an inverted file, 4-bit fast-scan product codes for the
  candidate scan, then candidates (``k * k_factor``) re-ranked with 8-bit scalar-quantised
  full vectors. Memory per vector is ``dim + p/8 + 8`` bytes (about 1.3 kB at 1280-d) instead
  of ``4 * dim``. ``nlist`` ~ 4 sqrt(n) (capped at 2,048: the k-means trains on a
  ``TRAIN_SAMPLE`` of 100,000 vectors, and build time stays near-linear up to millions), ``nprobe``,
  ``k_factor`` and ``p`` are recorded in ``params``. Vectors are added in 100,000-vector chunks.

Deletes and replaced ids become tombstones excluded through an ID selector; the index is
compacted (rebuilt from its stored vectors) when tombstones pass a quarter of it.
Filtered searches use an ID selector; a selective filter (few allowed ids) is answered by an
exact scan of the allowed vectors, so it still returns ``k`` results whenever ``k`` pass.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from catalens.errors import ConfigError, IndexCorruptError
from catalens.index.base import IndexFilter, Metadata, SearchHits

DEFAULT_EXACT_THRESHOLD = 50_000
TRAIN_SAMPLE = 100_000


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a fsynced temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def approx_params(n: int, dim: int) -> dict[str, Any]:
    """Parameters of the approximate index for ``n`` vectors of ``dim`` dimensions."""
    pca = min(dim, 256)
    pca -= pca % 8
    pca = max(pca, 8)
    nlist = int(2 ** round(math.log2(max(64, 4 * math.sqrt(n)))))
    nlist = min(nlist, max(64, n // 40))
    # k-means is trained on at most TRAIN_SAMPLE vectors: keep >= 40 training points per list
    # (FAISS warns below 39); this caps nlist at 2048, which also bounds build time at 1M
    nlist = min(nlist, 2 ** int(math.log2(max(64, TRAIN_SAMPLE // 40))))
    return {
        "pca": pca,
        "nlist": nlist,
        "pq_m": pca // 4 if pca // 4 % 2 == 0 else pca // 2,
        "nprobe": max(16, nlist // 64),
        "k_factor": 16,
        "metric": "l2",
    }


class FaissIndex:
    """A FAISS vector index persisted in ``folder`` (see the module docstring)."""

    backend = "faiss"

    def __init__(
        self,
        folder: str | Path,
        dim: int,
        *,
        name: str = "default",
        exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        import faiss

        self.folder = Path(folder)
        self.dim = int(dim)
        self.name = name
        self.exact_threshold = int(exact_threshold)
        self.kind = "exact"
        self.params: dict[str, Any] = {}
        self._override = dict(params or {})
        self.manifest: dict[str, Any] = {}
        self._faiss = faiss
        self._index: Any = faiss.IndexFlatIP(self.dim)
        self._labels = np.zeros(0, dtype=np.int64)
        self._alive = np.zeros(0, dtype=bool)
        self._pos: dict[int, int] = {}
        self._meta: dict[int, dict[str, Any]] = {}
        self._generation = 0
        self._lock = threading.RLock()

    # ---- open / persist ------------------------------------------------------------------------
    @classmethod
    def open(cls, folder: str | Path, *, dim: int, name: str = "default", **options: Any) -> FaissIndex:
        """Load the index in ``folder`` or start an empty one. Raises ``IndexCorruptError`` on damage."""
        idx = cls(folder, dim, name=name, **options)
        if (idx.folder / "current.json").exists():
            idx._load()
        return idx

    def _load(self) -> None:
        faiss = self._faiss
        try:
            head = json.loads((self.folder / "current.json").read_text())
            gen_dir = self.folder / f"gen-{int(head['generation']):06d}"
            if int(head["dim"]) != self.dim:
                raise IndexCorruptError(f"{self.folder}: index has dim {head['dim']}, expected {self.dim}")
            index = faiss.read_index(str(gen_dir / "index.faiss"))
            labels = np.load(gen_dir / "ids.npy")
            alive = np.load(gen_dir / "alive.npy")
            meta_raw = json.loads((gen_dir / "meta.json").read_text())
        except IndexCorruptError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
            raise IndexCorruptError(f"{self.folder}: cannot load the index ({exc})") from exc
        if index.ntotal != len(labels) or len(labels) != len(alive) or index.d != self.dim:
            raise IndexCorruptError(
                f"{self.folder}: index holds {index.ntotal} vectors but {len(labels)} ids / {len(alive)} flags"
            )
        self._index, self._labels, self._alive = index, labels.astype(np.int64), alive.astype(bool)
        self._pos = {int(e): i for i, e in enumerate(self._labels) if self._alive[i]}
        self._meta = {int(k): v for k, v in meta_raw.items()}
        self.kind = str(head["kind"])
        self.params = dict(head.get("params") or {})
        self.manifest = dict(head.get("manifest") or {})
        self._generation = int(head["generation"])

    def save(self) -> None:
        """Write a new generation, then switch ``current.json`` to it; older generations are removed."""
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            gen = self._generation + 1
            gen_dir = self.folder / f"gen-{gen:06d}"
            if gen_dir.exists():
                shutil.rmtree(gen_dir)
            gen_dir.mkdir()
            self._faiss.write_index(self._index, str(gen_dir / "index.faiss"))
            np.save(gen_dir / "ids.npy", self._labels)
            np.save(gen_dir / "alive.npy", self._alive)
            (gen_dir / "meta.json").write_text(json.dumps({str(k): v for k, v in self._meta.items()}))
            for f in gen_dir.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            _fsync_dir(gen_dir)
            head = {
                "generation": gen,
                "dim": self.dim,
                "name": self.name,
                "kind": self.kind,
                "params": self.params,
                "count": self.count(),
                "manifest": self.manifest,
            }
            atomic_write_text(self.folder / "current.json", json.dumps(head, indent=2))
            self._generation = gen
            for old in self.folder.glob("gen-*"):
                if old.name != gen_dir.name:
                    shutil.rmtree(old, ignore_errors=True)

    def close(self) -> None:
        pass

    def reserve(self, n_total: int) -> None:
        """Plan for ``n_total`` vectors: the approximate index (when built) gets parameters for that size."""
        planned = approx_params(int(n_total), self.dim)
        self._override = {**planned, **self._override}

    def drop(self) -> None:
        """Empty the index in memory (the next :meth:`save` replaces what is on disk)."""
        with self._lock:
            self._reset_exact(np.zeros(0, dtype=np.int64), np.zeros((0, self.dim), dtype=np.float32))
            self._meta = {}
            self.manifest = {}

    # ---- writing -------------------------------------------------------------------------------
    def upsert(
        self,
        ids: Sequence[int] | np.ndarray,
        vectors: np.ndarray,
        metadata: Sequence[Metadata] | None = None,
    ) -> None:
        ext = np.asarray(ids, dtype=np.int64).reshape(-1)
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape != (len(ext), self.dim):
            raise ConfigError(f"upsert expects ({len(ext)}, {self.dim}) vectors, got {vecs.shape}")
        if metadata is not None and len(metadata) != len(ext):
            raise ConfigError("upsert: metadata must have one entry per id")
        if len(np.unique(ext)) != len(ext):
            raise ConfigError("upsert: duplicate ids in one call")
        if len(ext) == 0:
            return
        with self._lock:
            self._tombstone(ext)
            live_after = self.count() + len(ext)
            if self.kind == "exact" and live_after > self.exact_threshold:
                self._rebuild_approx(extra_ids=ext, extra_vecs=vecs)
            else:
                self._index.add(vecs)
                self._append(ext)
            for i, e in enumerate(ext.tolist()):  # an upsert replaces the metadata too
                m = metadata[i] if metadata is not None else None
                if m:
                    self._meta[int(e)] = dict(m)
                else:
                    self._meta.pop(int(e), None)
            self._maybe_compact()

    def _append(self, ext: np.ndarray) -> None:
        start = len(self._labels)
        self._labels = np.concatenate([self._labels, ext])
        self._alive = np.concatenate([self._alive, np.ones(len(ext), dtype=bool)])
        for i, e in enumerate(ext.tolist()):
            self._pos[int(e)] = start + i

    def _tombstone(self, ext: np.ndarray) -> int:
        n = 0
        for e in ext.tolist():
            p = self._pos.pop(int(e), None)
            if p is not None:
                self._alive[p] = False
                n += 1
        return n

    def delete(self, ids: Sequence[int] | np.ndarray) -> int:
        ext = np.asarray(ids, dtype=np.int64).reshape(-1)
        with self._lock:
            n = self._tombstone(ext)
            for e in ext.tolist():
                self._meta.pop(int(e), None)
            self._maybe_compact()
            return n

    def _live_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(external ids, vectors) of live entries; decoded from the stored codes for ``ivfpq``."""
        live = np.flatnonzero(self._alive)
        if len(live) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._reconstruct(live)
        return self._labels[live], vecs

    def _reconstruct(self, internal: np.ndarray) -> np.ndarray:
        if self.kind == "exact":
            flat = self._faiss.rev_swig_ptr(self._index.get_xb(), self._index.ntotal * self.dim)
            return np.asarray(flat).reshape(-1, self.dim)[internal].copy()
        refine = self._faiss.downcast_index(self._index.refine_index)
        out = np.empty((len(internal), self.dim), dtype=np.float32)
        step = 65536
        for s in range(0, len(internal), step):
            chunk = internal[s : s + step]
            codes = np.empty((len(chunk), refine.code_size), dtype=np.uint8)
            all_codes = self._faiss.vector_to_array(refine.codes).reshape(-1, refine.code_size)
            codes[:] = all_codes[chunk]
            out[s : s + step] = refine.sa_decode(codes)
        return out

    def _maybe_compact(self) -> None:
        dead = len(self._alive) - int(self._alive.sum())
        if dead and dead * 4 > len(self._alive):
            ext, vecs = self._live_vectors()
            if self.kind == "exact" or len(ext) <= self.exact_threshold:
                self._reset_exact(ext, vecs)
            else:
                self._rebuild_approx(ext, vecs, from_scratch=True)

    def _reset_exact(self, ext: np.ndarray, vecs: np.ndarray) -> None:
        self.kind, self.params = "exact", {}
        self._index = self._faiss.IndexFlatIP(self.dim)
        self._labels = np.zeros(0, dtype=np.int64)
        self._alive = np.zeros(0, dtype=bool)
        self._pos = {}
        if len(ext):
            self._index.add(np.ascontiguousarray(vecs, dtype=np.float32))
            self._append(ext)

    def _rebuild_approx(
        self,
        extra_ids: np.ndarray,
        extra_vecs: np.ndarray,
        *,
        from_scratch: bool = False,
    ) -> None:
        """Build the ``ivfpq`` index over the live vectors plus ``extra``."""
        faiss = self._faiss
        if from_scratch:
            ids, vecs = extra_ids, extra_vecs
        else:
            old_ids, old_vecs = self._live_vectors()
            ids = np.concatenate([old_ids, extra_ids])
            vecs = np.concatenate([old_vecs, extra_vecs]) if len(old_ids) else extra_vecs
        params = approx_params(len(ids), self.dim) | self._override
        desc = f"PCAR{params['pca']},IVF{params['nlist']},PQ{params['pq_m']}x4fs,Refine(SQ8)"
        index = faiss.index_factory(self.dim, desc, faiss.METRIC_L2)
        rng = np.random.default_rng(0)
        sample = rng.choice(len(vecs), size=min(len(vecs), TRAIN_SAMPLE), replace=False)
        index.train(np.ascontiguousarray(vecs[np.sort(sample)], dtype=np.float32))
        step = 100_000
        for s in range(0, len(vecs), step):
            index.add(np.ascontiguousarray(vecs[s : s + step], dtype=np.float32))
        self._index = index
        self.kind = "ivfpq"
        self.params = params | {"factory": desc, "trained_on": int(len(sample))}
        self._labels = np.zeros(0, dtype=np.int64)
        self._alive = np.zeros(0, dtype=bool)
        self._pos = {}
        self._append(np.asarray(ids, dtype=np.int64))

    # ---- reading -------------------------------------------------------------------------------
    def count(self) -> int:
        return len(self._pos)

    def ids(self) -> np.ndarray:
        return np.fromiter(self._pos.keys(), dtype=np.int64, count=len(self._pos))

    def get_metadata(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        return [dict(self._meta.get(int(i), {})) for i in ids]

    def get_vectors(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Stored vectors of ``ids`` (decoded 8-bit approximations for ``ivfpq``); KeyError if absent."""
        internal = np.array([self._pos[int(i)] for i in np.asarray(ids).reshape(-1)], dtype=np.int64)
        return self._reconstruct(internal)

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "folder": str(self.folder),
            "kind": self.kind,
            "count": self.count(),
            "tombstones": int(len(self._alive) - self._alive.sum()),
            "exact_threshold": self.exact_threshold,
            "params": self.params,
        }

    def _allowed_internal(self, filt: IndexFilter) -> np.ndarray | None:
        """Internal positions allowed by ``filt`` and alive; None when everything alive is allowed."""
        if filt is None:
            if self._alive.all():
                return None
            return np.flatnonzero(self._alive)
        if isinstance(filt, np.ndarray | list | tuple | set | frozenset):
            ext = np.asarray(sorted(filt) if isinstance(filt, set | frozenset) else filt, dtype=np.int64)
            pos = [self._pos.get(int(e)) for e in ext.reshape(-1).tolist()]
            return np.array(sorted(p for p in pos if p is not None), dtype=np.int64)
        pred: Callable[[Mapping[str, Any]], bool] = getattr(filt, "matches", filt)  # type: ignore[assignment]
        keep = [p for e, p in self._pos.items() if pred(self._meta.get(e, {}))]
        return np.array(sorted(keep), dtype=np.int64)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        filter: IndexFilter = None,
        *,
        nprobe: int | None = None,
        k_factor: int | None = None,
    ) -> SearchHits:
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.shape[1] != self.dim:
            raise ConfigError(f"query has dimension {q.shape[1]}, the index has {self.dim}")
        k = int(k)
        if k < 1:
            raise ConfigError("k must be at least 1")
        with self._lock:
            allowed = self._allowed_internal(filter)
            n_allowed = self.count() if allowed is None else len(allowed)
            kk = min(k, n_allowed)
            if kk == 0:
                return self._pad(np.zeros((len(q), 0)), np.zeros((len(q), 0), dtype=np.int64), k)
            if allowed is not None and self.kind != "exact" and n_allowed <= max(20_000, 50 * k):
                return self._scan(q, allowed, kk, k)
            params = self._params(allowed, nprobe, k_factor)
            # OpenMP start-up costs more than it saves on a few queries (8 ms vs 0.3 ms p50 at 100k)
            threads = self._faiss.omp_get_max_threads()
            if len(q) <= 4:
                self._faiss.omp_set_num_threads(1)
            try:
                dist, lab = self._index.search(q, kk, params=params)
            finally:
                self._faiss.omp_set_num_threads(threads)
            scores = dist if self.kind == "exact" else 1.0 - dist / 2.0
            ext = np.where(lab >= 0, self._labels[np.maximum(lab, 0)], -1)
            return self._pad(scores, ext, k)

    def _scan(self, q: np.ndarray, allowed: np.ndarray, kk: int, k: int) -> SearchHits:
        """Exact scan of the allowed vectors (decoded) - used for selective filters."""
        vecs = self._reconstruct(allowed)
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        sims = q @ vecs.T
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
        top = np.take_along_axis(top, order, axis=1)
        scores = np.take_along_axis(sims, top, axis=1)
        return self._pad(scores, self._labels[allowed[top]], k)

    def _params(self, allowed: np.ndarray | None, nprobe: int | None, k_factor: int | None) -> Any:
        faiss = self._faiss
        sel = None
        if allowed is not None:
            sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        if self.kind == "exact":
            if sel is None:
                return None
            p = faiss.SearchParameters()
            p.sel = sel
            p._keep = sel  # keep the selector alive as long as the params
            return p
        ivf = faiss.SearchParametersIVF()
        ivf.nprobe = int(nprobe or self.params.get("nprobe", 16))
        if sel is not None:
            ivf.sel = sel
        pre = faiss.SearchParametersPreTransform()
        pre.index_params = ivf
        ref = faiss.IndexRefineSearchParameters()
        ref.k_factor = float(k_factor or self.params.get("k_factor", 16))
        ref.base_index_params = pre
        ref._keep = (sel, ivf, pre)
        return ref

    @staticmethod
    def _pad(scores: np.ndarray, ids: np.ndarray, k: int) -> SearchHits:
        n = ids.shape[0]
        out_ids = np.full((n, k), -1, dtype=np.int64)
        out_scores = np.full((n, k), -np.inf, dtype=np.float32)
        w = min(k, ids.shape[1])
        out_ids[:, :w] = ids[:, :w]
        out_scores[:, :w] = scores[:, :w]
        out_scores[out_ids < 0] = -np.inf
        return SearchHits(out_ids, out_scores)
