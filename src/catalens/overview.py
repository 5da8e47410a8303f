"""What ``catalens info`` adds to the database counts: classifiers, events, QC runs and text search.

Each part is read cheaply (one grouped query or a folder listing) and never fails ``info``: a part
that cannot be read says why in its place.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from catalens.catalog.db import CatalogDB


def classifiers_part(home: Path) -> list[dict[str, Any]]:
    """Every trained classifier: name, latest version, method, model, fields."""
    from catalens.classify.classifier import list_classifiers

    return [
        {k: c[k] for k in ("name", "latest", "method", "model", "fields")} | {"versions": len(c["versions"])}
        for c in list_classifiers(home)
    ]


def events_part(db: CatalogDB) -> dict[str, Any]:
    """Event log size: events, distinct users and products, kinds, time span (ISO dates, UTC)."""
    from datetime import UTC, datetime

    from catalens.recommend.tables import EventRecord

    with db.session() as s:
        n, users, products, lo, hi = s.execute(
            select(
                func.count(EventRecord.id),
                func.count(func.distinct(EventRecord.user_id)),
                func.count(func.distinct(EventRecord.product_id)),
                func.min(EventRecord.ts_ms),
                func.max(EventRecord.ts_ms),
            )
        ).one()
        kinds = dict(s.execute(select(EventRecord.event, func.count()).group_by(EventRecord.event)).all())

    def day(ms: int | None) -> str | None:
        return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")

    return {
        "events": int(n or 0),
        "users": int(users or 0),
        "products": int(products or 0),
        "by_kind": {k: int(v) for k, v in kinds.items()},
        "first": day(lo),
        "last": day(hi),
    }


def qc_part(db: CatalogDB) -> list[dict[str, Any]]:
    """Stored QC results per profile: images checked, verdict counts, when last run."""
    from catalens.quality.tables import QualityResultRecord as Q

    with db.session() as s:
        rows = s.execute(
            select(Q.profile, Q.verdict, func.count(), func.max(Q.created_at)).group_by(Q.profile, Q.verdict)
        ).all()
    out: dict[str, dict[str, Any]] = {}
    for profile, verdict, n, last in rows:
        d = out.setdefault(profile, {"profile": profile, "images": 0, "verdicts": {}, "last_run": None})
        d["images"] += int(n)
        d["verdicts"][verdict] = int(n)
        stamp = last.isoformat(timespec="seconds") if last is not None else None
        if stamp and (d["last_run"] is None or stamp > d["last_run"]):
            d["last_run"] = stamp
    return sorted(out.values(), key=lambda d: d["profile"])


def text_search_part(home: Path, models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each embedded model: how ``search --text`` works for it (its own text tower, a trained
    projection with its held-out Recall@10, or not available until ``catalens search train-text``)."""
    from catalens.vectors import vector_key

    out = []
    for m in models:
        row: dict[str, Any] = {"model": m["model_id"], "version": m["version"]}
        has_tower = False
        try:
            from catalens.models import get_spec

            spec = get_spec(m["model_id"])
            has_tower = bool(getattr(spec, "has_text", False)) and bool(getattr(spec, "has_image", True))
        except Exception:  # noqa: BLE001 - an unregistered model: no tower known
            has_tower = False
        meta_path = home / "textproj" / f"{vector_key(m['model_id'], m['version'])}.json"
        if has_tower:
            row["status"] = "text tower"
        elif meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            row |= {
                "status": "projection",
                "method": meta.get("method_key"),
                "pairs": meta.get("pairs"),
                "heldout_recall_at_10": meta.get("heldout_recall_at_10"),
                "trained_at": meta.get("trained_at"),
            }
        else:
            row["status"] = "not trained (run catalens search train-text)"
        out.append(row)
    return out


def overview(db: CatalogDB, home: Path, models: list[dict[str, Any]]) -> dict[str, Any]:
    """The parts above, keyed ``classifiers``, ``events``, ``qc_runs``, ``text_search``."""
    parts: dict[str, Callable[[], Any]] = {
        "classifiers": lambda: classifiers_part(home),
        "events": lambda: events_part(db),
        "qc_runs": lambda: qc_part(db),
        "text_search": lambda: text_search_part(home, models),
    }
    out: dict[str, Any] = {}
    for key, read in parts.items():
        try:
            out[key] = read()
        except Exception as exc:  # noqa: BLE001 - info shows what it can, and says what it could not
            out[key] = {"error": f"{type(exc).__name__}: {exc}"}
    return out
