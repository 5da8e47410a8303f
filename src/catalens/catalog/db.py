"""Engine, sessions and the queries the pipeline needs; SQLite by default, any SQLAlchemy URL works."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, case, create_engine, delete, event, func, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from catalens.catalog.migrations import ensure_schema
from catalens.catalog.schema import (
    Base,
    EmbeddingRecord,
    EmbeddingVector,
    ImageRecord,
    Job,
    ModelRecord,
    Product,
    ProductImage,
    VectorAllocation,
    utcnow,
)
from catalens.errors import ConfigError


@dataclass
class NewImage:
    """An image decoded successfully, ready to be recorded."""

    sha256: str
    source: str
    width: int
    height: int
    format: str
    mode: str
    n_bytes: int
    pixel_sha256: str | None = None
    stored_path: str | None = None


@dataclass
class ProductInfo:
    id: str
    title: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


# Feature packages declare their own tables on ``schema.Base`` in these modules; they are
# imported before the schema is created so that ``create_all`` adds any new table.
FEATURE_TABLES = (
    "catalens.search.tables",
    "catalens.classify.tables",
    "catalens.quality.tables",
    "catalens.recommend.tables",
    "catalens.api.tables",
)


@dataclass
class DeletedImage:
    """What :meth:`CatalogDB.delete_image_rows` removed that lives outside the database too."""

    sha256: str
    source: str
    stored_path: str | None
    positions: list[tuple[str, str, int]] = field(default_factory=list)  # (model, version, position)


def _import_feature_tables() -> None:
    import importlib

    for name in FEATURE_TABLES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not (exc.name and name.startswith(exc.name)):
                raise


def _insert_ignoring_conflicts(s: Session, table: Any) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` (SQLite, PostgreSQL): a row another writer committed
    first is skipped instead of failing the whole batch. Other databases get a plain insert."""
    dialect = s.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:  # pragma: no cover - other databases: concurrent writers may conflict
        return insert(table)
    return dialect_insert(table).on_conflict_do_nothing()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    import sqlite3
    import time

    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")  # first: the pragmas below may wait for other writers
    # WAL is stored in the file: set once, by whichever process opens the new catalog first. Switching
    # needs the database to itself, and SQLite answers "locked" at once (no busy wait) when several
    # processes open a new catalog together (seen in CI): read the mode first, retry the switch.
    for attempt in range(50):
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.05 * (1 + attempt % 5))
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


@dataclass(frozen=True)
class BatchWritten:
    """What one ``record_batch`` inserted: new image rows, and positions of new embedding rows."""

    images: int
    positions: set[int]


def _upsert_products(s: Session, products: Sequence[ProductInfo], now: Any) -> None:
    """New products inserted; titles and attributes of existing ones updated (attributes merged)."""
    by_id = {p.id: p for p in products}
    existing = {p.id: p for p in s.scalars(select(Product).where(Product.id.in_(by_id)))}
    new_rows = [
        {"id": p.id, "title": p.title, "attrs": dict(p.attrs), "created_at": now, "updated_at": now}
        for pid, p in by_id.items()
        if pid not in existing
    ]
    if new_rows:
        s.execute(_insert_ignoring_conflicts(s, Product), new_rows)
    for pid, old in existing.items():
        info = by_id[pid]
        if info.title and info.title != old.title:
            old.title = info.title
        if info.attrs:
            merged = {**(old.attrs or {}), **info.attrs}
            if merged != old.attrs:
                old.attrs = merged


def _insert_images(s: Session, images: Sequence[NewImage], job_id: int | None, now: Any) -> int:
    """Insert images not stored yet (and clear failure rows of their sources); returns how many this
    call inserted (a concurrent writer's copy of the same bytes is kept, not duplicated)."""
    shas = {img.sha256 for img in images}
    present = set(s.scalars(select(ImageRecord.sha256).where(ImageRecord.sha256.in_(shas))))
    fresh = {img.sha256: img for img in images if img.sha256 not in present}
    if not fresh:
        return 0
    rows = [
        {
            "sha256": img.sha256,
            "pixel_sha256": img.pixel_sha256,
            "source": img.source,
            "stored_path": img.stored_path,
            "width": img.width,
            "height": img.height,
            "format": img.format,
            "mode": img.mode,
            "n_bytes": img.n_bytes,
            "status": "ok",
            "job_id": job_id,
            "created_at": now,
        }
        for img in fresh.values()
    ]
    inserted = list(s.scalars(_insert_ignoring_conflicts(s, ImageRecord).returning(ImageRecord.sha256), rows))
    sources_ok = [img.source for img in fresh.values()]
    s.execute(delete(ImageRecord).where(ImageRecord.status == "failed", ImageRecord.source.in_(sources_ok)))
    return len(inserted)


def _insert_links(s: Session, wanted: list[tuple[str, str]]) -> None:
    """Product -> image links not present yet, numbered after each product's existing images."""
    pids = {p for p, _ in wanted}
    have = set(
        s.execute(
            select(ProductImage.product_id, ProductImage.image_sha256).where(
                ProductImage.product_id.in_(pids)
            )
        )
    )
    counts = dict(
        s.execute(
            select(ProductImage.product_id, func.count())
            .where(ProductImage.product_id.in_(pids))
            .group_by(ProductImage.product_id)
        ).all()
    )
    rows = []
    for pid, sha in wanted:
        if (pid, sha) in have:
            continue
        rows.append({"product_id": pid, "image_sha256": sha, "position": counts.get(pid, 0)})
        counts[pid] = counts.get(pid, 0) + 1
    if rows:
        s.execute(_insert_ignoring_conflicts(s, ProductImage), rows)


def _record_failures(
    s: Session, failures: Sequence[tuple[str, str, str]], job_id: int | None, now: Any
) -> None:
    """One failure row per source: the newest reason replaces an older one."""
    by_source = {src: (kind, reason) for src, kind, reason in failures}
    olds = {
        r.source: r
        for r in s.scalars(
            select(ImageRecord).where(ImageRecord.status == "failed", ImageRecord.source.in_(by_source))
        )
    }
    add = []
    for src, (kind, reason) in by_source.items():
        if src in olds:
            olds[src].error_kind, olds[src].error, olds[src].job_id = kind, reason, job_id
        else:
            add.append(
                {
                    "source": src,
                    "status": "failed",
                    "error_kind": kind,
                    "error": reason,
                    "job_id": job_id,
                    "created_at": now,
                }
            )
    if add:
        s.execute(_insert_ignoring_conflicts(s, ImageRecord), add)


def _insert_embeddings(
    s: Session, embeddings: Sequence[tuple[str, int]], model: ModelRecord, now: Any
) -> set[int]:
    """Embedding records; returns the positions inserted. Another writer may have embedded the same
    image since this batch was planned: its record stays, and this batch's row is an unused position."""
    rows = [
        {
            "image_sha256": sha,
            "model_id": model.model_id,
            "model_version": model.version,
            "position": pos,
            "created_at": now,
        }
        for sha, pos in embeddings
    ]
    stmt = _insert_ignoring_conflicts(s, EmbeddingRecord).returning(EmbeddingRecord.position)
    return {int(p) for p in s.scalars(stmt, rows)}


class CatalogDB:
    def __init__(self, url: str) -> None:
        try:
            self.engine: Engine = create_engine(url, future=True)
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            raise ConfigError(f"cannot use database URL {url!r}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        _import_feature_tables()
        try:
            self.schema_version = ensure_schema(self.engine)
        except SQLAlchemyError as exc:
            raise ConfigError(f"cannot open database {url!r}: {exc}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.url = url

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed at the end of the block, rolled back on any error."""
        with self._sessions() as s, s.begin():
            yield s

    def close(self) -> None:
        self.engine.dispose()

    # ---- images -------------------------------------------------------------------------------
    def known_image_shas(self) -> set[str]:
        with self.session() as s:
            return set(s.scalars(select(ImageRecord.sha256).where(ImageRecord.status == "ok")))

    def product_links(self) -> set[tuple[str, str]]:
        with self.session() as s:
            return {(p, h) for p, h in s.execute(select(ProductImage.product_id, ProductImage.image_sha256))}

    def ok_images(self) -> list[ImageRecord]:
        with self.session() as s:
            return list(
                s.scalars(select(ImageRecord).where(ImageRecord.status == "ok").order_by(ImageRecord.id))
            )

    def shas_for_sources(self, sources: Iterable[str]) -> dict[str, str]:
        """``{source: sha256}`` of the ok images stored from these sources (paths or URLs)."""
        want = list(dict.fromkeys(sources))
        out: dict[str, str] = {}
        with self.session() as s:
            for i in range(0, len(want), 500):
                q = select(ImageRecord.source, ImageRecord.sha256).where(
                    ImageRecord.status == "ok", ImageRecord.source.in_(want[i : i + 500])
                )
                out.update({src: sha for src, sha in s.execute(q) if sha})
        return out

    def record_regions(self, rows: Sequence[dict[str, Any]]) -> int:
        """Store detected-product crops (``ImageRegion`` fields); a crop already stored is kept.
        Returns how many were new."""
        from catalens.catalog.schema import ImageRegion

        if not rows:
            return 0
        with self.session() as s:
            have = set(
                s.scalars(
                    select(ImageRegion.crop_sha256).where(
                        ImageRegion.crop_sha256.in_([r["crop_sha256"] for r in rows])
                    )
                )
            )
            new = [r for r in {r["crop_sha256"]: r for r in rows}.values() if r["crop_sha256"] not in have]
            if new:
                s.execute(insert(ImageRegion), new)
        return len(new)

    def regions(self, sha256: str) -> dict[str, Any]:
        """The crops detected in the photo ``sha256`` and, when it is itself a crop, its photo and box."""
        from catalens.catalog.schema import ImageRegion

        def row(r: Any) -> dict[str, Any]:
            return {
                "crop_sha256": r.crop_sha256,
                "source_sha256": r.source_sha256,
                "box": [r.x0, r.y0, r.x1, r.y1],
                "score": r.score,
                "category": r.category,
                "detector": r.detector,
            }

        with self.session() as s:
            crops = s.scalars(
                select(ImageRegion)
                .where(ImageRegion.source_sha256 == sha256)
                .order_by(ImageRegion.score.desc())
            )
            parent = s.scalar(select(ImageRegion).where(ImageRegion.crop_sha256 == sha256))
            return {"crops": [row(r) for r in crops], "crop_of": row(parent) if parent else None}

    def image(self, sha256: str) -> ImageRecord | None:
        with self.session() as s:
            return s.scalar(select(ImageRecord).where(ImageRecord.sha256 == sha256))

    def record_batch(
        self,
        *,
        images: Sequence[NewImage] = (),
        products: Sequence[ProductInfo] = (),
        links: Iterable[tuple[str, str]] = (),
        failures: Sequence[tuple[str, str, str]] = (),
        embeddings: Sequence[tuple[str, int]] = (),
        model: ModelRecord | None = None,
        job_id: int | None = None,
        on_embeddings: Callable[[Session, set[int]], None] | None = None,
    ) -> BatchWritten:
        """Write one batch atomically: new images, products, links, failures and embedding rows.

        Set-based: a handful of statements per batch whatever its size (bulk inserts, one
        lookup per table), so the database keeps up with inference. Safe beside concurrent
        writers: a row another writer committed first (same image, product link, failure source or
        embedding) is skipped, not an error, and not counted as this batch's. ``on_embeddings(session,
        positions)`` runs inside the transaction with the positions whose embedding records were
        inserted (the database vector store adds their vectors there).
        """
        now = utcnow()
        with self.session() as s:
            if products:
                _upsert_products(s, products, now)
            new_images = _insert_images(s, images, job_id, now) if images else 0
            wanted = list(dict.fromkeys(links))
            if wanted:
                _insert_links(s, wanted)
            if failures:
                _record_failures(s, failures, job_id, now)
            kept: set[int] = set()
            if embeddings:
                assert model is not None
                kept = _insert_embeddings(s, embeddings, model, now)
                if on_embeddings is not None:
                    on_embeddings(s, kept)
        return BatchWritten(new_images, kept)

    # ---- models and embeddings ----------------------------------------------------------------
    def model_record(self, model_id: str, version: str, dim: int, spec: dict[str, Any]) -> ModelRecord:
        """The model's record, created by the first writer (a concurrent creator's row wins)."""
        where = (ModelRecord.model_id == model_id, ModelRecord.version == version)
        with self.session() as s:
            rec = s.scalar(select(ModelRecord).where(*where))
            if rec is not None:
                return rec
        try:
            with self.session() as s:
                rec = ModelRecord(model_id=model_id, version=version, dim=dim, spec=spec)
                s.add(rec)
                s.flush()
                return rec
        except IntegrityError:  # another writer created it between the two transactions
            with self.session() as s:
                return s.scalars(select(ModelRecord).where(*where)).one()

    # ---- vector rows (see catalens.vectors) ----------------------------------------------------
    def vector_store_of(self, model_id: str, version: str) -> str | None:
        """The store recorded for a model's vectors (``db``, ``file:<id>``), None before any."""
        with self.session() as s:
            return s.scalar(
                select(VectorAllocation.store).where(
                    VectorAllocation.model_id == model_id, VectorAllocation.version == version
                )
            )

    def claim_vector_store(self, model_id: str, version: str, store: str) -> None:
        """Record the store of a model's vectors; the first claim wins. A legacy file store
        (``file:``, from schema v1) is taken over by the first home that opens it."""
        where = (VectorAllocation.model_id == model_id, VectorAllocation.version == version)
        try:
            with self.session() as s:
                s.execute(
                    update(VectorAllocation)
                    .where(*where, VectorAllocation.store == "file:")
                    .values(store=store)
                )
                if s.scalar(select(VectorAllocation.id).where(*where)) is None:
                    s.add(VectorAllocation(model_id=model_id, version=version, store=store, next_position=0))
                    s.flush()
        except IntegrityError:
            pass  # a concurrent writer claimed it first; the caller re-reads the claim

    def allocate_rows(self, model_id: str, version: str, n: int, floor: int = 0) -> int:
        """Reserve ``n`` row positions for a model; returns the first. One short transaction, atomic
        under any number of concurrent writers (row lock on PostgreSQL, the write lock on SQLite).
        ``floor``: positions below it are never handed out (rows a store already holds)."""
        table = VectorAllocation
        base = case((table.next_position < floor, floor), else_=table.next_position)
        with self.session() as s:
            end = s.scalar(
                update(table)
                .where(table.model_id == model_id, table.version == version)
                .values(next_position=base + n)
                .returning(table.next_position)
            )
        if end is None:
            raise ConfigError(f"no vector store recorded for model {model_id!r} {version}; open it first")
        return int(end) - n

    def stage_vectors(
        self, s: Session, model_id: str, version: str, positions: Sequence[int], vectors: np.ndarray
    ) -> None:
        """Add vector rows to the session's transaction (the database vector store)."""
        rows = [
            {"model_id": model_id, "model_version": version, "position": int(p), "data": v.tobytes()}
            for p, v in zip(positions, vectors, strict=True)
        ]
        if rows:
            s.execute(insert(EmbeddingVector), rows)

    def read_vectors(self, model_id: str, version: str, positions: np.ndarray, dim: int) -> np.ndarray:
        """Stored vectors at ``positions`` (in that order) from the database vector store."""
        wanted = np.unique(np.asarray(positions, dtype=np.int64))
        found = np.zeros((len(wanted), dim), dtype=np.float32)
        with self.session() as s:
            for lo in range(0, len(wanted), 5000):
                chunk = wanted[lo : lo + 5000]
                q = select(EmbeddingVector.position, EmbeddingVector.data).where(
                    EmbeddingVector.model_id == model_id,
                    EmbeddingVector.model_version == version,
                    EmbeddingVector.position.in_(chunk.tolist()),
                )
                for pos, data in s.execute(q):
                    found[lo + int(np.searchsorted(chunk, int(pos)))] = np.frombuffer(data, np.float32, dim)
        return found[np.searchsorted(wanted, positions)] if len(wanted) else found

    def models(self) -> list[ModelRecord]:
        with self.session() as s:
            return list(s.scalars(select(ModelRecord).order_by(ModelRecord.id)))

    def embedded_shas(self, model_id: str, version: str) -> set[str]:
        with self.session() as s:
            q = select(EmbeddingRecord.image_sha256).where(
                EmbeddingRecord.model_id == model_id, EmbeddingRecord.model_version == version
            )
            return set(s.scalars(q))

    def embedding_positions(self, model_id: str, version: str) -> list[tuple[str, int]]:
        with self.session() as s:
            q = (
                select(EmbeddingRecord.image_sha256, EmbeddingRecord.position)
                .where(EmbeddingRecord.model_id == model_id, EmbeddingRecord.model_version == version)
                .order_by(EmbeddingRecord.position)
            )
            return [(h, int(p)) for h, p in s.execute(q)]

    def max_position(self, model_id: str, version: str) -> int:
        with self.session() as s:
            q = select(func.max(EmbeddingRecord.position)).where(
                EmbeddingRecord.model_id == model_id, EmbeddingRecord.model_version == version
            )
            value = s.scalar(q)
            return -1 if value is None else int(value)

    def drop_embeddings_from(self, model_id: str, version: str, position: int) -> int:
        """Forget embedding rows at or past ``position`` (their vectors were lost)."""
        with self.session() as s:
            res = s.execute(
                delete(EmbeddingRecord).where(
                    EmbeddingRecord.model_id == model_id,
                    EmbeddingRecord.model_version == version,
                    EmbeddingRecord.position >= position,
                )
            )
            return int(res.rowcount or 0)

    # ---- maintenance (catalens doctor / backup) ----------------------------------------------
    def vector_row_count(self, model_id: str, version: str) -> int:
        """How many vector rows the database vector store holds for a model."""
        with self.session() as s:
            q = select(func.count()).where(
                EmbeddingVector.model_id == model_id, EmbeddingVector.model_version == version
            )
            return int(s.scalar(q) or 0)

    def drop_embeddings_at(self, model_id: str, version: str, positions: Iterable[int]) -> int:
        """Forget the embedding records at ``positions`` (their vectors are damaged); the images are
        embedded again by the next ``embed``. Their rows are never reused (new positions are allocated)."""
        wanted = sorted({int(p) for p in positions})
        n = 0
        with self.session() as s:
            for lo in range(0, len(wanted), 5000):
                res = s.execute(
                    delete(EmbeddingRecord).where(
                        EmbeddingRecord.model_id == model_id,
                        EmbeddingRecord.model_version == version,
                        EmbeddingRecord.position.in_(wanted[lo : lo + 5000]),
                    )
                )
                n += int(res.rowcount or 0)
        return n

    # ---- deletion (every row derived from an image or a product) -----------------------------
    def delete_image_rows(self, sha256: str) -> DeletedImage | None:
        """Delete an image and every row derived from it in one transaction: its record, product
        links, embedding records and (database store) their vector bytes, and the rows of every
        feature table keyed by ``image_sha256`` (predictions, quality results, dedup features...).
        Returns what the caller must clean outside the database (files, file-store rows, index),
        or None when no such image exists. Vector positions are never reused: a file-store row
        becomes an unused hole."""
        _import_feature_tables()
        with self.session() as s:
            rec = s.scalar(select(ImageRecord).where(ImageRecord.sha256 == sha256))
            if rec is None:
                return None
            out = DeletedImage(sha256, rec.source, rec.stored_path)
            rows = s.execute(
                select(
                    EmbeddingRecord.model_id, EmbeddingRecord.model_version, EmbeddingRecord.position
                ).where(EmbeddingRecord.image_sha256 == sha256)
            ).all()
            for model_id, version, position in rows:
                out.positions.append((str(model_id), str(version), int(position)))
                s.execute(
                    delete(EmbeddingVector).where(
                        EmbeddingVector.model_id == model_id,
                        EmbeddingVector.model_version == version,
                        EmbeddingVector.position == position,
                    )
                )
            for table in reversed(Base.metadata.sorted_tables):
                if "image_sha256" in table.c:
                    s.execute(table.delete().where(table.c.image_sha256 == sha256))
            s.execute(delete(ImageRecord).where(ImageRecord.sha256 == sha256))
            return out

    def delete_product_rows(self, product_id: str) -> list[str] | None:
        """Delete a product and every row keyed by its id (image links, events...) in one
        transaction; returns the hashes of its images that no other product links to (the caller
        deletes them), or None when no such product exists."""
        _import_feature_tables()
        with self.session() as s:
            if s.get(Product, product_id) is None:
                return None
            mine = set(
                s.scalars(select(ProductImage.image_sha256).where(ProductImage.product_id == product_id))
            )
            shared = (
                set(
                    s.scalars(
                        select(ProductImage.image_sha256).where(
                            ProductImage.image_sha256.in_(sorted(mine)), ProductImage.product_id != product_id
                        )
                    )
                )
                if mine
                else set()
            )
            for table in reversed(Base.metadata.sorted_tables):
                if "product_id" in table.c:
                    s.execute(table.delete().where(table.c.product_id == product_id))
            s.execute(delete(Product).where(Product.id == product_id))
            return sorted(mine - shared)

    def images_with_source_prefix(self, prefix: str) -> int:
        """How many image rows (ok or failed) have a source starting with ``prefix``."""
        with self.session() as s:
            q = select(func.count()).where(func.substr(ImageRecord.source, 1, len(prefix)) == prefix)
            return int(s.scalar(q) or 0)

    def image_files(self) -> tuple[set[str], set[str]]:
        """(stored paths, sources) of every image row, ok or failed: the files the catalog refers to."""
        with self.session() as s:
            stored, sources = set(), set()
            for path, src in s.execute(select(ImageRecord.stored_path, ImageRecord.source)):
                if path:
                    stored.add(str(path))
                if src:
                    sources.add(str(src))
            return stored, sources

    def rebase_stored_paths(self, old_prefix: str, new_prefix: str) -> int:
        """Stored image copies (blobs) recorded under ``old_prefix`` now live under ``new_prefix`` (a home
        restored elsewhere); returns how many rows were updated."""
        old = old_prefix.rstrip("/") + "/"
        n = 0
        with self.session() as s:
            rows = s.execute(
                select(ImageRecord.id, ImageRecord.stored_path).where(ImageRecord.stored_path.startswith(old))
            ).all()
            for rid, path in rows:
                s.execute(
                    update(ImageRecord)
                    .where(ImageRecord.id == rid)
                    .values(stored_path=new_prefix.rstrip("/") + "/" + path[len(old) :])
                )
                n += 1
        return n

    def running_jobs(self) -> list[Job]:
        """Jobs still marked running (after marking those of dead processes of this host interrupted)."""
        self.mark_dead_jobs()
        with self.session() as s:
            return list(s.scalars(select(Job).where(Job.status == "running").order_by(Job.id)))

    # ---- jobs ---------------------------------------------------------------------------------
    def start_job(self, kind: str, source: str | None, options: dict[str, Any]) -> int:
        """Record a running job (with this process's host and pid); mark dead ones interrupted."""
        self.mark_dead_jobs()
        owner = {"host": socket.gethostname(), "pid": os.getpid()}
        with self.session() as s:
            job = Job(kind=kind, source=source, options={**options, "owner": owner}, status="running")
            s.add(job)
            s.flush()
            return int(job.id)

    def mark_dead_jobs(self) -> int:
        """Jobs left 'running' by a process of this host that no longer exists become 'interrupted'."""
        host, n = socket.gethostname(), 0
        with self.session() as s:
            for job in s.scalars(select(Job).where(Job.status == "running")):
                owner = (job.options or {}).get("owner") or {}
                pid = owner.get("pid")
                if owner.get("host") != host or not isinstance(pid, int) or pid == os.getpid():
                    continue
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    job.status, job.finished_at = "interrupted", utcnow()
                    n += 1
                except PermissionError:
                    pass  # alive, owned by another user
        return n

    def finish_job(self, job_id: int, status: str, counts: dict[str, Any]) -> None:
        with self.session() as s:
            s.execute(
                update(Job).where(Job.id == job_id).values(status=status, counts=counts, finished_at=utcnow())
            )

    # ---- summaries ----------------------------------------------------------------------------
    def info(self, max_failures: int = 50) -> dict[str, Any]:
        self.mark_dead_jobs()
        with self.session() as s:
            by_status = dict(
                s.execute(select(ImageRecord.status, func.count()).group_by(ImageRecord.status)).all()
            )
            n_products = s.scalar(select(func.count()).select_from(Product)) or 0
            models = []
            for rec in s.scalars(select(ModelRecord).order_by(ModelRecord.id)):
                n = s.scalar(
                    select(func.count()).where(
                        EmbeddingRecord.model_id == rec.model_id, EmbeddingRecord.model_version == rec.version
                    )
                )
                models.append(
                    {"model_id": rec.model_id, "version": rec.version, "dim": rec.dim, "embeddings": n}
                )
            failures = [
                {"source": r.source, "kind": r.error_kind, "reason": r.error}
                for r in s.scalars(
                    select(ImageRecord)
                    .where(ImageRecord.status == "failed")
                    .order_by(ImageRecord.id)
                    .limit(max_failures)
                )
            ]
            jobs = [
                {"id": j.id, "kind": j.kind, "source": j.source, "status": j.status, "counts": j.counts}
                for j in s.scalars(select(Job).order_by(Job.id.desc()).limit(5))
            ]
        return {
            "products": n_products,
            "images": {k: int(v) for k, v in by_status.items()},
            "models": models,
            "failures": failures,
            "failures_total": int(by_status.get("failed", 0)),
            "recent_jobs": jobs,
        }
