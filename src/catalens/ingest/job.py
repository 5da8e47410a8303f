"""The ingest + embed job: read, hash, decode, preprocess (threads) -> batched inference -> store.

Each batch is committed atomically, on a writer thread while the next batch is inferred: vectors
are appended and fsynced, then one database transaction records the batch's images, product
links, failures and embedding rows. An
interrupted run therefore leaves only whole batches behind, and the next run skips them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from catalens.catalog.db import BatchWritten, CatalogDB, NewImage, ProductInfo
from catalens.catalog.storage import disk_full_error, is_disk_full
from catalens.errors import CatalensError, ImageError
from catalens.imageio import decode_image, pixel_hash, read_bytes, sha256_bytes
from catalens.ingest.fetch import fetch_bytes
from catalens.ingest.prefetch import prefetch_map
from catalens.ingest.sources import SourceItem
from catalens.vectors import VectorStore, l2_normalize, open_store

if TYPE_CHECKING:
    from catalens.config import Settings


# JPEGs at least twice this size on their short side are decoded at reduced scale (DCT
# scaling); the pixel hash is taken on that decode. 512 keeps every model input (<= 448 px
# after crop) sharp while large photos decode 4-16x faster.
DRAFT_SHORT_SIDE = 512


@dataclass
class Failure:
    source: str
    kind: str
    reason: str


@dataclass
class JobReport:
    job_id: int | None = None
    status: str = "done"
    seen: int = 0
    new_images: int = 0
    already_present: int = 0
    embedded: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    model: str | None = None
    failures: list[Failure] = field(default_factory=list)
    # ``ingest --detect``: photos searched for products, crops found / stored new (None: not asked)
    detected: dict[str, int] | None = None

    @property
    def rate(self) -> float:
        return self.seen / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "seen": self.seen,
            "new_images": self.new_images,
            "already_present": self.already_present,
            "embedded": self.embedded,
            "failed": self.failed,
            "elapsed_s": round(self.elapsed_s, 3),
            "images_per_s": round(self.rate, 2),
            "model": self.model,
            "failures": [f.__dict__ for f in self.failures],
            **({"detected": self.detected} if self.detected is not None else {}),
        }


@dataclass
class _Prepared:
    item: SourceItem
    sha: str | None = None
    image: NewImage | None = None
    tensor: np.ndarray | None = None
    failure: Failure | None = None
    # an L2-normalised embedding computed elsewhere (a Ray worker); stored as is, not re-encoded
    vector: np.ndarray | None = None

    @property
    def wants_vector(self) -> bool:
        return self.tensor is not None or self.vector is not None


def draft_side(encoder: Any | None) -> int:
    """The short side JPEGs are draft-decoded to: one policy whatever the model and whether or not
    we embed, so that the pixel hash of an image does not depend on how it was ingested."""
    model_side = int(encoder.preprocess.target_short_side) if encoder is not None else 0
    return max(DRAFT_SHORT_SIDE, model_side)


class ItemPreparer:
    """The per-item side of a job: read, hash, decode, pixel-hash, preprocess. It needs no database:
    ``known``/``embedded`` are the image hashes already stored / already embedded for the model.
    The local engine runs it on threads (:class:`IngestRunner`), the Ray engine on workers."""

    def __init__(self, settings: Settings, encoder: Any | None, known: set[str], embedded: set[str]) -> None:
        self.settings, self.encoder, self.known, self.embedded = settings, encoder, known, embedded
        self.draft_to = draft_side(encoder)
        self.blob_root = settings.home / "blobs"

    # ---- worker side (threads) ----------------------------------------------------------------
    def _load(self, item: SourceItem) -> bytes:
        s = self.settings
        if item.url is not None:
            return fetch_bytes(
                item.url,
                timeout_s=s.fetch_timeout_s,
                max_bytes=s.max_file_bytes,
                allow_private=s.allow_private_urls,
            )
        assert item.path is not None
        return read_bytes(item.path, max_bytes=s.max_file_bytes)

    def _store_blob(self, sha: str, data: bytes, fmt: str) -> str:
        path = self.blob_root / sha[:2] / f"{sha}.{fmt.lower()}"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(path)
        return str(path)

    def prepare(self, item: SourceItem) -> _Prepared:
        if item.error is not None:
            return _Prepared(item, failure=Failure(item.source, "manifest", item.error))
        try:
            data = self._load(item)
            sha = sha256_bytes(data)
            needs_embed = self.encoder is not None and sha not in self.embedded
            if sha in self.known and not needs_embed:
                return _Prepared(item, sha=sha)
            decoded = decode_image(
                data,
                item.source,
                max_pixels=self.settings.max_pixels,
                max_side=self.settings.max_side,
                draft_to=self.draft_to,
            )
            stored = self._store_blob(sha, data, decoded.format) if item.url is not None else None
            record = NewImage(
                sha256=sha,
                source=item.source if item.url else str(Path(item.source).resolve()),
                width=decoded.width,
                height=decoded.height,
                format=decoded.format,
                mode=decoded.mode,
                n_bytes=len(data),
                pixel_sha256=pixel_hash(decoded.image),
                stored_path=stored,
            )
            tensor = self.encoder.preprocess(decoded.image) if needs_embed else None
            return _Prepared(item, sha=sha, image=record, tensor=tensor)
        except ImageError as exc:
            return _Prepared(item, failure=Failure(item.source, exc.kind, exc.reason))
        except CatalensError as exc:
            return _Prepared(item, failure=Failure(item.source, "error", str(exc)))
        except OSError as exc:
            if is_disk_full(exc):  # not this item's fault: the whole job stops (see run_job)
                raise
            return _Prepared(item, failure=Failure(item.source, "error", f"{type(exc).__name__}: {exc}"))
        except Exception as exc:  # a bug or an unforeseen library error: keep the batch going
            return _Prepared(item, failure=Failure(item.source, "error", f"{type(exc).__name__}: {exc}"))


class IngestRunner(ItemPreparer):
    """Runs one job over source items. ``encoder`` is None for an ingest without embedding."""

    def __init__(
        self,
        db: CatalogDB,
        settings: Settings,
        *,
        encoder: Any | None,
        job_id: int | None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.db, self.settings, self.encoder, self.job_id = db, settings, encoder, job_id
        self.on_progress = on_progress
        self.known = db.known_image_shas()
        self.links = db.product_links()
        self.embedded: set[str] = set()
        self.vectors: VectorStore | None = None
        self.model_rec = None
        if encoder is not None:
            spec = getattr(encoder, "spec", None)
            spec_dict = spec.to_dict() if hasattr(spec, "to_dict") else {}
            self.model_rec = db.model_record(encoder.model_id, encoder.version, encoder.dim, spec_dict)
            self.vectors = open_store(
                db, settings.home, encoder.model_id, encoder.version, encoder.dim, settings.vector_store
            )
            self.vectors.verify(db)  # records whose vector bytes were lost are embedded again
            self.embedded = db.embedded_shas(encoder.model_id, encoder.version)
        ItemPreparer.__init__(self, settings, encoder, self.known, self.embedded)

    # ---- main thread --------------------------------------------------------------------------
    def run(
        self, items: Iterable[SourceItem], report: JobReport, prepared: Iterable[_Prepared] | None = None
    ) -> JobReport:
        """Prepare items in worker threads, infer batches here, and store each batch on a writer
        thread while the next batch is inferred (at most one write in flight, in batch order).

        ``prepared``: items already prepared elsewhere (the Ray engine's workers, vectors included),
        in any order, instead of preparing ``items`` here; they are stored the same way."""
        batch_size = max(1, self.settings.batch_size)
        pending: list[_Prepared] = []
        n_tensors = 0
        pending_shas: set[str] = set()
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalens-writer")
        in_flight: tuple[Future[None], _Batch] | None = None

        def settle() -> None:
            nonlocal in_flight
            if in_flight is not None:
                fut, done = in_flight
                in_flight = None
                fut.result()  # re-raises a failed write
                self._account(done, report)

        try:
            stream = prepared
            if stream is None:
                stream = prefetch_map(
                    self.prepare,
                    items,
                    workers=self.settings.workers,
                    ahead=4 * batch_size,
                    nice=self.settings.prefetch_nice if self.encoder is not None else 0,
                )
            for prep in stream:
                report.seen += 1
                if prep.sha is not None:
                    # a second reference to one image (in this batch, or stored since it was prepared)
                    if prep.sha in pending_shas or prep.sha in self.embedded:
                        prep.tensor = prep.vector = None
                    if prep.sha in pending_shas or prep.sha in self.known:
                        prep.image = None
                    pending_shas.add(prep.sha)
                pending.append(prep)
                if prep.wants_vector:
                    n_tensors += 1
                if n_tensors >= batch_size or len(pending) >= 8 * batch_size:
                    staged = self._stage(pending)
                    settle()
                    in_flight = (writer.submit(self._write, staged), staged)
                    pending, n_tensors, pending_shas = [], 0, set()
            if pending:
                staged = self._stage(pending)
                settle()
                in_flight = (writer.submit(self._write, staged), staged)
            settle()
        finally:
            # an interrupted run still finishes (or fails) the write in flight: each write is one
            # transaction, so the catalog holds whole batches either way
            writer.shutdown(wait=True)
            if in_flight is not None and in_flight[0].done() and in_flight[0].exception() is None:
                self._account(in_flight[1], report)
        return report

    def _stage(self, batch: list[_Prepared]) -> _Batch:
        """Infer the batch's tensors and assemble its rows (main thread). The in-memory sets are
        updated now, so that the next batches see these images while this one is being written."""
        with_tensor = [p for p in batch if p.wants_vector]
        vecs: np.ndarray | None = None
        embeddings: list[str] = []
        if with_tensor and self.encoder is not None and self.vectors is not None:
            vecs = self._infer(with_tensor)
            embeddings = [p.sha for p in with_tensor]  # type: ignore[misc]
        images = [p.image for p in batch if p.image is not None and p.sha not in self.known]
        products: dict[str, ProductInfo] = {}
        links: list[tuple[str, str]] = []
        for p in batch:
            if p.sha is None or p.item.product_id is None:
                continue
            pid = p.item.product_id
            if pid not in products:
                products[pid] = ProductInfo(pid, p.item.title, dict(p.item.attrs))
            if (pid, p.sha) not in self.links:
                links.append((pid, p.sha))
        failures = [(p.failure.source, p.failure.kind, p.failure.reason) for p in batch if p.failure]
        self.embedded.update(embeddings)
        self.known.update(img.sha256 for img in images)  # type: ignore[union-attr]
        self.links.update(links)
        return _Batch(batch, vecs, embeddings, images, list(products.values()), links, failures)  # type: ignore[arg-type]

    def _infer(self, items: list[_Prepared]) -> np.ndarray:
        """(N, dim) L2-normalised vectors of ``items``: encoded here from their tensors in one batch,
        or as a worker computed them (``_Prepared.vector``)."""
        todo = [p for p in items if p.vector is None]
        if todo:
            assert self.encoder is not None
            x = np.stack([p.tensor for p in todo]).astype(np.float32, copy=False)
            encoded = l2_normalize(self.encoder.encode(x))
            if len(todo) == len(items):
                return encoded
            for p, v in zip(todo, encoded, strict=True):
                p.vector = v
        return np.stack([p.vector for p in items]).astype(np.float32, copy=False)  # type: ignore[misc]

    def _write(self, b: _Batch) -> None:
        """Store one batch (writer thread): row positions allocated by the database, vectors written
        at them (fsynced, file store), then one transaction records the batch (and, database store,
        the vectors of the embedding records it inserted). Safe beside any number of other writers."""
        store = self.vectors
        with store.writing() if store is not None else nullcontext():
            written = self._store_batch(b, store)
        b.new_images, b.embedded = written.images, len(written.positions)

    def _store_batch(self, b: _Batch, store: VectorStore | None) -> BatchWritten:
        positions: list[int] = []
        if b.vectors is not None and store is not None and self.model_rec is not None:
            rec = self.model_rec
            start = self.db.allocate_rows(rec.model_id, rec.version, len(b.vectors), store.floor())
            positions = list(range(start, start + len(b.vectors)))
            store.write(start, b.vectors)
        row_of = dict(zip(positions, range(len(positions)), strict=True))

        def stage_vectors(session: Any, kept: set[int]) -> None:
            if store is not None and b.vectors is not None:
                keep = sorted(kept)
                store.stage(session, keep, b.vectors[[row_of[p] for p in keep]])

        return self.db.record_batch(
            images=b.images,
            products=b.products,
            links=b.links,
            failures=b.failures,
            embeddings=list(zip(b.embeddings, positions, strict=True)),
            model=self.model_rec,
            job_id=self.job_id,
            on_embeddings=stage_vectors,
        )

    def _account(self, b: _Batch, report: JobReport) -> None:
        """Counters and progress of a committed batch."""
        report.new_images += b.new_images
        report.embedded += b.embedded
        report.already_present += sum(1 for p in b.items if p.sha is not None and p.image is None)
        report.failures.extend(p.failure for p in b.items if p.failure)
        report.failed = len(report.failures)
        if self.on_progress:
            self.on_progress(len(b.items))


@dataclass
class _Batch:
    """One batch ready to be written: its items, vectors and database rows."""

    items: list[_Prepared]
    vectors: np.ndarray | None
    embeddings: list[str]  # image hashes, one per row of ``vectors``
    images: list[NewImage]
    products: list[ProductInfo]
    links: list[tuple[str, str]]
    failures: list[tuple[str, str, str]]
    # rows the write inserted (a concurrent writer may have stored some of the same images first)
    new_images: int = 0
    embedded: int = 0


def run_job(
    db: CatalogDB,
    settings: Settings,
    items: Iterable[SourceItem],
    *,
    kind: str,
    source: str | None,
    encoder: Any | None,
    options: dict[str, Any],
    on_progress: Callable[[int], None] | None = None,
    prepare_with: Callable[[IngestRunner, Iterable[SourceItem]], Iterable[_Prepared]] | None = None,
) -> JobReport:
    """Run one job over ``items``. ``prepare_with(runner, items)``: where items are prepared and
    embedded (the Ray engine); default: threads here, with batched inference in this process."""
    job_id = db.start_job(kind, source, options)
    report = JobReport(job_id=job_id, model=encoder.model_id if encoder is not None else None)
    start = time.perf_counter()
    runner = IngestRunner(db, settings, encoder=encoder, job_id=job_id, on_progress=on_progress)
    try:
        runner.run(items, report, prepare_with(runner, items) if prepare_with is not None else None)
    except KeyboardInterrupt:
        report.status = "interrupted"
        raise
    except OSError as exc:
        report.status = "failed"
        if is_disk_full(exc):  # a vector, blob or index write found the disk full
            raise disk_full_error(Path(exc.filename or settings.home), f"running the {kind} job") from exc
        raise
    except BaseException:
        report.status = "failed"
        raise
    finally:
        report.elapsed_s = time.perf_counter() - start
        counts = report.to_dict()
        counts.pop("failures")
        try:
            db.finish_job(job_id, report.status if report.status != "done" else "done", counts)
        except Exception:  # noqa: BLE001 - never mask the original error
            pass
    return report
