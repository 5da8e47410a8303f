"""``Catalog``: the one core API that the CLI, the REST API and the web page call."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from catalens.catalog.db import CatalogDB
from catalens.catalog.products import ProductsMixin
from catalens.catalog.storage import check_home_writable
from catalens.classify.catalog_methods import ClassifyMixin
from catalens.config import Settings, load_settings
from catalens.detect.catalog_methods import DetectMixin
from catalens.explain.catalog_methods import ExplainMixin
from catalens.ingest.job import JobReport, run_job
from catalens.ingest.sources import ManifestColumns, SourceItem, iter_source, refuse_empty
from catalens.quality.catalog_methods import QualityMixin
from catalens.recommend.catalog_methods import RecommendMixin
from catalens.search.catalog_methods import SearchMixin
from catalens.vectors import load_vectors

if TYPE_CHECKING:
    from catalens.models.runtime import ImageEncoder

ProgressFactory = Callable[[str, int | None], Callable[[int], None]]


class Catalog(
    ProductsMixin, SearchMixin, ClassifyMixin, QualityMixin, RecommendMixin, ExplainMixin, DetectMixin
):
    """A catalog of product images: its database, vector files and settings.

    >>> cat = Catalog.open("catalens-home")
    >>> report = cat.ingest("labels.csv", id_col="id", text_col="productDisplayName")
    >>> hashes, vectors = cat.vectors()
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        check_home_writable(settings.home)  # a read-only home is refused before any work
        self.db = CatalogDB(settings.database_url)
        self._encoders: dict[tuple[str, str], ImageEncoder] = {}

    @classmethod
    def open(
        cls,
        home: str | Path | None = None,
        *,
        db_url: str | None = None,
        index_uri: str | None = None,
        vector_store: str | None = None,
        default_model: str | None = None,
        device: str | None = None,
        max_pixels: int | None = None,
        max_file_bytes: int | None = None,
        max_side: int | None = None,
        fetch_timeout_s: float | None = None,
        allow_private_urls: bool | None = None,
        cache_dir: str | Path | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        prefetch_nice: int | None = None,
    ) -> Catalog:
        """The catalog in ``home`` (default: ``CATALENS_HOME``, else ``./catalens-home``).

        Every other argument is a :class:`~catalens.config.Settings` field: ``db_url``, ``index_uri``,
        ``vector_store``, ``default_model``, ``device``, ``max_pixels``, ``max_file_bytes``,
        ``max_side``, ``fetch_timeout_s``, ``allow_private_urls``, ``cache_dir``, ``batch_size``,
        ``workers``, ``prefetch_nice``; one left None comes from its ``CATALENS_*`` variable (where it has
        one), then ``catalens.toml`` in the home, then the default (see :mod:`catalens.config`)."""
        settings = load_settings(
            home,
            db_url=db_url,
            index_uri=index_uri,
            vector_store=vector_store,
            default_model=default_model,
            device=device,
            max_pixels=max_pixels,
            max_file_bytes=max_file_bytes,
            max_side=max_side,
            fetch_timeout_s=fetch_timeout_s,
            allow_private_urls=allow_private_urls,
            cache_dir=cache_dir,
            batch_size=batch_size,
            workers=workers,
            prefetch_nice=prefetch_nice,
        )
        return cls(settings)

    def close(self) -> None:
        """Close the database connections."""
        self.db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- models -------------------------------------------------------------------------------
    def encoder(self, model: str | None = None, device: str | None = None) -> ImageEncoder:
        """The image encoder for ``model`` (default: the configured one), loaded once per catalog.

        ``device``: auto | cpu | cuda | cpu-torch | openvino (default: the configured one)."""
        from catalens.models import load_image_encoder

        name = model or self.settings.default_model
        dev = device or self.settings.device
        key = (name, dev)
        if key not in self._encoders:
            self._encoders[key] = load_image_encoder(name, device=dev, cache_dir=self.settings.cache_dir)
        return self._encoders[key]

    # ---- jobs ---------------------------------------------------------------------------------
    def ingest(
        self,
        source: str | Path | Sequence[str | Path],
        *,
        image_col: str | None = None,
        id_col: str | None = None,
        text_col: str | None = None,
        label_cols: list[str] | None = None,
        embed: bool = True,
        model: str | None = None,
        progress: ProgressFactory | None = None,
        ray: str | None = None,
        allow_empty: bool = False,
        detect: bool = False,
    ) -> JobReport:
        """Ingest a folder, manifest, URL list or URL(s); embed new images unless ``embed=False``.

        ``detect``: also find the products in each photo and store each as a catalog image of its
        own, linked to its photo and box (see :mod:`catalens.detect.ingest`).

        ``ray``: run the per-image work on the Ray cluster at that address ("auto": the running one).
        A source that holds no image (an empty folder, a manifest without rows) raises
        :class:`catalens.errors.EmptyInputError`; ``allow_empty=True`` makes it a ``CatalensWarning``.

        ``image_col`` / ``id_col`` / ``text_col`` / ``label_cols``: manifest columns of the image path
        or URL, product id, title and label attributes (guessed when None); ``model``: the embedding
        model (default: the configured one); ``progress``: a factory ``(stage, total) -> tick(n)`` for
        progress bars.

        ``source``: a folder, a manifest (CSV / TSV / JSONL / Parquet), a .txt list of URLs, a URL, or
        several of these; ``embed``: also embed the new images (else only store them); ``allow_empty``:
        see above."""
        sources = [source] if isinstance(source, str | Path) else list(source)
        cols = ManifestColumns(image=image_col, id=id_col, text=text_col, labels=label_cols)
        items: list[SourceItem] = []
        empty: list[str] = []
        for src in sources:
            got = list(iter_source(src, cols))
            if not got:
                empty.append(str(src))
            items.extend(got)
        refuse_empty(empty, allow_empty)
        encoder = self.encoder(model) if embed else None
        options = {
            "image_col": image_col,
            "id_col": id_col,
            "text_col": text_col,
            "labels": label_cols,
            "embed": embed,
        }
        tick = progress("ingest", len(items)) if progress else None
        report = run_job(
            self.db,
            self.settings,
            items,
            kind="ingest",
            source=" ".join(map(str, sources)),
            encoder=encoder,
            options=options
            | {"model": getattr(encoder, "model_id", None)}
            | _ray_option(ray)
            | {"detect": detect},
            on_progress=tick,
            prepare_with=_ray_engine(ray, self.settings),
        )
        if detect:
            self._ingest_crops(items, report, encoder, progress)
        return report

    def _ingest_crops(
        self, items: Sequence[SourceItem], report: JobReport, encoder: Any, progress: ProgressFactory | None
    ) -> None:
        """Detect the products of the photos just ingested and ingest each one's crop (a second job)."""
        from catalens.detect.ingest import crop_photos
        from catalens.ingest.job import Failure

        keys = [it.url or str(Path(it.source).resolve()) for it in items if it.error is None]
        shas = list(dict.fromkeys(self.db.shas_for_sources(keys).values()))
        crop_items, regions, unreadable = crop_photos(self, shas)
        for src, why in unreadable:
            report.failures.append(Failure(src, "detect", why))
            report.failed += 1
        tick = progress("crops", len(crop_items)) if progress else None
        crops = run_job(
            self.db,
            self.settings,
            crop_items,
            kind="ingest-crops",
            source="detect",
            encoder=encoder,
            options={"model": getattr(encoder, "model_id", None), "photos": len(shas)},
            on_progress=tick,
        )
        stored = self.db.known_image_shas()
        new = self.db.record_regions([r for r in regions if r["crop_sha256"] in stored])
        report.failures.extend(crops.failures)
        report.failed += crops.failed
        report.embedded += crops.embedded
        report.detected = {"photos": len(shas), "crops": len(regions), "new_crops": new}

    def embed(
        self, model: str | None = None, *, progress: ProgressFactory | None = None, ray: str | None = None
    ) -> JobReport:
        """Embed every stored image that has no vector for ``model`` yet (``ray``: on that Ray cluster).

        ``progress``: a factory ``(stage, total) -> tick(n)`` for progress bars (the CLI's Rich bars)."""
        encoder = self.encoder(model)
        done = self.db.embedded_shas(encoder.model_id, encoder.version)
        todo = [img for img in self.db.ok_images() if img.sha256 not in done]
        items = list(self._items_for(todo))
        tick = progress("embed", len(items)) if progress else None
        return run_job(
            self.db,
            self.settings,
            items,
            kind="embed",
            source=None,
            encoder=encoder,
            options={"model": encoder.model_id} | _ray_option(ray),
            on_progress=tick,
            prepare_with=_ray_engine(ray, self.settings),
        )

    @staticmethod
    def _items_for(images: Iterable[Any]) -> Iterator[SourceItem]:
        for img in images:
            path = Path(img.stored_path or img.source)
            if img.stored_path is None and img.source.startswith(("http://", "https://")):
                yield SourceItem(source=img.source, url=img.source)
            else:
                yield SourceItem(source=img.source, path=path)

    # ---- reading ------------------------------------------------------------------------------
    def vectors(self, model: str | None = None) -> tuple[list[str], np.ndarray]:
        """(image sha256 list, L2-normalised float32 matrix) for ``model``."""
        name = model or self.settings.default_model
        recs = [m for m in self.db.models() if m.model_id == name]
        version = recs[-1].version if recs else None
        return load_vectors(self.db, self.settings.home, name, version, self.settings.vector_store)

    def info(self) -> dict[str, Any]:
        """Counts by status, models embedded, failures, recent jobs, classifiers, events, QC runs
        and text-search status (see :mod:`catalens.overview`)."""
        data: dict[str, Any] = self.db.info()
        data["home"] = str(self.settings.home.resolve())
        data["database"] = self.settings.database_url
        data["schema_version"] = self.db.schema_version
        from catalens.overview import overview

        data |= overview(self.db, self.settings.home, data["models"])
        return data


def _ray_option(ray: str | None) -> dict[str, Any]:
    return {} if ray is None else {"ray": ray or "auto"}


def _ray_engine(ray: str | None, settings: Settings) -> Any:
    """The Ray engine of a job when ``ray`` is given (None: the local engine). Ray is imported only then."""
    if ray is None:
        return None
    from catalens.ingest.ray_engine import RayEngine

    return RayEngine(address=ray or "auto", device=settings.device)
