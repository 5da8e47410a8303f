"""Catalog search: query vectors -> index hits -> one result per product, with attributes.

Ids in the index are vector-file positions; this module maps them to image hashes, products,
titles and attributes through the database, applies ``--where`` filters (as the set of allowed
positions, so any backend can enforce them) and groups hits by product.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select

from catalens.catalog.db import CatalogDB
from catalens.catalog.schema import ImageRecord, Product, ProductImage
from catalens.config import Settings
from catalens.errors import ConfigError, NotFoundError
from catalens.index import VectorIndex
from catalens.search.filters import Filter, parse_where
from catalens.search.index_sync import IndexedVectors, committed_vectors, sync_index
from catalens.vectors import l2_normalize


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
        d = asdict(self)
        d["score"] = round(float(self.score), 6)
        return d


def product_rows(
    db: CatalogDB, ids: Iterable[str] | None = None
) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """product id -> (title, attrs), for ``ids`` or every product."""
    with db.session() as s:
        q = select(Product.id, Product.title, Product.attrs)
        if ids is not None:
            want = list(dict.fromkeys(ids))
            out: dict[str, tuple[str | None, dict[str, Any]]] = {}
            for i in range(0, len(want), 500):
                for pid, title, attrs in s.execute(q.where(Product.id.in_(want[i : i + 500]))):
                    out[pid] = (title, dict(attrs or {}))
            return out
        return {pid: (title, dict(attrs or {})) for pid, title, attrs in s.execute(q)}


def image_sources(db: CatalogDB, shas: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    with db.session() as s:
        for i in range(0, len(shas), 500):
            q = select(ImageRecord.sha256, ImageRecord.source).where(
                ImageRecord.sha256.in_(shas[i : i + 500])
            )
            out.update({h: src for h, src in s.execute(q)})
    return out


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


class CatalogSearch:
    """Search one model's embeddings of a catalog. Open once, query many times."""

    def __init__(self, db: CatalogDB, settings: Settings, model: str | None = None, **index_options: Any):
        self.db, self.settings = db, settings
        self.model = resolve_model_id(db, model or settings.default_model, explicit=model is not None)
        self.data: IndexedVectors = committed_vectors(db, settings.home, self.model)
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
        # kept current by ``forget`` / ``refresh_metadata`` (called by the catalog's writes)
        self._rows: dict[str, tuple[str | None, dict[str, Any]]] = {}
        self._sources: dict[str, str] = {}
        self._matrix: np.ndarray | None = None

    # ---- cache upkeep --------------------------------------------------------------------------
    def matrix(self) -> np.ndarray:
        """The vector file's memory map (opened once; positions known to this engine never move)."""
        if self._matrix is None:
            self._matrix = self.data.matrix()
        return self._matrix

    def refresh_metadata(self) -> None:
        """Forget cached titles, attributes and filter results (after products were edited)."""
        self._rows.clear()
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
        for pid in products:
            for sha in self.images_of.pop(pid, []):
                self.links[sha] = [p for p in self.links.get(sha, []) if p != pid]
        self.refresh_metadata()

    def _product_rows(self, ids: Sequence[str]) -> dict[str, tuple[str | None, dict[str, Any]]]:
        miss = [p for p in dict.fromkeys(ids) if p not in self._rows]
        if miss:
            self._rows.update(product_rows(self.db, miss))
        return self._rows

    def _image_sources(self, shas: Sequence[str]) -> dict[str, str]:
        miss = [h for h in dict.fromkeys(shas) if h not in self._sources]
        if miss:
            self._sources.update(image_sources(self.db, miss))
        return self._sources

    # ---- filters -------------------------------------------------------------------------------
    def allowed_positions(self, where: str | Filter | None) -> np.ndarray | None:
        """Positions whose image belongs to a product matching ``where`` (None: no filter)."""
        if where is None or (isinstance(where, str) and not where.strip()):
            return None
        flt = parse_where(where) if isinstance(where, str) else where
        if flt.text in self._filter_cache:
            return self._filter_cache[flt.text]
        ok = {pid for pid, (t, a) in product_rows(self.db).items() if flt.matches(filter_attrs(pid, t, a))}
        pos = sorted(
            self.pos_of[h] for h, pids in self.links.items() if h in self.pos_of and ok.intersection(pids)
        )
        arr = np.array(pos, dtype=np.int64)
        self._filter_cache[flt.text] = arr
        return arr

    # ---- vectors -------------------------------------------------------------------------------
    def product_vectors(self, product_id: str) -> tuple[list[str], np.ndarray]:
        """(image hashes, vectors) of a product's embedded images; NotFoundError if unknown."""
        shas = list(self.images_of.get(product_id, ()))
        if not shas:
            if product_id not in self._product_rows([product_id]):
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
    ) -> list[SearchResult]:
        """Top-``k`` results for one or several query vectors (several: max score per image)."""
        if k < 1:
            raise ConfigError("k must be at least 1")
        q = l2_normalize(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if q.shape[1] != self.data.dim:
            raise ConfigError(f"query has dimension {q.shape[1]}, model {self.model!r} has {self.data.dim}")
        allowed = self.allowed_positions(where)
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
        prods = self._product_rows([p for p, *_ in rows if p is not None])
        srcs = self._image_sources([s for _, s, *_ in rows])
        res = []
        for rank, (pid, sha, score, more) in enumerate(rows, 1):
            title, attrs = prods.get(pid, (None, {})) if pid else (None, {})
            res.append(SearchResult(rank, float(score), pid, sha, srcs.get(sha), title, attrs, more))
        return res
