"""Labelled data: a labels CSV (or the catalog's own product attributes) resolved to stored images.

A labels CSV names each image by ``image`` (a path or file name as ingested), ``id`` (a product
id; its first image is used) or ``sha256``, plus one column per field. Empty cells mean "not
labelled for this field". Errors name the problem: missing columns, unknown images, empty fields.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from catalens.catalog.db import CatalogDB
from catalens.catalog.schema import ImageRecord, Product, ProductImage
from catalens.errors import LabelsError

KEY_COLUMNS = ("sha256", "image", "id")


@dataclass
class LabelSet:
    shas: list[str]
    product_ids: list[str | None]
    titles: list[str | None]
    labels: dict[str, list[str | None]]
    source: str
    extra: dict[str, list[str | None]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.shas)

    def subset(self, idx: list[int]) -> LabelSet:
        return LabelSet(
            [self.shas[i] for i in idx],
            [self.product_ids[i] for i in idx],
            [self.titles[i] for i in idx],
            {f: [v[i] for i in idx] for f, v in self.labels.items()},
            self.source,
            {f: [v[i] for i in idx] for f, v in self.extra.items()},
        )


def _clean(v: object) -> str | None:
    s = "" if v is None else str(v).strip()
    return s or None


def _catalog_maps(
    db: CatalogDB,
) -> tuple[dict[str, str], dict[str, str], dict[str, str], dict[str, tuple[str, str | None]]]:
    """(product id -> first image, source -> sha, basename -> sha (unique only), sha -> (pid, title))."""
    with db.session() as s:
        links = s.execute(
            select(ProductImage.product_id, ProductImage.image_sha256, Product.title)
            .join(Product, Product.id == ProductImage.product_id)
            .order_by(ProductImage.product_id, ProductImage.position)
        ).all()
        images = s.execute(
            select(ImageRecord.sha256, ImageRecord.source).where(ImageRecord.status == "ok")
        ).all()
    by_pid: dict[str, str] = {}
    owner: dict[str, tuple[str, str | None]] = {}
    for pid, sha, title in links:
        by_pid.setdefault(pid, sha)
        owner.setdefault(sha, (pid, title))
    by_source = {src: sha for sha, src in images}
    names: dict[str, list[str]] = {}
    for sha, src in images:
        names.setdefault(os.path.basename(src), []).append(sha)
    by_name = {n: v[0] for n, v in names.items() if len(v) == 1}
    return by_pid, by_source, by_name, owner


def _by_content(path: Path, known: set[str]) -> str | None:
    """The stored image with the same bytes as ``path``: a file ingested under another name (a
    byte-identical copy is stored once, under the first path seen)."""
    from catalens.imageio import read_bytes, sha256_bytes

    try:
        if not path.is_file():
            return None
        sha = sha256_bytes(read_bytes(path))
    except Exception:  # noqa: BLE001 - unreadable: the row is reported as unknown
        return None
    return sha if sha in known else None


def read_labels(
    db: CatalogDB,
    path: str | os.PathLike[str],
    fields: list[str],
    *,
    key: str | None = None,
    skip_unknown: bool = False,
) -> LabelSet:
    """Read a labels CSV and resolve every row to a stored image."""
    p = Path(path)
    if not fields:
        raise LabelsError("no --field given: name at least one label column to train on")
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except OSError as exc:
        raise LabelsError(f"{p}: cannot read labels ({exc.strerror or exc})") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise LabelsError(f"{p}: not a readable CSV ({exc})") from exc
    if not header:
        raise LabelsError(f"{p}: empty labels file (no header row)")
    key = key or next((k for k in KEY_COLUMNS if k in header), None)
    if key is None or key not in header:
        raise LabelsError(
            f"{p}: no image column: expected one of {', '.join(KEY_COLUMNS)} (columns: {', '.join(header)})"
        )
    missing = [f for f in fields if f not in header]
    if missing:
        raise LabelsError(f"{p}: missing label column(s) {missing} (columns: {', '.join(header)})")
    if not rows:
        raise LabelsError(f"{p}: no rows")
    by_pid, by_source, by_name, owner = _catalog_maps(db)
    known = set(by_source.values())
    shas: list[str] = []
    labels: dict[str, list[str | None]] = {f: [] for f in fields}
    unknown: list[str] = []
    seen: set[str] = set()
    for row in rows:
        ref = _clean(row.get(key))
        sha = None
        if ref is not None:
            if key == "sha256":
                sha = ref if ref in owner or ref in by_source.values() else None
            elif key == "id":
                sha = by_pid.get(ref)
            else:
                sha = (
                    by_source.get(ref)
                    or by_source.get(str((p.parent / ref).resolve()))
                    or by_name.get(os.path.basename(ref))
                    or _by_content(p.parent / ref, known)
                    # the file moved or the CSV was copied elsewhere: the row's product id, if any
                    or (by_pid.get(_clean(row.get("id")) or "") if "id" in header else None)
                )
        if sha is None:
            unknown.append(ref or "<empty>")
            continue
        if sha in seen:
            continue
        seen.add(sha)
        shas.append(sha)
        for f in fields:
            labels[f].append(_clean(row.get(f)))
    if unknown and not skip_unknown:
        raise LabelsError(
            f"{p}: {len(unknown)} of {len(rows)} rows name images not in the catalog "
            f"(by {key!r}; e.g. {unknown[:3]}); ingest them first or pass --skip-unknown"
        )
    return _finish(shas, labels, owner, str(p))


def catalog_titles(db: CatalogDB, shas: Iterable[str]) -> dict[str, tuple[str, str | None]]:
    """sha -> (product id, product title) of the images of ``shas`` that belong to a product."""
    owner = _catalog_maps(db)[3]
    return {s: owner[s] for s in shas if s in owner}


def catalog_labels(db: CatalogDB, fields: list[str]) -> LabelSet:
    """Labels from the catalog's product attributes (ingested label columns)."""
    if not fields:
        raise LabelsError("no --field given")
    with db.session() as s:
        rows = s.execute(
            select(ProductImage.image_sha256, Product.attrs)
            .join(Product, Product.id == ProductImage.product_id)
            .order_by(ProductImage.product_id, ProductImage.position)
        ).all()
    _, _, _, owner = _catalog_maps(db)
    shas: list[str] = []
    labels: dict[str, list[str | None]] = {f: [] for f in fields}
    seen: set[str] = set()
    for sha, attrs in rows:
        if sha in seen:
            continue
        seen.add(sha)
        shas.append(sha)
        for f in fields:
            labels[f].append(_clean((attrs or {}).get(f)))
    return _finish(shas, labels, owner, "catalog")


def _finish(
    shas: list[str],
    labels: dict[str, list[str | None]],
    owner: dict[str, tuple[str, str | None]],
    source: str,
) -> LabelSet:
    for f, vals in labels.items():
        if not any(v is not None for v in vals):
            raise LabelsError(f"{source}: field {f!r} is empty (no row has a value)")
    pids = [owner.get(s, (None, None))[0] for s in shas]
    titles = [owner.get(s, (None, None))[1] for s in shas]
    return LabelSet(shas, pids, titles, labels, source)
