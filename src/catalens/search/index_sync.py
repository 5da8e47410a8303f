"""Keep a model's vector index consistent with the database and its vector file.

The index is *derived data*: it is built from the embedding rows the database has committed
and the vectors those rows point at. Its manifest (saved atomically with the index) records
what it was built from::

    {"model_id", "version", "n": rows indexed, "max_position": last row indexed,
     "sample_positions": up to 257 indexed positions,
     "sample_sha": sha256 over those positions and their vectors}

On every open, :func:`sync_index` compares the manifest with the database:

* the database has rows the index lacks (ingest ran after the last sync, a crash came between
  the database commit and the index write, or concurrent writers committed their rows out of
  position order): those rows are added - found by set difference, not by position order;
* the index holds rows the database no longer has, the sample checksum differs (the vectors were
  replaced), the model differs, the index count disagrees with the manifest, or the index files
  are corrupt/missing: the index is rebuilt from the vectors.

Index writes never precede the database commit, and an index save is atomic, so a crash at
any point leaves either the previous consistent index (caught up on next open) or nothing.
A file lock serialises concurrent syncs of one FAISS folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import time
from collections.abc import Iterator, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from catalens.catalog.db import CatalogDB
from catalens.config import Settings
from catalens.errors import EmptyCatalogError, IndexCorruptError, NotFoundError
from catalens.index import VectorIndex, open_index, parse_index_uri
from catalens.vectors import VectorRows, l2_normalize, open_store, vector_key

_CHUNK = 50_000
_SAMPLE = 256


@dataclass
class IndexedVectors:
    """Positions and hashes of the committed embeddings of one (model, version)."""

    model_id: str
    version: str
    dim: int
    shas: list[str]
    positions: np.ndarray
    rows: VectorRows

    def matrix(self) -> VectorRows:
        """The stored rows, indexed by position (``matrix()[positions]`` -> (n, dim) float32)."""
        return self.rows

    def sha_of(self) -> dict[int, str]:
        return dict(zip(self.positions.tolist(), self.shas, strict=True))


def committed_vectors(db: CatalogDB, settings: Settings, model: str) -> IndexedVectors:
    """The committed embeddings of ``model`` (latest version stored); raises when there are none."""
    recs = [m for m in db.models() if m.model_id == model]
    if not recs:
        known = sorted({m.model_id for m in db.models()})
        hint = f" (embedded models: {', '.join(known)})" if known else ""
        raise EmptyCatalogError(f"no embeddings stored for model {model!r}{hint}; run `catalens embed`")
    rec = recs[-1]
    store = open_store(db, settings.home, rec.model_id, rec.version, rec.dim, settings.vector_store)
    store.verify(db)
    rows = store.rows()
    pairs = db.embedding_positions(rec.model_id, rec.version)
    if isinstance(rows, Sized):  # a file read at this moment: rows committed since lie past its end
        pairs = [(h, p) for h, p in pairs if p < len(rows)]
    if not pairs:
        raise EmptyCatalogError(f"the catalog has no embedded images for model {model!r}")
    shas = [h for h, _ in pairs]
    positions = np.fromiter((p for _, p in pairs), dtype=np.int64, count=len(pairs))
    return IndexedVectors(rec.model_id, rec.version, rec.dim, shas, positions, rows)


def _sample_positions(positions: np.ndarray) -> np.ndarray:
    """Up to ``_SAMPLE + 1`` positions spread over the indexed rows (sorted, unique)."""
    ordered = np.sort(positions)
    if not len(ordered):
        return ordered
    stride = max(1, len(ordered) // _SAMPLE)
    return np.unique(np.concatenate([ordered[::stride], ordered[-1:]]))


def _sample_digest(data: IndexedVectors, picks: np.ndarray) -> str:
    h = hashlib.sha256(f"{data.model_id}\0{data.version}".encode())
    if len(picks):
        h.update(np.asarray(picks, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(data.matrix()[picks], dtype=np.float32).tobytes())
    return h.hexdigest()


@contextlib.contextmanager
def folder_lock(folder: Path | None) -> Iterator[None]:
    """Exclusive lock on a FAISS index folder (syncs, and doctor's repairs); no-op for a server index."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def index_location(settings: Settings, model_id: str, version: str) -> tuple[str, Path | None, str]:
    """(uri, default FAISS folder, index name) for a model's index under the catalog settings."""
    key = vector_key(model_id, version)
    scheme, location = parse_index_uri(settings.index_uri)
    folder = settings.home / "index" / key if scheme == "faiss" and not location else None
    if scheme == "faiss" and location:
        folder = Path(location) / key
    return settings.index_uri, folder, key


def _open(settings: Settings, data: IndexedVectors, **options: Any) -> tuple[VectorIndex, Path | None, str]:
    uri, folder, key = index_location(settings, data.model_id, data.version)
    index = open_index(uri, dim=data.dim, name=key, default_dir=folder, **options)
    return index, folder, key


def sync_index(
    db: CatalogDB, settings: Settings, data: IndexedVectors, **options: Any
) -> tuple[VectorIndex, dict[str, Any]]:
    """Open the model's index and bring it in line with the database. Returns (index, report).

    The report says what happened: ``action`` is ``"none"``, ``"added"`` or ``"rebuilt"``
    (with ``reason``), plus ``added`` rows and ``seconds``.
    """
    t0 = time.perf_counter()
    _, folder, _ = index_location(settings, data.model_id, data.version)
    with folder_lock(folder):
        reason = ""
        try:
            index, _, _ = _open(settings, data, **options)
        except IndexCorruptError as exc:
            reason = f"corrupt index: {exc}"
            if folder is not None:
                _clear_folder(folder)
            index, _, _ = _open(settings, data, **options)
        manifest = dict(getattr(index, "manifest", {}) or {})
        positions = data.positions
        indexed = np.unique(np.asarray(index.ids(), dtype=np.int64)) if manifest and not reason else None
        if not reason:
            reason = _check(index, manifest, data, indexed)
        if reason:
            _rebuild(index, data, positions)
            report = {"action": "rebuilt", "reason": reason, "added": int(len(positions))}
        else:
            new = np.setdiff1d(positions, indexed, assume_unique=True)
            if len(new):
                _add(index, data, new)
                _set_manifest(index, data, positions)
                index.save()
                report = {"action": "added", "added": int(len(new))}
            else:
                report = {"action": "none", "added": 0}
    report["seconds"] = round(time.perf_counter() - t0, 3)
    report["count"] = index.count()
    return index, report


def _clear_folder(folder: Path) -> None:
    import shutil

    for p in folder.iterdir():
        if p.name == ".lock":
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _check(
    index: VectorIndex, manifest: dict[str, Any], data: IndexedVectors, indexed: np.ndarray | None
) -> str:
    """Why the index must be rebuilt ("" when it can be caught up incrementally)."""
    if not manifest:
        return "no index yet" if index.count() == 0 else "index without a manifest"
    if manifest.get("model_id") != data.model_id or manifest.get("version") != data.version:
        return "built for another model version"
    if "sample_positions" not in manifest:
        return "index manifest from an older catalens"
    if index.count() != int(manifest.get("n", -1)):
        return f"index holds {index.count()} vectors, manifest says {manifest.get('n')}"
    assert indexed is not None
    gone = np.setdiff1d(indexed, data.positions)
    if len(gone):
        return f"index is ahead of the database ({len(gone)} indexed rows are no longer in the catalog)"
    picks = np.asarray(manifest["sample_positions"], dtype=np.int64)
    if _sample_digest(data, picks) != manifest.get("sample_sha"):
        return "vectors changed since the index was built (checksum mismatch)"
    return ""


def _add(index: VectorIndex, data: IndexedVectors, positions: np.ndarray) -> None:
    mat = data.matrix()
    for s in range(0, len(positions), _CHUNK):
        chunk = positions[s : s + _CHUNK]
        index.upsert(chunk, l2_normalize(np.asarray(mat[chunk])))


def _rebuild(index: VectorIndex, data: IndexedVectors, positions: np.ndarray) -> None:
    drop = getattr(index, "drop", None)
    if callable(drop):
        drop()
    else:  # pragma: no cover - third-party backends without drop()
        index.delete(index.ids())
    reserve = getattr(index, "reserve", None)
    if callable(reserve):
        reserve(len(positions))  # approximate-index parameters sized for the whole catalog
    _add(index, data, positions)
    _set_manifest(index, data, positions)
    index.save()


def _set_manifest(index: VectorIndex, data: IndexedVectors, positions: np.ndarray) -> None:
    picks = _sample_positions(positions)
    index.manifest = {  # type: ignore[attr-defined]
        "model_id": data.model_id,
        "version": data.version,
        "n": int(len(positions)),
        "max_position": int(positions.max()) if len(positions) else -1,
        "sample_positions": picks.tolist(),
        "sample_sha": _sample_digest(data, picks),
        "synced_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def require_rows(data: IndexedVectors, shas: list[str]) -> np.ndarray:
    """Positions of the given image hashes; NotFoundError when one has no embedding."""
    pos = dict(zip(data.shas, data.positions.tolist(), strict=True))
    missing = [h for h in shas if h not in pos]
    if missing:
        raise NotFoundError(f"image {missing[0][:12]}... has no embedding for model {data.model_id!r}")
    return np.array([pos[h] for h in shas], dtype=np.int64)
