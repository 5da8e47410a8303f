"""Store and read quality results in the catalog database (table ``quality_results``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from catalens.catalog.db import CatalogDB
from catalens.quality.result import ImageQC
from catalens.quality.tables import QualityResultRecord


def save_results(db: CatalogDB, images: list[ImageQC], profile: str) -> int:
    """Replace the stored rows of these (source, profile) pairs; returns the number written."""
    with db.session() as s:
        sources = [im.source for im in images]
        for i in range(0, len(sources), 500):
            s.execute(
                delete(QualityResultRecord).where(
                    QualityResultRecord.profile == profile,
                    QualityResultRecord.source.in_(sources[i : i + 500]),
                )
            )
        s.add_all(
            QualityResultRecord(
                source=im.source,
                image_sha256=im.sha256,
                profile=profile,
                verdict=im.verdict,
                issues=[r.check for r in im.issues],
                results=[r.to_dict() for r in im.results],
            )
            for im in images
        )
    return len(images)


def load_results(
    db: CatalogDB, profile: str | None = None, verdict: str | None = None
) -> list[dict[str, Any]]:
    """Stored results (latest per image and profile), with accepted exceptions applied (a dismissed
    check reads ``pass`` with ``dismissed``: see :mod:`catalens.quality.exceptions`)."""
    from catalens.quality.exceptions import apply_exceptions, dismissed_pairs

    dismissed = dismissed_pairs(db)
    with db.session() as s:
        q = select(QualityResultRecord).order_by(QualityResultRecord.id)
        if profile:
            q = q.where(QualityResultRecord.profile == profile)
        if verdict and not dismissed:
            q = q.where(QualityResultRecord.verdict == verdict)
        rows = [
            {
                "source": r.source,
                "sha256": r.image_sha256,
                "profile": r.profile,
                "verdict": r.verdict,
                "issues": r.issues,
                "results": r.results,
                "created_at": r.created_at.isoformat(),
            }
            for r in s.scalars(q)
        ]
    if dismissed:
        rows = [apply_exceptions(r, dismissed) for r in rows]
        if verdict:
            rows = [r for r in rows if r["verdict"] == verdict]
    return rows
