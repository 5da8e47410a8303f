"""Append-only vector files: one float32 matrix per (model id, version) under ``<home>/vectors``.

The file holds rows ``0..n-1``; the database's embedding records map image hashes to rows.
Write order keeps the two consistent through crashes: vectors are appended and fsynced
*before* the database commit that references them. On open, rows past the last committed
position (written, then the process died before commit) are truncated away, and records
that point past the end of the file (the file was lost or cut) are dropped so those images
are embedded again.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from catalens.catalog.db import CatalogDB
from catalens.errors import EmptyCatalogError


def vector_key(model_id: str, version: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_id).strip("_")[:80]
    digest = hashlib.sha256(f"{model_id}\0{version}".encode()).hexdigest()[:8]
    return f"{safe}-{version}-{digest}"


class VectorFile:
    def __init__(self, root: Path, model_id: str, version: str, dim: int) -> None:
        self.path = root / f"{vector_key(model_id, version)}.f32"
        self.model_id, self.version, self.dim = model_id, version, dim
        self.row_bytes = 4 * dim
        root.mkdir(parents=True, exist_ok=True)

    def rows_on_disk(self) -> int:
        return self.path.stat().st_size // self.row_bytes if self.path.exists() else 0

    def reconcile(self, db: CatalogDB) -> int:
        """Make file and database agree; return the number of committed rows."""
        committed = db.max_position(self.model_id, self.version) + 1
        on_disk = self.rows_on_disk()
        if on_disk < committed:
            db.drop_embeddings_from(self.model_id, self.version, on_disk)
            committed = db.max_position(self.model_id, self.version) + 1
        if self.path.exists() and self.path.stat().st_size != committed * self.row_bytes:
            with open(self.path, "r+b") as fh:
                fh.truncate(committed * self.row_bytes)
        return committed

    def append(self, vectors: np.ndarray, start: int) -> None:
        """Write ``vectors`` at row ``start`` and fsync before returning."""
        data = np.ascontiguousarray(vectors, dtype=np.float32)
        if data.ndim != 2 or data.shape[1] != self.dim:
            raise ValueError(f"expected (n, {self.dim}) vectors, got {data.shape}")
        mode = "r+b" if self.path.exists() else "w+b"
        with open(self.path, mode) as fh:
            fh.seek(start * self.row_bytes)
            fh.write(data.tobytes())
            fh.flush()
            os.fsync(fh.fileno())

    def read(self, n_rows: int | None = None) -> np.ndarray:
        """All (or the first ``n_rows``) rows as a read-only memory map."""
        n = self.rows_on_disk() if n_rows is None else n_rows
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.memmap(self.path, dtype=np.float32, mode="r", shape=(n, self.dim))


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def load_vectors(
    db: CatalogDB, root: Path, model_id: str, version: str | None = None
) -> tuple[list[str], np.ndarray]:
    """(image hashes, L2-normalised float32 matrix) of every stored embedding of a model."""
    recs = [m for m in db.models() if m.model_id == model_id and (version is None or m.version == version)]
    if not recs:
        raise EmptyCatalogError(
            f"no embeddings stored for model {model_id!r}; run `catalens embed --model {model_id}`"
        )
    rec = recs[-1]
    vf = VectorFile(root, rec.model_id, rec.version, rec.dim)
    pairs = db.embedding_positions(rec.model_id, rec.version)
    if not pairs:
        raise EmptyCatalogError(f"no embeddings stored for model {model_id!r}")
    mat = vf.read()
    positions = np.fromiter((p for _, p in pairs), dtype=np.int64, count=len(pairs))
    return [h for h, _ in pairs], np.asarray(mat[positions])
