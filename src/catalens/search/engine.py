"""Catalog search: query vectors -> index hits -> one result per product, with attributes.

Ids in the index are vector-file positions; this module maps them to image hashes, products,
titles and attributes through the database, applies ``--where`` filters (as the set of allowed
positions, so any backend can enforce them) and groups hits by product.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalens.catalog.db import CatalogDB
from catalens.catalog.schema import ImageRecord, Product, ProductImage
from catalens.config import Settings
from catalens.errors import ConfigError, NotFoundError
from catalens.index import VectorIndex
from catalens.search.filters import Filter, check_filter, parse_where
from catalens.search.index_sync import IndexedVectors, committed_vectors, sync_index
from catalens.vectors import l2_normalize

V = TypeVar("V")

# catalogs up to this many products have every title, attribute set and image source read into
# memory when an engine opens (one query each), so queries never wait on the database
PRELOAD_MAX_ROWS = 200_000


@dataclass
class SearchResult:
    """One answer. ``product_id`` is None for an image linked to no product."""

    rank: int
    score: float
    product_id: str | None
    image_sha256: str
    image_source: str | None
    title: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    other_images: int = 0  # further matching images of the same product folded into this result

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "score": round(float(self.score), 6),
            "product_id": self.product_id,
            "image_sha256": self.image_sha256,
            "image_source": self.image_source,
            "title": self.title,
            "attrs": dict(self.attrs),
            "other_images": self.other_images,
        }


Rows = dict[str, tuple[str | None, dict[str, Any]]]


def _product_rows(s: Session, ids: Iterable[str] | None) -> Rows:
    q = select(Product.id, Product.title, Product.attrs)
    if ids is None:
        return {pid: (title, dict(attrs or {})) for pid, title, attrs in s.execute(q)}
    want = list(dict.fromkeys(ids))
    out: Rows = {}
    for i in range(0, len(want), 500):
        for pid, title, attrs in s.execute(q.where(Product.id.in_(want[i : i + 500]))):
            out[pid] = (title, dict(attrs or {}))
    return out


def _image_sources(s: Session, shas: Sequence[str] | None) -> dict[str, str]:
    q = select(ImageRecord.sha256, ImageRecord.source)
    if shas is None:
        return {h: src for h, src in s.execute(q)}
    out: dict[str, str] = {}
    for i in range(0, len(shas), 500):
        out.update({h: src for h, src in s.execute(q.where(ImageRecord.sha256.in_(shas[i : i + 500])))})
    return out


def product_rows(db: CatalogDB, ids: Iterable[str] | None = None) -> Rows:
    """product id -> (title, attrs), for ``ids`` or every product."""
    with db.session() as s:
        return _product_rows(s, ids)


def image_sources(db: CatalogDB, shas: Sequence[str]) -> dict[str, str]:
    """image sha256 -> source, for ``shas``."""
    with db.session() as s:
        return _image_sources(s, shas)


def result_metadata(
    db: CatalogDB, ids: Iterable[str] | None, shas: Sequence[str] | None
) -> tuple[Rows, dict[str, str]]:
    """Product rows for ``ids`` and image sources for ``shas`` (None: all) in one session."""
    with db.session() as s:
        rows = _product_rows(s, ids) if ids is None or ids else {}
        return rows, _image_sources(s, shas) if shas is None or shas else {}


def links_by_image(db: CatalogDB) -> dict[str, list[str]]:
    """image sha256 -> product ids, in link order."""
    out: dict[str, list[str]] = {}
    with db.session() as s:
        q = select(ProductImage.image_sha256, ProductImage.product_id).order_by(
            ProductImage.product_id, ProductImage.position
        )
        for sha, pid in s.execute(q):
            out.setdefault(sha, []).append(pid)
    return out


def filter_attrs(pid: str, title: str | None, attrs: dict[str, Any]) -> dict[str, Any]:
    """The dict a ``--where`` filter sees for a product: its attributes plus ``id`` and ``title``."""
    return {**attrs, "id": pid, "title": title}


def resolve_model_id(db: CatalogDB, name: str, *, explicit: bool) -> str:
    """The stored model id for ``name``: itself when embedded; else, when no model was named and
    the catalog holds one embedded model, that one; else the id the model loader reports."""
    ids = list(dict.fromkeys(m.model_id for m in db.models()))
    if name in ids or not ids:
        return name
    if not explicit and len(ids) == 1:
        return ids[0]
    try:
        from catalens.models import get_spec

        spec = get_spec(name)
        return str(getattr(spec, "model_id", None) or getattr(spec, "name", name))
    except Exception:
        return name


def _cached(cache: Mapping[str, V], keys: Sequence[str]) -> tuple[dict[str, V], list[str]]:
    """(the entries of ``keys`` found in ``cache``, the keys that are not)."""
    found: dict[str, V] = {}
    missing: list[str] = []
    for key in keys:
        value = cache.get(key)
        if value is None:
            missing.append(key)
        else:
            found[key] = value
    return found, missing


def watermark(db: CatalogDB) -> tuple[Any, ...]:
    """What changes whenever search results could: embeddings, products, links (added, removed
    or edited). Aggregates over primary keys and two small columns: one round trip."""
    from sqlalchemy import func, select

    from catalens.catalog.schema import EmbeddingRecord, Product, ProductImage

    with db.session() as s:
        emb = s.execute(select(func.count(), func.max(EmbeddingRecord.id))).one()
        prod = s.execute(select(func.count(), func.max(Product.updated_at))).one()
        links = s.scalar(select(func.count()).select_from(ProductImage))
    return (*emb, *prod, links)


class CatalogSearch:
    """Search one model's embeddings of a catalog. Open once, query many times."""

    def __init__(self, db: CatalogDB, settings: Settings, model: str | None = None, **index_options: Any):
        self.db, self.settings = db, settings
        self.model = resolve_model_id(db, model or settings.default_model, explicit=model is not None)
        self.data: IndexedVectors = committed_vectors(db, settings, self.model)
        self.index: VectorIndex
        self.index, self.sync_report = sync_index(db, settings, self.data, **index_options)
        self.sha_at = self.data.sha_of()
        self.pos_of = {h: p for p, h in self.sha_at.items()}
        self.links = links_by_image(db)
        self.images_of: dict[str, list[str]] = {}  # product id -> its embedded-or-not image hashes, in order
        for sha, pids in self.links.items():
            for pid in pids:
                self.images_of.setdefault(pid, []).append(sha)
        self._filter_cache: dict[str, np.ndarray] = {}
        # in-memory copies of what results show, so a query makes no database round trip;
        # kept current by ``forget`` / ``refresh_metadata`` (called by the catalog's writes).
        # ``_generation`` counts invalidations: rows read from the database while one happened
        # are not cached (they may predate the write); ``_meta_lock`` guards only dict updates.
        self._rows: Rows = {}
        self._sources: dict[str, str] = {}
        self._generation = 0
        self._meta_lock = threading.Lock()
        self._matrix: np.ndarray | None = None
        self._preload()

    def _preload(self) -> None:
        """Read every title, attribute set and image source at once when the catalog is small
        enough (two queries), so that queries never wait on the database."""
        with self.db.session() as s:
            n_products = s.scalar(select(func.count()).select_from(Product)) or 0
            n_images = s.scalar(select(func.count()).select_from(ImageRecord)) or 0
        if max(n_products, n_images) <= PRELOAD_MAX_ROWS:
            self._rows, self._sources = result_metadata(self.db, None, None)

    # ---- cache upkeep --------------------------------------------------------------------------
    def matrix(self) -> np.ndarray:
        """The vector file's memory map (opened once; positions known to this engine never move)."""
        if self._matrix is None:
            self._matrix = self.data.matrix()
        return self._matrix

    def refresh_metadata(self, products: Iterable[str] | None = None) -> None:
        """Forget cached titles and attributes (of ``products``, or all) and filter results,
        after products were edited: the next query reads them again."""
        with self._meta_lock:
            self._generation += 1
            if products is None:
                self._rows.clear()
            else:
                for pid in products:
                    self._rows.pop(pid, None)
            self._filter_cache.clear()

    def forget(self, *, images: Iterable[str] = (), products: Iterable[str] = ()) -> None:
        """Stop returning deleted images and products at once (their index rows stay until the
        next sync rebuilds the index; results are filtered through the position map)."""
        for sha in images:
            pos = self.pos_of.pop(sha, None)
            if pos is not None:
                self.sha_at.pop(pos, None)
            for pid in self.links.pop(sha, []):
                self.images_of[pid] = [h for h in self.images_of.get(pid, []) if h != sha]
            self._sources.pop(sha, None)
        products = list(products)
        for pid in products:
            for sha in self.images_of.pop(pid, []):
                self.links[sha] = [p for p in self.links.get(sha, []) if p != pid]
        self.refresh_metadata(products)

    def _metadata(self, ids: Sequence[str], shas: Sequence[str]) -> tuple[Rows, dict[str, str]]:
        """(product rows of ``ids``, sources of ``shas``): from memory, the missing ones read from
        the database in one session (and cached unless a write happened meanwhile)."""
        rows, miss_p = _cached(self._rows, ids)
        srcs, miss_s = _cached(self._sources, shas)
        if miss_p or miss_s:
            generation = self._generation
            got_p, got_s = result_metadata(self.db, list(dict.fromkeys(miss_p)), list(dict.fromkeys(miss_s)))
            with self._meta_lock:
                if generation == self._generation:
                    self._rows.update(got_p)
                    self._sources.update(got_s)
            rows.update(got_p)
            srcs.update(got_s)
        return rows, srcs

    def answers_from_memory(self, where: str | None = None) -> bool:
        """Whether a query (with this filter) needs nothing but memory: no filter, or one already
        evaluated. (Rows missing from memory are still read on demand, one small query.)"""
        return where is None or not where.strip() or where in self._filter_cache

    # ---- filters -------------------------------------------------------------------------------
    def allowed_positions(self, where: str | Filter | None) -> np.ndarray | None:
        """Positions whose image belongs to a product matching ``where`` (None: no filter)."""
        if where is None or (isinstance(where, str) and not where.strip()):
            return None
        if isinstance(where, str) and where in self._filter_cache:
            return self._filter_cache[where]
        flt = parse_where(where) if isinstance(where, str) else where
        if flt.text in self._filter_cache:
            return self._filter_cache[flt.text]
        generation = self._generation
        rows = {pid: filter_attrs(pid, t, a) for pid, (t, a) in product_rows(self.db).items()}
        check_filter(flt, rows.values())  # unknown field: error; value no product has: warning
        ok = {pid for pid, attrs in rows.items() if flt.matches(attrs)}
        pos_of = self.pos_of
        pos = sorted(
            pos_of[h] for h, pids in list(self.links.items()) if h in pos_of and ok.intersection(pids)
        )
        arr = np.array(pos, dtype=np.int64)
        with self._meta_lock:
            if generation == self._generation:
                self._filter_cache[flt.text] = arr
                if isinstance(where, str):
                    self._filter_cache[where] = arr
        return arr

    # ---- vectors -------------------------------------------------------------------------------
    def product_vectors(self, product_id: str) -> tuple[list[str], np.ndarray]:
        """(image hashes, vectors) of a product's embedded images; NotFoundError if unknown."""
        shas = list(self.images_of.get(product_id, ()))
        if not shas:
            if product_id not in self._metadata([product_id], [])[0]:
                raise NotFoundError(f"unknown product id {product_id!r}")
            raise NotFoundError(f"product {product_id!r} has no images")
        shas = [h for h in shas if h in self.pos_of]
        if not shas:
            raise NotFoundError(f"product {product_id!r} has no embedded images for model {self.model!r}")
        pos = np.array([self.pos_of[h] for h in shas], dtype=np.int64)
        return shas, l2_normalize(np.asarray(self.matrix()[pos]))

    def stored_vector(self, sha: str) -> np.ndarray | None:
        p = self.pos_of.get(sha)
        return None if p is None else l2_normalize(np.asarray(self.matrix()[[p]]))[0]

    # ---- search --------------------------------------------------------------------------------
    def search(
        self,
        queries: np.ndarray,
        k: int = 10,
        *,
        where: str | Filter | None = None,
        all_images: bool = False,
        exclude_products: Sequence[str] = (),
        exclude_images: Sequence[str] = (),
        positions: np.ndarray | None = None,
    ) -> list[SearchResult]:
        """Top-``k`` results for one or several query vectors (several: max score per image);
        ``positions``: search only these vector positions (with ``where``: both must hold)."""
        if k < 1:
            raise ConfigError("k must be at least 1")
        q = l2_normalize(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if q.shape[1] != self.data.dim:
            raise ConfigError(f"query has dimension {q.shape[1]}, model {self.model!r} has {self.data.dim}")
        allowed = self.allowed_positions(where)
        if positions is not None:
            pos = np.asarray(positions, dtype=np.int64)
            allowed = pos if allowed is None else np.intersect1d(allowed, pos)
        n_allowed = self.index.count() if allowed is None else len(allowed)
        if n_allowed == 0:
            return []
        excl_p, excl_i = set(exclude_products), set(exclude_images)
        fetch = min(n_allowed, k + len(excl_i) + (0 if all_images else 3 * k + 10))
        while True:
            hits = self.index.search(q, fetch, allowed)
            best: dict[int, float] = {}
            for i in range(len(q)):
                for pos, score in hits.row(i):
                    if score > best.get(pos, -np.inf):
                        best[pos] = score
            results = self._group(sorted(best.items(), key=lambda t: -t[1]), k, all_images, excl_p, excl_i)
            if len(results) >= k or fetch >= n_allowed:
                break
            fetch = min(n_allowed, fetch * 4)
        return self._decorate(results)

    def _group(
        self,
        ranked: list[tuple[int, float]],
        k: int,
        all_images: bool,
        excl_p: set[str],
        excl_i: set[str],
    ) -> list[tuple[str | None, str, float, int]]:
        out: list[tuple[str | None, str, float, int]] = []
        seen: dict[str, int] = {}
        for pos, score in ranked:
            sha = self.sha_at.get(pos)
            if sha is None or sha in excl_i:
                continue
            pids = [p for p in self.links.get(sha, []) if p not in excl_p]
            if self.links.get(sha) and not pids:
                continue
            pid = pids[0] if pids else None
            key = pid if pid is not None else "image:" + sha
            if not all_images and key in seen:
                j = seen[key]
                out[j] = (out[j][0], out[j][1], out[j][2], out[j][3] + 1)
                continue
            seen[key] = len(out)
            out.append((pid, sha, score, 0))
            if all_images and len(out) >= k:
                break
        return out[:k]

    def _decorate(self, rows: list[tuple[str | None, str, float, int]]) -> list[SearchResult]:
        prods, srcs = self._metadata([p for p, *_ in rows if p is not None], [s for _, s, *_ in rows])
        res = []
        for rank, (pid, sha, score, more) in enumerate(rows, 1):
            title, attrs = prods.get(pid, (None, {})) if pid else (None, {})
            res.append(SearchResult(rank, float(score), pid, sha, srcs.get(sha), title, attrs, more))
        return res
