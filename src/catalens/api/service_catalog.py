"""``ServiceCatalog``: the :class:`catalens.Catalog` the service uses (products, images, quality and
every task live in the core), plus the page's cached insights, API keys and background ingest jobs.
Routes call its methods only."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from catalens.api import keys as _keys
from catalens.api.batching import BatchingEncoder
from catalens.api.insights import InsightsMixin
from catalens.api.jobs import ApiJob, JobManager
from catalens.api.refits import RecommendRefitter
from catalens.api.refresh import SearchRefresher
from catalens.api.settings import ApiSettings
from catalens.api.uploads import (
    Upload,
    UrlItem,
    query_image,
    stage_images,
    stage_manifest,
    stage_urls,
    sweep_uploads,
)
from catalens.catalog.schema import ImageRecord, Job
from catalens.config import Settings
from catalens.core import Catalog
from catalens.ingest.sources import ManifestColumns

if TYPE_CHECKING:
    from catalens.search.engine import CatalogSearch

log = logging.getLogger("catalens.api")


class ServiceCatalog(InsightsMixin, Catalog):
    """A catalog with the extra methods a long-running service needs."""

    search_follows_writes = False  # the refresher swaps engines in (no watermark query per request)

    def __init__(self, settings: Settings, api_settings: ApiSettings | None = None) -> None:
        super().__init__(settings)
        self.api_settings = api_settings or ApiSettings()
        self.jobs = JobManager(on_finish=self._job_finished)
        self._batching: dict[int, BatchingEncoder] = {}
        self._wrap_lock = threading.Lock()
        # other processes (workers of `serve --workers N`, CLI jobs) write the same catalog: the
        # refresher's thread (started by the app) swaps in engines that caught up with them
        self.refresher = SearchRefresher(self, self.api_settings.refresh_s)
        self.refits = RecommendRefitter(self)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.api_settings.max_upload_bytes or self.settings.max_file_bytes)

    @property
    def request_limits(self) -> dict[str, int]:
        return {
            "max_upload_bytes": self.max_upload_bytes,
            "max_upload_files": self.api_settings.max_upload_files,
        }

    def encoder(self, model: str | None = None, device: str | None = None) -> Any:
        """The image encoder, wrapped so that concurrent requests' encodes run as one batch
        (``encode_batch`` rows at most; see :mod:`catalens.api.batching`)."""
        enc = super().encoder(model, device)
        if self.api_settings.encode_batch < 2 or isinstance(enc, BatchingEncoder):
            return enc
        with self._wrap_lock:
            key = id(enc)
            if key not in self._batching:
                self._batching[key] = BatchingEncoder(enc, self.api_settings.encode_batch)
            return self._batching[key]

    # ---- keys ---------------------------------------------------------------------------------
    def create_key(self, role: str, name: str | None = None) -> tuple[str, _keys.KeyInfo]:
        return _keys.create_key(self.db, role, name)

    def verify_key(self, key: str) -> _keys.KeyInfo | None:
        return _keys.verify_key(self.db, key)

    def list_keys(self) -> list[_keys.KeyInfo]:
        return _keys.list_keys(self.db)

    def revoke_key(self, key_id_or_prefix: str) -> _keys.KeyInfo:
        return _keys.revoke_key(self.db, key_id_or_prefix)

    # ---- background ingest --------------------------------------------------------------------
    def _submit(self, kind: str, manifest: Path, products: list[str] | None = None, **opts: Any) -> ApiJob:
        def run(progress: Any) -> Any:
            try:
                return self.ingest(manifest, progress=progress, **opts)
            finally:  # before the job reports done: this worker's searches then see what it wrote
                self._refresh_search()

        return self.jobs.submit(kind, str(manifest), run, products=products)

    def release_upload_folder(self, folder: Path) -> bool:
        """Remove an upload folder under ``<home>/uploads`` when no image row refers to a file in it
        (every file was a duplicate or failed, or the job was cancelled); True when removed."""
        root = (self.settings.home / "uploads").resolve()
        folder = folder.resolve()
        if folder.parent != root or folder.name.startswith(".") or not folder.is_dir():
            return False
        prefix = f"{folder}{os.sep}"
        with self.db.session() as s:
            used = s.scalar(
                select(ImageRecord.id)
                .where(func.substr(ImageRecord.source, 1, len(prefix)) == prefix)
                .limit(1)
            )
        if used is not None:
            return False
        shutil.rmtree(folder, ignore_errors=True)
        return True

    def sweep_uploads(self, min_age_s: float = 3600.0) -> list[str]:
        """Remove upload folders and incoming files older than ``min_age_s`` that back no image."""
        stored, sources = self.db.image_files()
        return sweep_uploads(self.settings.home, stored | sources, min_age_s=min_age_s)

    def submit_upload(
        self,
        uploads: Sequence[Upload],
        *,
        product_id: str | None = None,
        title: str | None = None,
        attrs: dict[str, Any] | None = None,
        embed: bool = True,
    ) -> ApiJob:
        """Check and store uploaded images, then ingest them in the background."""
        manifest = stage_images(
            self.settings.home,
            uploads,
            self.settings,
            max_bytes=self.max_upload_bytes,
            product_id=product_id,
            title=title,
            attrs=attrs,
        )
        products = [json.loads(line)["id"] for line in manifest.read_text(encoding="utf-8").splitlines()]
        return self._submit(
            "upload", manifest, products, image_col="image", id_col="id", text_col="title", embed=embed
        )

    def submit_urls(self, items: Sequence[UrlItem], *, embed: bool = True) -> ApiJob:
        """Check the URLs (scheme, address guard), then fetch and ingest them in the background."""
        manifest = stage_urls(self.settings.home, items, allow_private=self.settings.allow_private_urls)
        return self._submit("urls", manifest, image_col="image", id_col="id", text_col="title", embed=embed)

    def submit_manifest(
        self,
        upload: Upload,
        *,
        image_col: str | None = None,
        id_col: str | None = None,
        text_col: str | None = None,
        label_cols: list[str] | None = None,
        embed: bool = True,
        allow_local_paths: bool = False,
    ) -> ApiJob:
        """Check an uploaded manifest row by row, then ingest it in the background."""
        cols = ManifestColumns(image=image_col, id=id_col, text=text_col, labels=label_cols)
        manifest = stage_manifest(
            self.settings.home,
            upload,
            cols,
            allow_private=self.settings.allow_private_urls,
            allow_local_paths=allow_local_paths,
        )
        return self._submit(
            "manifest",
            manifest,
            image_col=image_col,
            id_col=id_col,
            text_col=text_col,
            label_cols=label_cols,
            embed=embed,
        )

    def current_searcher(self, model: str | None = None) -> CatalogSearch:
        """The engine for ``model`` once the refresher caught up with the database (a rebuild
        here when it has not polled since the last write: a write made in this process or
        another, not yet swapped in)."""
        self.refresher.poll()
        return self.searcher(model)

    def _refresh_search(self) -> None:
        """Swap in search engines caught up with the database, built here (a job's thread) while
        requests keep answering from the current ones; if that fails, the next search re-opens."""
        try:
            self.refresher.refresh()
        except Exception:  # noqa: BLE001 - never fail the job for it
            log.warning("refreshing the search engines after a job failed", exc_info=True)
            self.__dict__.pop("_searchers", None)

    def _job_finished(self, job: ApiJob) -> None:
        self._record_cancel(job)
        self.release_upload_folder(Path(job.source).parent)  # what the job did not keep
        if job.status == "done":
            self.recommend_changed()

    # ---- recommendations: readers never fit (see catalens.api.refits) -------------------------
    def recommend_changed(self, model: str | None = None) -> None:
        """The events or the catalog changed: refit in the background (once, coalesced)."""
        self.refits.changed(model)

    def _recommend_state_for_read(self, model: str | None) -> dict[str, Any]:
        state = self.refits.state_for_read(model)
        if state is None:
            raise self._not_ready()
        return state

    def _not_ready(self) -> Exception:
        from catalens.api.errors import ApiError

        return ApiError(
            503,
            "recommend-not-ready",
            "recommendations are being prepared (a fit runs in the background after a change); retry shortly",
            headers={"Retry-After": "2"},
        )

    def _record_cancel(self, job: ApiJob) -> None:
        """A cancelled job is recorded as ``cancelled`` (run_job wrote ``failed``)."""
        if job.status != "cancelled":
            return
        with self.db.session() as s:
            row = s.scalar(select(Job.id).where(Job.source == job.source).order_by(Job.id.desc()))
            if row is not None:
                s.execute(update(Job).where(Job.id == row).values(status="cancelled"))

    def list_jobs(self) -> list[ApiJob]:
        return self.jobs.list()

    def job(self, job_id: str) -> ApiJob:
        return self.jobs.get(job_id)

    def cancel_job(self, job_id: str) -> ApiJob:
        return self.jobs.cancel(job_id)

    # ---- search -------------------------------------------------------------------------------
    def search_in_memory(self, model: str | None = None, where: str | None = None) -> bool:
        """Whether a search by product id with ``model`` and ``where`` is answered from memory by
        an engine that is already open (so a route may run it on the event loop); always False
        with ``search_inline`` off."""
        if not self.api_settings.search_inline:
            return False
        engines = self.__dict__.get("_searchers") or {}
        engine = engines.get((model or self.settings.default_model, ()))  # key as in SearchMixin.searcher
        return engine is not None and engine.answers_from_memory(where)

    # ---- queries by upload --------------------------------------------------------------------
    @contextmanager
    def uploaded_image(self, upload: Upload) -> Iterator[Path]:
        """A checked uploaded image as a temporary file for a query method taking a path."""
        with query_image(upload, self.settings, max_bytes=self.max_upload_bytes) as path:
            yield path

    def ready(self) -> dict[str, Any]:
        """Readiness: the database answers and reports its schema version."""
        from sqlalchemy import text

        with self.db.session() as s:
            s.execute(text("SELECT 1"))
        return {
            "database": "ok",
            "schema_version": self.db.schema_version,
            "jobs_active": self.jobs.active(),
            "worker": os.getpid(),
        }

    def close(self) -> None:
        self.refits.stop()
        self.refresher.stop()
        self.jobs.shutdown()
        super().close()
