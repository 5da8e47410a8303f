"""Vector stores: where the float32 embedding of each (image, model) lives.

Rows are addressed by *position*. Positions are allocated by the database
(``CatalogDB.allocate_rows``: one short transaction bumps a per-model counter), so any number of
concurrent writers - threads, processes, the server's jobs, machines - get disjoint ranges. A
writer then stores its vectors at its own positions and commits the database rows that point at
them. Nothing is ever truncated or reused: a writer that dies after allocating leaves an unused
range (a hole nobody points at), never a row that another writer owns.

Two stores share the :class:`VectorStore` protocol:

* :class:`FileVectorStore` (default with SQLite): one float32 matrix per (model, version) under
  ``<home>/vectors``. Rows are written with ``pwrite`` at their positions and fsynced *before* the
  database commit that references them, so a committed row always has its bytes on disk. On open,
  records pointing past the end of the file (the file was lost or cut) are dropped so those images
  are embedded again. The file belongs to one home: its store id (``<home>/vectors/.store-id``) is
  recorded in the database, and another home (another machine) opening the same database with a
  file store is refused rather than allowed to read holes.
* :class:`DatabaseVectorStore` (default with PostgreSQL or any non-SQLite URL): rows in the
  ``embedding_vectors`` table, inserted in the same transaction as the embedding records, so every
  process and machine that reaches the database shares them with the database's own guarantees.

Both hand out :class:`VectorRows`: ``rows[positions] -> (n, dim) float32``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from catalens.errors import ConfigError, EmptyCatalogError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from catalens.catalog.db import CatalogDB

STORE_KINDS = ("file", "db")


def vector_key(model_id: str, version: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_id).strip("_")[:80]
    digest = hashlib.sha256(f"{model_id}\0{version}".encode()).hexdigest()[:8]
    return f"{safe}-{version}-{digest}"


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _as_positions(index: Any) -> tuple[np.ndarray, bool]:
    """(int64 positions, whether a single row was asked for)."""
    if isinstance(index, int | np.integer):
        return np.array([int(index)], dtype=np.int64), True
    return np.asarray(index, dtype=np.int64).reshape(-1), False


class VectorRows(Protocol):
    """Read access to stored rows by position: ``rows[positions]`` -> ``(n, dim)`` float32."""

    dim: int

    def __getitem__(self, index: Any) -> np.ndarray: ...


class VectorStore(Protocol):
    """Where one (model, version)'s vectors live. See the module docstring for the guarantees."""

    kind: str
    model_id: str
    version: str
    dim: int

    def store_id(self) -> str:
        """What the database records as this model's store (``db`` or ``file:<id>``)."""

    def floor(self) -> int:
        """Lowest position a new allocation may use (rows below it may already hold data)."""

    def writing(self) -> AbstractContextManager[None]:
        """Held by a writer from allocating rows to committing their records (file store: a shared
        lock, so that ``verify`` never sees rows written but not yet committed as lost)."""

    def write(self, start: int, vectors: np.ndarray) -> None:
        """Durably store rows ``start..start+n-1`` before the database commit (file store)."""

    def stage(self, session: Session, positions: Sequence[int], vectors: np.ndarray) -> None:
        """Add rows to the database transaction that records them (database store)."""

    def verify(self, db: CatalogDB) -> int:
        """Drop embedding records whose vectors are gone; returns how many were dropped."""

    def rows(self) -> VectorRows:
        """Read access to the committed rows."""


def _check_vectors(vectors: np.ndarray, dim: int) -> np.ndarray:
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    if data.ndim != 2 or data.shape[1] != dim:
        raise ValueError(f"expected (n, {dim}) vectors, got {data.shape}")
    return data


class FileVectorStore:
    """One float32 matrix file per (model, version) in a home's ``vectors`` folder."""

    kind = "file"

    def __init__(self, root: Path, model_id: str, version: str, dim: int) -> None:
        self.root = root
        self.path = root / f"{vector_key(model_id, version)}.f32"
        self.model_id, self.version, self.dim = model_id, version, dim
        self.row_bytes = 4 * dim
        root.mkdir(parents=True, exist_ok=True)

    def store_id(self) -> str:
        """``file:<uuid>`` of this home's vectors folder (made once, atomically)."""
        marker = self.root / ".store-id"
        if not marker.exists():
            tmp = self.root / f".store-id.{os.getpid()}.{uuid.uuid4().hex}"
            tmp.write_text(uuid.uuid4().hex)
            try:
                os.link(tmp, marker)  # fails if another process made it first: keep theirs
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        return f"file:{marker.read_text().strip()}"

    def rows_on_disk(self) -> int:
        return self.path.stat().st_size // self.row_bytes if self.path.exists() else 0

    def floor(self) -> int:
        return self.rows_on_disk()

    def write(self, start: int, vectors: np.ndarray) -> None:
        data = _check_vectors(vectors, self.dim)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            view, offset = memoryview(data.tobytes()), start * self.row_bytes
            while view:  # pwrite may write less than asked
                n = os.pwrite(fd, view, offset)
                view, offset = view[n:], offset + n
            os.fsync(fd)
        finally:
            os.close(fd)

    def stage(self, session: Session, positions: Sequence[int], vectors: np.ndarray) -> None:
        return None  # the rows were written (and fsynced) by write()

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        with open(self.root / f"{self.path.stem}.lock", "a+") as fh:
            fcntl.flock(fh.fileno(), mode)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def writing(self) -> AbstractContextManager[None]:
        return self._locked(fcntl.LOCK_SH)  # writers share it; only verify's repair excludes them

    def verify(self, db: CatalogDB) -> int:
        """Records past the end of the file point at lost bytes: drop them (re-embedded later).

        A committed record's row is on disk before its commit, so reading the largest committed
        position FIRST and the file size after can only find a record past the end when the file
        was really cut or lost. The repair itself runs under the exclusive lock, so no writer is
        between writing its rows and committing them while records are dropped."""
        if db.max_position(self.model_id, self.version) < self.rows_on_disk():
            return 0
        with self._locked(fcntl.LOCK_EX):
            on_disk = self.rows_on_disk()
            if db.max_position(self.model_id, self.version) < on_disk:
                return 0
            return db.drop_embeddings_from(self.model_id, self.version, on_disk)

    def rows(self) -> VectorRows:
        n = self.rows_on_disk()
        if n == 0:
            return _ArrayRows(np.zeros((0, self.dim), dtype=np.float32))
        return _ArrayRows(np.memmap(self.path, dtype=np.float32, mode="r", shape=(n, self.dim)))


class _ArrayRows:
    """Rows of an in-memory or memory-mapped matrix."""

    def __init__(self, mat: np.ndarray) -> None:
        self.mat, self.dim = mat, int(mat.shape[1])

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.mat[index]

    def __len__(self) -> int:
        return int(self.mat.shape[0])


class DatabaseVectorStore:
    """Vectors as rows of ``embedding_vectors``, written in the embedding records' transaction."""

    kind = "db"

    def __init__(self, db: CatalogDB, model_id: str, version: str, dim: int) -> None:
        self.db, self.model_id, self.version, self.dim = db, model_id, version, dim

    def store_id(self) -> str:
        return "db"

    def floor(self) -> int:
        return 0

    def writing(self) -> AbstractContextManager[None]:
        return nullcontext()  # records and vectors commit in one transaction

    def write(self, start: int, vectors: np.ndarray) -> None:
        return None  # stored by stage(), inside the database transaction

    def stage(self, session: Session, positions: Sequence[int], vectors: np.ndarray) -> None:
        data = _check_vectors(vectors, self.dim)
        self.db.stage_vectors(session, self.model_id, self.version, positions, data)

    def verify(self, db: CatalogDB) -> int:
        return 0  # records and vectors are committed together

    def rows(self) -> VectorRows:
        return _DatabaseRows(self.db, self.model_id, self.version, self.dim)


class _DatabaseRows:
    """Rows fetched from the database on demand (in chunks), in the order asked."""

    def __init__(self, db: CatalogDB, model_id: str, version: str, dim: int) -> None:
        self.db, self.model_id, self.version, self.dim = db, model_id, version, dim

    def __getitem__(self, index: Any) -> np.ndarray:
        positions, single = _as_positions(index)
        out = self.db.read_vectors(self.model_id, self.version, positions, self.dim)
        return out[0] if single else out


def resolve_store_kind(setting: str, database_url: str) -> str:
    """``auto`` -> ``file`` for SQLite (one machine), ``db`` for a database server (shared)."""
    kind = (setting or "auto").lower()
    if kind == "auto":
        return "file" if database_url.startswith("sqlite") else "db"
    if kind not in STORE_KINDS:
        raise ConfigError(f"unknown vector store {setting!r}; known: auto, {', '.join(STORE_KINDS)}")
    return kind


def open_store(
    db: CatalogDB, home: Path, model_id: str, version: str, dim: int, kind: str = "auto"
) -> VectorStore:
    """The vector store of a (model, version), checked against what the database recorded.

    A model's vectors stay in the store they were first written to: opening them with another
    kind, or opening a file store from another home (another machine), is refused with a
    ConfigError that says which store holds them."""
    recorded = db.vector_store_of(model_id, version)
    wanted = resolve_store_kind(kind, db.url)
    if recorded is not None and kind == "auto":
        wanted = "db" if recorded == "db" else "file"
    store: VectorStore
    if wanted == "db":
        store = DatabaseVectorStore(db, model_id, version, dim)
    else:
        store = FileVectorStore(home / "vectors", model_id, version, dim)
    sid = store.store_id()
    if recorded is None or (recorded == "file:" and store.kind == "file"):
        db.claim_vector_store(model_id, version, sid)  # first writer (or a home from schema v1)
        recorded = db.vector_store_of(model_id, version)
    if recorded != sid:
        where = "the database" if recorded == "db" else f"a vector file of another home ({recorded})"
        raise ConfigError(
            f"vectors of model {model_id!r} (version {version}) are kept in {where}, not in "
            f"{'the database' if sid == 'db' else str(home / 'vectors')}; open the catalog with "
            "the home that holds them, or keep vectors in the database (vector_store = 'db', "
            "CATALENS_VECTOR_STORE=db) when several machines share one catalog"
        )
    return store


def load_vectors(
    db: CatalogDB, home: Path, model_id: str, version: str | None = None, kind: str = "auto"
) -> tuple[list[str], np.ndarray]:
    """(image hashes, L2-normalised float32 matrix) of every stored embedding of a model."""
    recs = [m for m in db.models() if m.model_id == model_id and (version is None or m.version == version)]
    if not recs:
        raise EmptyCatalogError(
            f"no embeddings stored for model {model_id!r}; run `catalens embed --model {model_id}`"
        )
    rec = recs[-1]
    store = open_store(db, home, rec.model_id, rec.version, rec.dim, kind)
    pairs = db.embedding_positions(rec.model_id, rec.version)
    if not pairs:
        raise EmptyCatalogError(f"no embeddings stored for model {model_id!r}")
    positions = np.fromiter((p for _, p in pairs), dtype=np.int64, count=len(pairs))
    return [h for h, _ in pairs], np.asarray(store.rows()[positions])
