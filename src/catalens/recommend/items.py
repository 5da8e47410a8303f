"""The item space: one row per catalog product with its visual vector, attributes and facets.

A product's vector is the mean of its images' stored embeddings (images link to products
through ``product_images``), L2-normalised; products without an embedded image get a zero
vector. Facets are the low-cardinality attributes used for attribute matching, category
popularity and diversity (e.g. articleType, baseColour, gender, usage, and the brand taken
from the first word of the title when no brand attribute exists).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import func, select

from catalens.catalog.schema import Product, ProductImage
from catalens.errors import EmptyCatalogError

if TYPE_CHECKING:
    from catalens.catalog_base import CatalogParts

CATEGORY_KEYS = ("articleType", "article_type", "category", "product_type", "subCategory", "type", "label")
PREFERRED_FACETS = (
    "articleType", "category", "subCategory", "baseColour", "colour", "color",
    "gender", "usage", "brand", "season", "material", "pattern", "label",
)  # fmt: skip
SKIP_FACETS = {"id", "image", "path", "url", "title", "name", "productdisplayname", "description", "year"}
STOCK_FLAG_KEYS = ("in_stock", "instock", "available", "is_available")
BOOLEAN_WORDS = {"true", "false", "yes", "no"}
STOCK_QTY_KEYS = ("stock", "inventory", "quantity", "qty", "stock_qty")
STOCK_TEXT_KEYS = ("availability", "stock_status", "status")
MAX_FACETS = 8
MAX_FACET_VALUES = 400


def is_out_of_stock(attrs: dict[str, Any]) -> bool:
    """True when an attribute says the product cannot be bought now."""
    low = {str(k).lower(): v for k, v in attrs.items()}
    for key in STOCK_FLAG_KEYS:
        if key in low:
            val = low[key]
            if isinstance(val, bool):
                return not val
            if str(val).strip().lower() in ("0", "false", "no", "n", "out", "out_of_stock"):
                return True
    for key in STOCK_QTY_KEYS:
        if key in low:
            try:
                return float(low[key]) <= 0
            except (TypeError, ValueError):
                pass
    for key in STOCK_TEXT_KEYS:
        if key in low and re.search(r"out.?of.?stock|sold.?out|unavailable", str(low[key]).lower()):
            return True
    return False


def brand_from_title(title: str | None) -> str | None:
    """The brand as the first word of a shop title ("Nike Men Blue T-shirt" -> "nike")."""
    if not title:
        return None
    word = title.strip().split(" ", 1)[0].strip(".,-'\"").lower()
    return word or None


@dataclass
class ItemSpace:
    """Products as rows: ids, titles, attributes, visual vectors and integer-coded facets."""

    ids: list[str]
    titles: list[str | None]
    attrs: list[dict[str, Any]]
    vectors: np.ndarray  # (n, d) float32, L2-normalised, zero rows for products without vectors
    has_vector: np.ndarray  # (n,) bool
    facets: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (n,) int32 codes, -1 missing
    facet_values: dict[str, list[str]] = field(default_factory=dict)
    category_key: str | None = None
    out_of_stock: np.ndarray | None = None
    model: str = ""
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {pid: i for i, pid in enumerate(self.ids)}
        if self.out_of_stock is None:
            self.out_of_stock = np.array([is_out_of_stock(a) for a in self.attrs], dtype=bool)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def category(self) -> np.ndarray:
        """Category code per item (-1 unknown); one category for everything when no facet exists."""
        if self.category_key and self.category_key in self.facets:
            return self.facets[self.category_key]
        return np.zeros(len(self.ids), dtype=np.int32)

    def category_name(self, i: int) -> str | None:
        if not self.category_key:
            return None
        code = int(self.facets[self.category_key][i])
        return self.facet_values[self.category_key][code] if code >= 0 else None

    def label(self, i: int) -> str:
        return self.titles[i] or self.ids[i]


def build_facets(
    attrs: list[dict[str, Any]], titles: list[str | None]
) -> tuple[dict[str, np.ndarray], dict[str, list[str]], str | None]:
    """Pick low-cardinality string attributes as facets and integer-code them."""
    n = len(attrs)
    values: dict[str, list[str | None]] = {}
    for i, a in enumerate(attrs):
        for k, v in a.items():
            # stock flags drive exclusion, not taste ("matches your taste for true")
            key = str(k).lower()
            if key in SKIP_FACETS or key in STOCK_FLAG_KEYS or v is None or isinstance(v, bool | dict | list):
                continue
            text = str(v).strip()
            if not text or re.fullmatch(r"-?\d+(\.\d+)?", text) or text.lower() in BOOLEAN_WORDS:
                continue
            values.setdefault(k, [None] * n)[i] = text
    if not any(str(k).lower() == "brand" for k in values):
        brands = [brand_from_title(t) for t in titles]
        if sum(b is not None for b in brands) >= max(1, n // 3):
            values["brand"] = list(brands)
    chosen: list[str] = []
    for k, col in values.items():
        filled = [v for v in col if v is not None]
        distinct = len(set(filled))
        if len(filled) >= max(1, int(0.3 * n)) and 2 <= distinct <= min(MAX_FACET_VALUES, max(2, n // 2 + 1)):
            chosen.append(k)
    rank = {k: i for i, k in enumerate(PREFERRED_FACETS)}
    chosen.sort(key=lambda k: (rank.get(k, len(rank)), k))
    chosen = chosen[:MAX_FACETS]
    facets: dict[str, np.ndarray] = {}
    facet_values: dict[str, list[str]] = {}
    for k in chosen:
        names = sorted({v for v in values[k] if v is not None})
        code = {v: j for j, v in enumerate(names)}
        facets[k] = np.array([code.get(v, -1) if v is not None else -1 for v in values[k]], dtype=np.int32)
        facet_values[k] = names
    category = next((k for k in CATEGORY_KEYS if k in facets), chosen[0] if chosen else None)
    return facets, facet_values, category


def _model_version(db: Any, model: str) -> str | None:
    recs = [m for m in db.models() if m.model_id == model]
    return recs[-1].version if recs else None


_CACHE: dict[tuple[Any, ...], ItemSpace] = {}


def item_space_key(catalog: CatalogParts, model: str | None = None) -> tuple[Any, ...]:
    """(model, version, embedded rows, products, image links, last product update): changes whenever
    the item space would (a cheap query; nothing is loaded)."""
    db = catalog.db
    name = model or catalog.settings.default_model
    if model is None and _model_version(db, name) is None:
        stored = db.models()  # the configured model has no vectors: use the latest embedded model
        name = stored[-1].model_id if stored else name
    version = _model_version(db, name)
    with db.session() as s:
        n_products = int(s.scalar(select(func.count(Product.id))) or 0)
        updated = s.scalar(select(func.max(Product.updated_at)))
        n_links = int(s.scalar(select(func.count()).select_from(ProductImage)) or 0)
    if n_products == 0:
        raise EmptyCatalogError("the catalog has no products; ingest some with `catalens ingest`")
    n_rows = len(db.embedding_positions(name, version)) if version else 0
    return (name, version, n_rows, n_products, n_links, str(updated))


def load_item_space(catalog: CatalogParts, model: str | None = None) -> ItemSpace:
    """The item space of a catalog for ``model``, cached per (database, :func:`item_space_key`)."""
    db = catalog.db
    key = (db.url, *item_space_key(catalog, model))
    name = key[1]
    if key in _CACHE:
        return _CACHE[key]
    shas, mat = catalog.vectors(name)  # raises EmptyCatalogError when nothing is embedded
    row_of = {h: i for i, h in enumerate(shas)}
    with db.session() as s:
        prods = s.execute(select(Product.id, Product.title, Product.attrs).order_by(Product.id)).all()
        links = s.execute(select(ProductImage.product_id, ProductImage.image_sha256)).all()
    ids = [p[0] for p in prods]
    index = {pid: i for i, pid in enumerate(ids)}
    sums = np.zeros((len(ids), mat.shape[1]), dtype=np.float32)
    counts = np.zeros(len(ids), dtype=np.int32)
    for pid, sha in links:
        r = row_of.get(sha)
        i = index.get(pid)
        if r is not None and i is not None:
            sums[i] += mat[r]
            counts[i] += 1
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    vectors = np.where(norms > 0, sums / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
    titles = [p[1] for p in prods]
    attrs = [dict(p[2] or {}) for p in prods]
    facets, facet_values, category = build_facets(attrs, titles)
    space = ItemSpace(
        ids=ids,
        titles=titles,
        attrs=attrs,
        vectors=vectors,
        has_vector=counts > 0,
        facets=facets,
        facet_values=facet_values,
        category_key=category,
        model=name,
    )
    _CACHE.clear()  # keep one item space per process: a new key means the catalog changed
    _CACHE[key] = space
    return space


def reduce_vectors(items: ItemSpace, dim: int) -> ItemSpace:
    """A copy of ``items`` whose vectors are projected on their top ``dim`` principal components
    (centred, then L2-normalised): similarities keep their order closely and cost ``dim`` instead
    of the model's dimension per item. ``dim`` 0 or >= the model's dimension: ``items`` as is."""
    vec = items.vectors
    rows = np.flatnonzero(items.has_vector)
    if dim <= 0 or dim >= vec.shape[1] or len(rows) <= dim:
        return items
    mean = vec[rows].mean(axis=0)
    _, _, vt = np.linalg.svd(vec[rows] - mean, full_matrices=False)
    proj = ((vec - mean) @ vt[:dim].T).astype(np.float32)
    proj /= np.maximum(np.linalg.norm(proj, axis=1, keepdims=True), 1e-12)
    proj[~items.has_vector] = 0.0
    return ItemSpace(
        ids=items.ids,
        titles=items.titles,
        attrs=items.attrs,
        vectors=np.ascontiguousarray(proj),
        has_vector=items.has_vector,
        facets=items.facets,
        facet_values=items.facet_values,
        category_key=items.category_key,
        out_of_stock=items.out_of_stock,
        model=items.model,
    )
