"""Keep a model's vector index consistent with the database and its vector file.

The index is *derived data*: it is built from the embedding rows the database has committed
and the vectors those rows point at. Its manifest (saved atomically with the index) records
what it was built from::

    {"model_id", "version", "n": rows indexed, "max_position": last row indexed,
     "sample_sha": sha256 over a fixed sample of the indexed rows' positions and vectors}

On every open, :func:`sync_index` compares the manifest with the database:

* the database has more rows past ``max_position`` (ingest ran after the last sync, or a crash
  came between the database commit and the index write): the new rows are added;
* the index is ahead of the database (rows were dropped), the sample checksum differs (the
  vector file was replaced), the model differs, the index count disagrees with the manifest,
  or the index files are corrupt/missing: the index is rebuilt from the vectors.

Index writes never precede the database commit, and an index save is atomic, so a crash at
any point leaves either the previous consistent index (caught up on next open) or nothing.
A file lock serialises concurrent syncs of one FAISS folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from catalens.catalog.db import CatalogDB
from catalens.config import Settings
from catalens.errors import EmptyCatalogError, IndexCorruptError, NotFoundError
from catalens.index import VectorIndex, open_index, parse_index_uri
from catalens.vectors import VectorFile, l2_normalize, vector_key

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
    file: VectorFile

    def matrix(self) -> np.ndarray:
        """Memory map of the vector file (rows indexed by position)."""
        return self.file.read()

    def sha_of(self) -> dict[int, str]:
        return dict(zip(self.positions.tolist(), self.shas, strict=True))


def committed_vectors(db: CatalogDB, home: Path, model: str) -> IndexedVectors:
    """The committed embeddings of ``model`` (latest version stored); raises when there are none."""
    recs = [m for m in db.models() if m.model_id == model]
    if not recs:
        known = sorted({m.model_id for m in db.models()})
        hint = f" (embedded models: {', '.join(known)})" if known else ""
        raise EmptyCatalogError(f"no embeddings stored for model {model!r}{hint}; run `catalens embed`")
    rec = recs[-1]
    vf = VectorFile(home / "vectors", rec.model_id, rec.version, rec.dim)
    on_disk = vf.rows_on_disk()
    pairs = [(h, p) for h, p in db.embedding_positions(rec.model_id, rec.version) if p < on_disk]
    if not pairs:
        raise EmptyCatalogError(f"the catalog has no embedded images for model {model!r}")
    shas = [h for h, _ in pairs]
    positions = np.fromiter((p for _, p in pairs), dtype=np.int64, count=len(pairs))
    return IndexedVectors(rec.model_id, rec.version, rec.dim, shas, positions, vf)


def _sample_digest(data: IndexedVectors, positions: np.ndarray) -> str:
    h = hashlib.sha256(f"{data.model_id}\0{data.version}\0{len(positions)}".encode())
    if len(positions):
        stride = max(1, len(positions) // _SAMPLE)
        picks = np.unique(np.concatenate([positions[::stride], positions[-1:]]))
        mat = data.matrix()
        h.update(picks.tobytes())
        h.update(np.ascontiguousarray(mat[picks]).tobytes())
    return h.hexdigest()


@contextlib.contextmanager
def _folder_lock(folder: Path | None) -> Iterator[None]:
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
    with _folder_lock(folder):
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
        if not reason:
            reason = _check(index, manifest, data)
        if reason:
            _rebuild(index, data, positions)
            report = {"action": "rebuilt", "reason": reason, "added": int(len(positions))}
        else:
            new = positions[positions > int(manifest["max_position"])]
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


def _check(index: VectorIndex, manifest: dict[str, Any], data: IndexedVectors) -> str:
    """Why the index must be rebuilt ("" when it can be caught up incrementally)."""
    if not manifest:
        return "no index yet" if index.count() == 0 else "index without a manifest"
    if manifest.get("model_id") != data.model_id or manifest.get("version") != data.version:
        return "built for another model version"
    max_pos = int(manifest.get("max_position", -1))
    covered = data.positions[data.positions <= max_pos]
    if len(covered) != int(manifest.get("n", -1)):
        return f"index is ahead of the database ({manifest.get('n')} rows indexed, {len(covered)} in range)"
    if index.count() != int(manifest["n"]):
        return f"index holds {index.count()} vectors, manifest says {manifest['n']}"
    if _sample_digest(data, covered) != manifest.get("sample_sha"):
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
    index.manifest = {  # type: ignore[attr-defined]
        "model_id": data.model_id,
        "version": data.version,
        "n": int(len(positions)),
        "max_position": int(positions.max()) if len(positions) else -1,
        "sample_sha": _sample_digest(data, positions),
        "synced_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def require_rows(data: IndexedVectors, shas: list[str]) -> np.ndarray:
    """Positions of the given image hashes; NotFoundError when one has no embedding."""
    pos = dict(zip(data.shas, data.positions.tolist(), strict=True))
    missing = [h for h in shas if h not in pos]
    if missing:
        raise NotFoundError(f"image {missing[0][:12]}... has no embedding for model {data.model_id!r}")
    return np.array([pos[h] for h in shas], dtype=np.int64)
