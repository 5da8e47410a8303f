"""Accepted exceptions: dismiss a check's false positive on an image (table ``quality_exceptions``)
and apply the dismissals to stored results (the check reads as dismissed, not failing)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from catalens.catalog.db import CatalogDB
from catalens.errors import ConfigError, NotFoundError
from catalens.quality.result import worst
from catalens.quality.tables import QualityException


def dismiss(db: CatalogDB, sha256: str, check: str, note: str = "") -> dict[str, Any]:
    """Record that ``check`` on image ``sha256`` is a false positive (idempotent: the note is updated)."""
    if not check:
        raise ConfigError("a dismissal needs the check's name")
    with db.session() as s:
        row = s.scalar(
            select(QualityException).where(
                QualityException.image_sha256 == sha256, QualityException.check == check
            )
        )
        if row is None:
            row = QualityException(image_sha256=sha256, check=check, note=note)
            s.add(row)
        else:
            row.note = note
        s.flush()
        return _as_dict(row)


def undismiss(db: CatalogDB, sha256: str, check: str) -> None:
    """Forget a dismissal; NotFoundError when there is none."""
    with db.session() as s:
        gone = s.execute(
            delete(QualityException).where(
                QualityException.image_sha256 == sha256, QualityException.check == check
            )
        ).rowcount
    if not gone:
        raise NotFoundError(f"no dismissal of check {check!r} on image {sha256}")


def list_exceptions(db: CatalogDB) -> list[dict[str, Any]]:
    with db.session() as s:
        return [_as_dict(r) for r in s.scalars(select(QualityException).order_by(QualityException.id))]


def dismissed_pairs(db: CatalogDB) -> dict[str, set[str]]:
    """image sha256 -> the checks dismissed on it."""
    out: dict[str, set[str]] = {}
    with db.session() as s:
        for sha, check in s.execute(select(QualityException.image_sha256, QualityException.check)):
            out.setdefault(sha, set()).add(check)
    return out


def apply_exceptions(row: dict[str, Any], dismissed: dict[str, set[str]]) -> dict[str, Any]:
    """``row`` (a stored result: sha256, verdict, issues, results) with each dismissed check's warn or
    fail read as ``pass`` plus ``dismissed`` (the verdict it had); verdict and issues recomputed.
    An ``error`` (the check could not run) is never dismissed."""
    checks = dismissed.get(row.get("sha256") or "")
    if not checks:
        return row
    results = []
    for r in row["results"]:
        if r.get("check") in checks and r.get("verdict") in ("warn", "fail"):
            r = {**r, "dismissed": r["verdict"], "verdict": "pass"}
        results.append(r)
    verdict = worst([r.get("verdict", "pass") for r in results])
    dismissed_checks = [r["check"] for r in results if r.get("dismissed")]
    return {
        **row,
        "results": results,
        "verdict": verdict,
        "issues": [r["check"] for r in results if r.get("verdict") != "pass"],
        "dismissed": dismissed_checks,
    }


def _as_dict(r: QualityException) -> dict[str, Any]:
    return {
        "sha256": r.image_sha256,
        "check": r.check,
        "note": r.note,
        "created_at": r.created_at.isoformat() if r.created_at else None,
    }
