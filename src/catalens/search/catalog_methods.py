"""``Catalog`` methods for visual search, the vector index and duplicates (mixed into :class:`catalens.core.Catalog`).

Keep these thin: each method calls the functions of this package with the catalog's
database, settings and stored vectors.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from catalens.catalog_base import CatalogParts

if TYPE_CHECKING:
    from catalens.search.dedup import DedupOptions, DedupReport
    from catalens.search.engine import CatalogSearch, SearchResult


class SearchMixin(CatalogParts):
    """Methods for visual search, the vector index and duplicates."""

    #: True: an open engine is rebuilt when the database moved since it was built (this catalog's
    #: own ingest, or another process's): one watermark query per call. A server (ServiceCatalog)
    #: swaps engines in its refresher's thread instead, off the request path.
    search_follows_writes: ClassVar[bool] = True

    def searcher(self, model: str | None = None, **index_options: Any) -> CatalogSearch:
        """The catalog's search engine for ``model`` (index opened and synced with the database;
        built once per database state, one build at a time).

        ``index_options``: options of the vector index backend (e.g. ``nprobe``)."""
        from catalens.search.engine import CatalogSearch, watermark

        name = model or self.settings.default_model
        key = (name, tuple(sorted(index_options.items())))
        mark = watermark(self.db) if self.search_follows_writes else None
        engine = self._open_engine(key, mark)
        if engine is not None:
            return engine
        with self.__dict__.setdefault("_searcher_lock", threading.Lock()):  # setdefault: atomic
            engine = self._open_engine(key, mark)  # built by another thread meanwhile
            if engine is None:
                engine = CatalogSearch(self.db, self.settings, model, **index_options)
                self.__dict__.setdefault("_searcher_marks", {})[key] = mark
                self.__dict__.setdefault("_searchers", {})[key] = engine
            return engine

    def current_searcher(self, model: str | None = None) -> CatalogSearch:
        """The search engine for ``model``, caught up with the database now: what a computation
        that reads the whole catalog (the duplicate report) must use, so that it does not miss an
        image written after the open engine was built. Here that is :meth:`searcher` (it follows
        writes); a server, whose engines are swapped in by a refresher, catches up first."""
        return self.searcher(model)

    def _open_engine(self, key: tuple[Any, ...], mark: Any) -> CatalogSearch | None:
        engine = (self.__dict__.get("_searchers") or {}).get(key)
        if engine is None or (
            mark is not None and (self.__dict__.get("_searcher_marks") or {}).get(key) != mark
        ):
            return None
        return engine  # type: ignore[no-any-return]

    def sync_index(self, model: str | None = None) -> dict[str, Any]:
        """Bring the model's vector index in line with the database; returns what was done and index info.

        ``model``: the embedding model (default: the configured one)."""
        s = self.searcher(model)
        return {"sync": s.sync_report, "index": s.index.info()}

    def search_image(
        self,
        path: str | Path,
        k: int = 10,
        *,
        where: str | None = None,
        all_images: bool = False,
        model: str | None = None,
    ) -> list[SearchResult]:
        """Products that look like the image at ``path`` (one result per product by default).

        ``where``: an attribute filter (see :mod:`catalens.search.filters`); ``all_images``: one result
        per image instead of per product; ``model``: the embedding model (default: the configured one).

        ``k``: results."""
        from catalens.search.query import image_query_vector

        s = self.searcher(model)
        _, vec = image_query_vector(self, s, path)
        return s.search(vec, k, where=where, all_images=all_images)

    def search_product(
        self,
        product_id: str,
        k: int = 10,
        *,
        where: str | None = None,
        all_images: bool = False,
        model: str | None = None,
    ) -> list[SearchResult]:
        """ "More like this": products closest to any image of ``product_id`` (itself excluded).

        ``where``: an attribute filter; ``all_images``: one result per image instead of per product;
        ``model``: the embedding model.

        ``k``: results."""
        s = self.searcher(model)
        shas, vecs = s.product_vectors(product_id)
        return s.search(vecs, k, where=where, all_images=all_images, exclude_products=[product_id])

    def search_text(
        self,
        text: str,
        k: int = 10,
        *,
        where: str | None = None,
        all_images: bool = False,
        model: str | None = None,
    ) -> list[SearchResult]:
        """Products matching a text query (text tower of a CLIP-type model, else the trained projection);
        titled / untitled photos and thumbnails are ranked as groups and merged (:mod:`catalens.search.text`).

        ``where``: an attribute filter; ``all_images``: one result per image instead of per product.

        ``text``: the query words; ``k``: results; ``model``: the embedding model (default: the
        configured one)."""
        from catalens.search.text import search_text

        return search_text(self, self.searcher(model), text, k, where=where, all_images=all_images)

    def train_text_projection(
        self,
        model: str | None = None,
        *,
        holdout: float = 0.2,
        text_model: str | None = None,
        method: str = "krr",
    ) -> dict[str, Any]:
        """(Re)train the catalog-aligned text projection (titles -> image space) for ``model``:
        ``method`` "krr" (kernel ridge) or "ridge", its setting picked on a ``holdout`` share of the
        products; returns its metadata (pairs, products, held-out Recall@10).

        ``text_model``: the title encoder (default: the packaged MiniLM)."""
        from catalens.search.text import TEXT_MODEL, train_projection

        return train_projection(
            self, self.searcher(model), holdout=holdout, text_model=text_model or TEXT_MODEL, method=method
        )

    def dedup(
        self, model: str | None = None, *, options: DedupOptions | None = None, cached: bool = False
    ) -> DedupReport:
        """Group exact and near-duplicate images of the catalog (see :mod:`catalens.search.dedup`).
        ``cached``: reuse the report while the catalog, model and options are unchanged
        (:mod:`catalens.search.dedup_cache`; the report is shared, do not change it).

        ``model``: the embedding model (default: the configured one); ``options``: a
        :class:`~catalens.search.dedup.DedupOptions` (default thresholds when None)."""
        if cached:
            from catalens.search.dedup_cache import cached_duplicates

            shared: DedupReport = cached_duplicates(self, model, **(options.changed() if options else {}))
            return shared
        from catalens.search.dedup import find_duplicates

        return find_duplicates(self, self.searcher(model), options)

    def dedup_poll(
        self, model: str | None = None, *, wait_s: float = 5.0, options: DedupOptions | None = None
    ) -> tuple[DedupReport | None, bool]:
        """(report or None, fresh) of the whole catalog without blocking longer than ``wait_s``:
        the report is computed in the background (:meth:`DedupCache.poll
        <catalens.search.dedup_cache.DedupCache.poll>`); until it is ready, the last one computed
        (fresh False) or None.

        ``model``: the embedding model (default: the configured one); ``options``: a
        :class:`~catalens.search.dedup.DedupOptions`."""
        from catalens.search.dedup_cache import poll_duplicates

        report, fresh = poll_duplicates(self, model, wait_s, **(options.changed() if options else {}))
        return report, fresh

    def dedup_image(
        self, path: str | Path, model: str | None = None, *, options: DedupOptions | None = None
    ) -> dict[str, Any]:
        """Catalog images that duplicate the image at ``path`` (nothing is stored): ``duplicate``
        and the ``matches`` with their kind, scores, source and products.

        ``model``: the embedding model (default: the configured one); ``options``: a
        :class:`~catalens.search.dedup.DedupOptions` (default thresholds when None)."""
        from catalens.search.dedup import check_image

        return check_image(self, self.searcher(model), path, options)
