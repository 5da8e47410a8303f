"""Per-image results out of the catalog: ``catalens export KIND --format csv|parquet|jsonl``.

Kinds (one row per image, or per image and field, or per user and rank):

* ``predictions``: every stored classifier prediction (image, product, field, label, probability,
  review flag, top-k);
* ``review``: the predictions flagged for human review (below the classifier's threshold);
* ``disagreements``: predictions that differ from the product's stored label for the same field,
  most confident first (the likeliest label errors);
* ``qc``: stored quality results (verdict, failing checks and their reasons, dismissed checks);
* ``dedup``: images in duplicate groups (group number, kind, score);
* ``recommendations``: the top-k list of each user of the event log (or of the users asked for).

:func:`export_rows` yields plain dicts; :func:`write_rows` writes them (lists and dicts as JSON text
in CSV and Parquet cells).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sqlalchemy import select

from catalens.errors import ConfigError

if TYPE_CHECKING:
    from catalens.catalog_base import CatalogParts
    from catalens.core import Catalog

KINDS = ("predictions", "review", "disagreements", "qc", "dedup", "recommendations")
FORMATS = ("csv", "jsonl", "parquet")
_PRED = (
    "image_sha256", "source", "product_ids", "classifier", "version", "field", "label", "prob",
    "needs_review", "stored_label", "top_k",
)  # fmt: skip
COLUMNS: dict[str, tuple[str, ...]] = {
    "predictions": _PRED,
    "review": _PRED,
    "disagreements": _PRED,
    "qc": (
        "image_sha256",
        "source",
        "product_ids",
        "profile",
        "verdict",
        "issues",
        "reasons",
        "dismissed",
        "checked_at",
    ),  # fmt: skip
    "dedup": ("group", "kind", "score", "group_size", "image_sha256", "source", "product_ids"),
    "recommendations": (
        "user_id",
        "rank",
        "product_id",
        "title",
        "score",
        "reason",
        "signal",
        "because",
        "fallback",
    ),  # fmt: skip
}


def _links(cat: CatalogParts) -> tuple[dict[str, list[str]], dict[str, str], dict[str, dict[str, Any]]]:
    """(image sha -> product ids, image sha -> source, product id -> attributes)."""
    from catalens.catalog.schema import ImageRecord, Product, ProductImage

    pids: dict[str, list[str]] = {}
    sources: dict[str, str] = {}
    attrs: dict[str, dict[str, Any]] = {}
    with cat.db.session() as s:
        for pid, sha in s.execute(
            select(ProductImage.product_id, ProductImage.image_sha256).order_by(
                ProductImage.product_id, ProductImage.position
            )
        ):
            pids.setdefault(sha, []).append(pid)
        # failed sources have no sha256 (no image of a product): only stored images are looked up
        sources = {
            sha: src
            for sha, src in s.execute(select(ImageRecord.sha256, ImageRecord.source))
            if sha is not None
        }
        attrs = {pid: dict(a or {}) for pid, a in s.execute(select(Product.id, Product.attrs))}
    return pids, sources, attrs


def _stored_label(attrs: dict[str, Any], field: str) -> str | None:
    if field in attrs:
        v = attrs[field]
    else:
        v = next((val for k, val in attrs.items() if str(k).casefold() == field.casefold()), None)
    v = None if v is None else str(v).strip()
    return v or None


def prediction_rows(
    cat: CatalogParts,
    *,
    classifier: str | None = None,
    fields: Sequence[str] = (),
    only: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Stored predictions; ``only``: ``review`` (flagged ones) or ``disagreements`` (a stored label
    of the product differs; most confident first)."""
    from catalens.classify.tables import ClassPrediction as P

    pids, sources, attrs = _links(cat)
    q = select(P).order_by(P.image_sha256, P.classifier, P.field)
    if classifier:
        q = q.where(P.classifier == classifier)
    if fields:
        q = q.where(P.field.in_(list(fields)))
    if only == "review":
        q = q.where(P.needs_review.is_(True))
    rows: list[dict[str, Any]] = []
    with cat.db.session() as s:
        for p in s.scalars(q):
            products = pids.get(p.image_sha256, [])
            stored = next(
                (v for v in (_stored_label(attrs.get(pid, {}), p.field) for pid in products) if v), None
            )
            row = {
                "image_sha256": p.image_sha256,
                "source": sources.get(p.image_sha256),
                "product_ids": products,
                "classifier": p.classifier,
                "version": p.version,
                "field": p.field,
                "label": p.label,
                "prob": round(float(p.prob), 6),
                "needs_review": bool(p.needs_review),
                "stored_label": stored,
                "top_k": p.top_k,
            }
            if only == "disagreements":
                if stored is None or stored.casefold() == p.label.casefold():
                    continue
            rows.append(row)
    if only == "disagreements":
        rows.sort(key=lambda r: -r["prob"])
    yield from rows


def qc_rows(
    cat: Catalog, *, profile: str | None = None, verdict: str | None = None
) -> Iterator[dict[str, Any]]:
    """Stored QC results, one row per image and profile, with the reasons of its failing checks and
    its dismissed ones (accepted exceptions: they read as passing, see ``catalens qc dismiss``)."""
    pids, _, _ = _links(cat)
    for r in cat.qc_results(profile, verdict):
        bad = [x for x in r["results"] if x.get("verdict") not in ("pass", None)]
        yield {
            "image_sha256": r["sha256"],
            "source": r["source"],
            "product_ids": pids.get(r["sha256"] or "", []),
            "profile": r["profile"],
            "verdict": r["verdict"],
            "issues": r["issues"],
            "reasons": "; ".join(f"{x['check']}: {x.get('reason') or ''}" for x in bad),
            "dismissed": [x["check"] for x in r["results"] if x.get("dismissed")],
            "checked_at": r["created_at"],
        }


def dedup_rows(cat: Catalog, *, model: str | None = None, **options: Any) -> Iterator[dict[str, Any]]:
    """One row per image in a duplicate group (``group`` numbers from 1); the report is reused while
    the catalog is unchanged (:mod:`catalens.search.dedup_cache`)."""
    from catalens.search.dedup import DedupOptions

    report = cat.dedup(model, cached=True, options=DedupOptions.overridden(**options))
    for n, g in enumerate(report.groups, 1):
        for im in g.images:
            yield {
                "group": n,
                "kind": g.kind,
                "score": round(float(g.score), 4),
                "group_size": len(g.images),
                "image_sha256": im.get("image_sha256"),
                "source": im.get("source"),
                "product_ids": im.get("product_ids") or [],
            }


def recommendation_rows(
    cat: Catalog, *, users: Sequence[str] = (), k: int = 10, max_users: int | None = None, **opts: Any
) -> Iterator[dict[str, Any]]:
    """The top-``k`` recommendations of each user (``users``, else every user of the event log)."""
    from catalens.recommend.tables import EventRecord

    if not users:
        with cat.db.session() as s:
            q = select(EventRecord.user_id).distinct().order_by(EventRecord.user_id)
            if max_users:
                q = q.limit(max_users)
            users = list(s.scalars(q))
    for user in users:
        res = cat.recommend(user, k=k, **opts)
        for rank, r in enumerate(res.items, 1):
            yield {
                "user_id": user,
                "rank": rank,
                "product_id": r.product_id,
                "title": r.title,
                "score": r.score,
                "reason": r.reason,
                "signal": r.signal,
                "because": r.because,
                "fallback": res.fallback,
            }


def export_rows(cat: Catalog, kind: str, **opts: Any) -> Iterator[dict[str, Any]]:
    """Rows of one export ``kind`` (see the module doc); ``opts`` go to that kind's function."""
    if kind not in KINDS:
        raise ConfigError(f"unknown export {kind!r}; use one of {', '.join(KINDS)}")
    if kind == "predictions":
        return prediction_rows(cat, **opts)
    if kind in ("review", "disagreements"):
        return prediction_rows(cat, only=kind, **opts)
    if kind == "qc":
        return qc_rows(cat, **opts)
    if kind == "dedup":
        return dedup_rows(cat, **opts)
    return recommendation_rows(cat, **opts)


def _cell(v: Any) -> Any:
    if isinstance(v, list | dict | tuple):
        return json.dumps(v, ensure_ascii=False, default=str)
    return v


def write_rows(
    rows: Iterable[dict[str, Any]],
    fmt: str,
    out: str | Path | TextIO | None = None,
    columns: Sequence[str] | None = None,
) -> int:
    """Write ``rows`` as ``fmt`` to a path, an open text stream or stdout (None; not parquet).
    Returns the number of rows. Columns: ``columns`` (e.g. ``COLUMNS[kind]``, so that an empty
    export still has its header), else the first row's keys."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    data = list(rows)
    cols = list(columns) if columns else (list(data[0]) if data else [])
    if fmt == "parquet":
        if out is None or not isinstance(out, str | Path):
            raise ConfigError("--format parquet needs --out FILE")
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({c: [_cell(r.get(c)) for r in data] for c in cols})
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, str(out))
        return len(data)
    buf = io.StringIO()
    if fmt == "jsonl":
        for r in data:
            buf.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
    else:
        w = csv.writer(buf)
        if cols:
            w.writerow(cols)
        for r in data:
            w.writerow([_cell(r.get(c)) for c in cols])
    text = buf.getvalue()
    if out is None:
        sys.stdout.write(text)
    elif isinstance(out, str | Path):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
    else:
        out.write(text)
    return len(data)
