"""Products and images of a catalog: list, read, update and delete them, attribute facets, the stored
file of an image and cached thumbnails.

``ProductsMixin`` adds these as methods of :class:`catalens.Catalog`; the CLI (``catalens products``),
the REST routes and the web page all call them.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from catalens.catalog.schema import ImageRecord, Product, ProductImage
from catalens.catalog_base import CatalogParts
from catalens.errors import ConfigError, NotFoundError

THUMB_SIZES = (64, 128, 256, 512)


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except OSError:
        return False


MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "HEIF": "image/heif",
    "AVIF": "image/avif",
}
_SHA = re.compile(r"^[0-9a-f]{64}$")
SORTS = ("id", "-id", "title", "-title", "created", "-created")


def check_sha(sha: str) -> str:
    if not _SHA.match(sha):
        raise NotFoundError(f"no image {sha!r} (an image id is a 64-character hex SHA-256)")
    return sha


def _product_dict(p: Product, images: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": p.id,
        "title": p.title,
        "attrs": dict(p.attrs or {}),
        "images": images,
        "created_at": p.created_at.isoformat() if p.created_at else None,
        "updated_at": p.updated_at.isoformat() if p.updated_at else None,
    }


def _image_dict(img: ImageRecord) -> dict[str, Any]:
    return {
        "sha256": img.sha256,
        "width": img.width,
        "height": img.height,
        "format": img.format,
        "n_bytes": img.n_bytes,
        "source": img.source,
    }


class ProductsMixin(CatalogParts):
    """Products and images: the methods behind ``catalens products``, the REST API and the web page."""

    def check_where(self, where: str | None) -> list[str]:
        """The CLI's ``--where`` checks for a request's filter (:func:`catalens.search.filters.check_filter`
        over every product as the filter sees it): a field no product has raises UnknownFieldError
        (400, listing the known fields); a ``field = 'value'`` no product holds gives a note with
        "did you mean", returned. Cached per filter text until the products change.

        ``where``: the filter expression."""
        if not where or not where.strip():
            return []
        import warnings

        from catalens.search.engine import filter_attrs, product_rows
        from catalens.search.filters import check_filter, parse_where

        flt = parse_where(where)
        with self.db.session() as s:
            stamp = tuple(s.execute(select(func.count(Product.id), func.max(Product.updated_at))).one())
        cache: dict[str, tuple[Any, list[str]]] = self.__dict__.setdefault("_where_notes", {})
        hit = cache.get(flt.text)
        if hit is not None and hit[0] == stamp:
            return list(hit[1])
        rows = [filter_attrs(pid, t, a) for pid, (t, a) in product_rows(self.db).items()]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # returned to the caller, not printed in the server log
            notes = check_filter(flt, rows)
        if len(cache) >= 256:
            cache.pop(next(iter(cache)))
        cache[flt.text] = (stamp, notes)
        return list(notes)

    def _open_searchers(self) -> list[Any]:
        """The search engines this catalog has open (they cache titles, attributes and links)."""
        return list(self.__dict__.get("_searchers", {}).values())

    # ---- products -----------------------------------------------------------------------------
    def list_products(
        self,
        *,
        q: str | None = None,
        where: str | None = None,
        offset: int = 0,
        limit: int = 50,
        sort: str = "id",
    ) -> dict[str, Any]:
        """One page of products: ``q`` matches id or title (substring), ``where`` is a filter
        expression over attributes (see :mod:`catalens.search.filters`).

        ``offset`` / ``limit`` (1-500): the page; ``sort``: id | title | created, with a leading - for
        descending. Returns ``total``, ``items`` (id, title, attrs, image count, cover image) and filter
        ``warnings``."""
        if sort not in SORTS:
            raise ConfigError(f"unknown sort {sort!r}; use one of {', '.join(SORTS)}")
        if offset < 0 or not 1 <= limit <= 500:
            raise ConfigError("offset must be >= 0 and limit between 1 and 500")
        flt = None
        notes: list[str] = []
        if where:
            from catalens.search.filters import parse_where

            flt = parse_where(where)
            notes = self.check_where(where)
        col = {"id": Product.id, "title": Product.title, "created": Product.created_at}[sort.lstrip("-")]
        order = col.desc() if sort.startswith("-") else col.asc()
        stmt = select(Product).order_by(order, Product.id)
        if q:
            pat = f"%{q.strip().lower()}%"
            stmt = stmt.where(func.lower(Product.id).like(pat) | func.lower(Product.title).like(pat))
        with self.db.session() as s:
            if flt is None:
                total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
                page = list(s.scalars(stmt.offset(offset).limit(limit)))
            else:
                rows = [
                    p
                    for p in s.scalars(stmt)
                    if flt.matches({**(p.attrs or {}), "id": p.id, "title": p.title or ""})
                ]
                total, page = len(rows), rows[offset : offset + limit]
            ids = [p.id for p in page]
            covers: dict[str, list[str]] = {i: [] for i in ids}
            if ids:
                links = s.execute(
                    select(ProductImage.product_id, ProductImage.image_sha256)
                    .where(ProductImage.product_id.in_(ids))
                    .order_by(ProductImage.position)
                )
                for pid, sha in links:
                    covers[pid].append(sha)
        items = [
            {
                "id": p.id,
                "title": p.title,
                "attrs": dict(p.attrs or {}),
                "image_count": len(covers[p.id]),
                "cover": covers[p.id][0] if covers[p.id] else None,
            }
            for p in page
        ]
        return {"total": int(total), "offset": offset, "limit": limit, "items": items, "warnings": notes}

    def product(self, product_id: str) -> dict[str, Any]:
        """A product with its images (in position order).

        ``product_id``: the product's id; :class:`~catalens.errors.NotFoundError` when unknown."""
        with self.db.session() as s:
            p = s.get(Product, product_id)
            if p is None:
                raise NotFoundError(f"no product {product_id!r}")
            rows = s.execute(
                select(ImageRecord)
                .join(ProductImage, ProductImage.image_sha256 == ImageRecord.sha256)
                .where(ProductImage.product_id == product_id, ImageRecord.status == "ok")
                .order_by(ProductImage.position)
            ).scalars()
            return _product_dict(p, [_image_dict(i) for i in rows])

    def update_product(
        self,
        product_id: str,
        *,
        title: str | None = None,
        attrs: dict[str, Any] | None = None,
        replace_attrs: bool = False,
    ) -> dict[str, Any]:
        """Change a product's title and/or attributes (merged, or replaced with ``replace_attrs``);
        a ``None`` attribute value removes that attribute.

        ``product_id``: the product's id. Returns the updated product.

        ``title``: the new title; ``attrs``: attributes merged in (replaced with ``replace_attrs``)."""
        with self.db.session() as s:
            p = s.get(Product, product_id)
            if p is None:
                raise NotFoundError(f"no product {product_id!r}")
            if title is not None:
                p.title = title
            if attrs is not None:
                merged = {} if replace_attrs else dict(p.attrs or {})
                merged.update(attrs)
                p.attrs = {k: v for k, v in merged.items() if v is not None}
        for s in self._open_searchers():
            s.refresh_metadata([product_id])
        return self.product(product_id)

    def delete_product(self, product_id: str) -> None:
        """Delete a product with everything keyed by it (image links, events) and every image no
        other product links to (see :meth:`delete_image`); images another product shows stay.

        ``product_id``: the product's id; :class:`~catalens.errors.NotFoundError` when unknown."""
        orphans = self.db.delete_product_rows(product_id)
        if orphans is None:
            raise NotFoundError(f"no product {product_id!r}")
        for engine in self._open_searchers():
            engine.forget(products=[product_id])
        for sha in orphans:
            self._delete_image(sha)
        self._catalog_changed()

    def facets(self, max_values: int = 200) -> dict[str, list[tuple[str, int]]]:
        """Attribute name -> [(value, count)], most frequent first, for attributes with few values.

        ``max_values``: attributes with more distinct values are left out."""
        counts: dict[str, Counter[str]] = {}
        with self.db.session() as s:
            for attrs in s.scalars(select(Product.attrs)):
                for key, value in (attrs or {}).items():
                    if value is None or isinstance(value, dict | list):
                        continue
                    counts.setdefault(key, Counter())[str(value)] += 1
        return {
            key: c.most_common()
            for key, c in sorted(counts.items())
            if 1 < len(c) <= max_values and key.lower() not in {"id", "title"}
        }

    # ---- images -------------------------------------------------------------------------------
    def _image_record(self, sha: str) -> ImageRecord:
        rec = self.db.image(check_sha(sha))
        if rec is None or rec.status != "ok":
            raise NotFoundError(f"no image {sha!r}")
        return rec

    def image_info(self, sha: str) -> dict[str, Any]:
        """An image's facts and the products it belongs to.

        ``sha``: the image's SHA-256."""
        rec = self._image_record(sha)
        with self.db.session() as s:
            products = list(
                s.scalars(select(ProductImage.product_id).where(ProductImage.image_sha256 == sha))
            )
        return _image_dict(rec) | {"products": products}

    def delete_image(self, sha: str) -> None:
        """Remove an image and everything derived from it: its record, product links, embedding
        records and vectors, predictions, quality results and other feature rows (one
        transaction), then its cached thumbnails, its stored blob or upload file, and its entries
        in the open search engines (the index itself drops them on its next sync).

        ``sha``: the image's 64-character SHA-256; :class:`~catalens.errors.NotFoundError` when unknown."""
        self._image_record(sha)
        self._delete_image(sha)
        self._catalog_changed()

    def _delete_image(self, sha: str) -> None:
        gone = self.db.delete_image_rows(sha)
        if gone is None:
            return
        for engine in self._open_searchers():  # never returned again, without re-opening the index
            engine.forget(images=[sha])
        self._zero_file_vectors(gone.positions)
        home = self.settings.home.resolve()
        for size in THUMB_SIZES:
            (home / "thumbs" / str(size) / sha[:2] / f"{sha}.jpg").unlink(missing_ok=True)
        if gone.stored_path and _inside(Path(gone.stored_path), home / "blobs"):
            Path(gone.stored_path).unlink(missing_ok=True)
        source = Path(gone.source) if not gone.source.startswith(("http://", "https://")) else None
        if source is not None and _inside(source, home / "uploads"):
            source.unlink(missing_ok=True)
            release = getattr(self, "release_upload_folder", None)
            if release is not None:
                release(source.parent)

    def _zero_file_vectors(self, positions: list[tuple[str, str, int]]) -> None:
        """Overwrite a file store's rows of a deleted image with zeros: an unused hole, never reused."""
        if not positions:
            return
        import numpy as np

        from catalens.vectors import FileVectorStore, open_store

        dims = {(m.model_id, m.version): m.dim for m in self.db.models()}
        st = self.settings
        for model_id, version, position in positions:
            dim = dims.get((model_id, version))
            if dim is None:
                continue
            try:
                store = open_store(self.db, st.home, model_id, version, dim, st.vector_store)
            except ConfigError:  # the vectors live in another home: its rows stay unused holes
                continue
            if isinstance(store, FileVectorStore) and position < store.rows_on_disk():
                store.write(position, np.zeros((1, dim), dtype=np.float32))

    def _catalog_changed(self) -> None:
        """Hook for what caches catalog content beyond the search engines (recommendations)."""
        changed = getattr(self, "recommend_changed", None)
        if callable(changed):
            changed()

    def image_file(self, sha: str) -> tuple[Path, str]:
        """(path, media type) of the stored file of a cataloged image. Only paths recorded in the
        database are ever returned, so no request can reach another file.

        ``sha``: the image's SHA-256."""
        rec = self._image_record(sha)
        path = Path(rec.stored_path or rec.source)
        if rec.stored_path is None and rec.source.startswith(("http://", "https://")):
            raise NotFoundError(f"image {sha} was not stored locally")
        if not path.is_file():
            raise NotFoundError(f"the file of image {sha} is missing from storage")
        return path, MEDIA_TYPES.get((rec.format or "").upper(), "application/octet-stream")

    def thumbnail(self, sha: str, size: int = 256) -> Path:
        """A JPEG thumbnail (longest side ``size``), made on first use and cached under the home.

        ``sha``: the image's SHA-256."""
        if size not in THUMB_SIZES:
            raise ConfigError(f"thumbnail size must be one of {', '.join(map(str, THUMB_SIZES))}")
        out = self.settings.home / "thumbs" / str(size) / sha[:2] / f"{check_sha(sha)}.jpg"
        if out.is_file():
            return out
        from catalens.imageio import open_image

        src, _ = self.image_file(sha)
        st = self.settings
        img = open_image(
            src, max_bytes=st.max_file_bytes, max_pixels=st.max_pixels, max_side=st.max_side, draft_to=size
        ).image
        img.thumbnail((size, size))
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f"{out.stem}.{id(img)}.part")
        img.save(tmp, "JPEG", quality=85, optimize=True)
        tmp.replace(out)
        return out
