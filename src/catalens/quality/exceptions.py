"""Accepted exceptions: dismiss a check's false positive on an image (table ``quality_exceptions``)
and apply the dismissals to results, stored (:func:`apply_exceptions`) or of a run
(:func:`apply_to_images`): the check reads as dismissed, not failing.

One rule (:func:`is_dismissed`) for both: a ``warn`` or ``fail`` of a check dismissed on the
image (matched by its sha256) reads ``pass`` with ``dismissed`` = the verdict it had; an ``error``
(the check could not run) is never dismissed. Stored rows keep the verdicts the checks gave, so
forgetting a dismissal (:func:`undismiss`) makes the check count again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from catalens.catalog.db import CatalogDB
from catalens.errors import ConfigError, NotFoundError
from catalens.quality.result import ImageQC, worst
from catalens.quality.tables import QualityException, QualityResultRecord

DISMISSABLE = ("warn", "fail")


def dismiss(db: CatalogDB, sha256: str, check: str, note: str = "") -> dict[str, Any]:
    """Record that ``check`` on image ``sha256`` is a false positive (idempotent: the note is updated).
    ConfigError for a name that is not a check (the message lists the known ones)."""
    if not check:
        raise ConfigError("a dismissal needs the check's name")
    from catalens.quality.registry import get_check

    get_check(check)
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


def list_exceptions(db: CatalogDB, *, images: bool = False) -> list[dict[str, Any]]:
    """Every dismissal, oldest first; ``images``: with each image's ``source`` and ``product_ids``."""
    with db.session() as s:
        rows = [_as_dict(r) for r in s.scalars(select(QualityException).order_by(QualityException.id))]
    if images and rows:
        about = _describe(db, list({r["sha256"] for r in rows}))
        for r in rows:
            r["source"], r["product_ids"] = about.get(r["sha256"], (None, []))
    return rows


def stored_verdicts(db: CatalogDB, sha256: str, check: str) -> list[tuple[str, str]]:
    """(profile, verdict the check gave) of the stored results of image ``sha256`` that ran ``check``
    (the checks' own verdicts, before any dismissal)."""
    with db.session() as s:
        rows = s.execute(
            select(QualityResultRecord.profile, QualityResultRecord.results)
            .where(QualityResultRecord.image_sha256 == sha256)
            .order_by(QualityResultRecord.id)
        ).all()
    return [
        (profile, str(r.get("verdict")))
        for profile, results in rows
        for r in results or []
        if r.get("check") == check
    ]


# ---- what a person types for an image -----------------------------------------------------------
_HEX = frozenset("0123456789abcdef")
MIN_PREFIX = 6


def resolve_image(db: CatalogDB, ref: str) -> str:
    """The sha256 of the image ``ref`` names: a sha256, an existing file (its bytes' hash), the
    source (path or URL) of a catalog image or of a stored QC result, a product id with one image,
    or a unique sha256 prefix (6+ hex characters). The image must be in the catalog or have stored
    QC results; NotFoundError (naming the candidates when several match) otherwise."""
    from catalens.catalog.schema import ImageRecord, ProductImage

    text = str(ref).strip()
    if not text:
        raise NotFoundError("no image given")
    low = text.lower()
    if len(low) == 64 and set(low) <= _HEX:
        if not _known(db, [low]):
            raise NotFoundError(f"no image with sha256 {low} in the catalog or in stored QC results")
        return low
    path = Path(text).expanduser()
    if path.is_file():
        sha = _file_sha256(path)
        if not _known(db, [sha]):
            raise NotFoundError(
                f"{text}: this file (sha256 {sha}) is not in the catalog and has no stored QC result "
                "(catalens ingest or catalens qc it first)"
            )
        return sha
    names = {text, str(path.resolve())} if "://" not in text else {text}
    with db.session() as s:
        shas = set(
            s.scalars(
                select(ImageRecord.sha256).where(ImageRecord.source.in_(names), ImageRecord.status == "ok")
            )
        ) | set(
            s.scalars(
                select(QualityResultRecord.image_sha256).where(
                    QualityResultRecord.source.in_(names), QualityResultRecord.image_sha256.is_not(None)
                )
            )
        )
        what = f"source {text}"
        if not shas:
            shas = set(
                s.scalars(
                    select(ProductImage.image_sha256)
                    .where(ProductImage.product_id == text)
                    .order_by(ProductImage.position)
                )
            )
            what = f"product {text}"
        if not shas and len(low) >= MIN_PREFIX and set(low) <= _HEX:
            shas = set(
                s.scalars(select(ImageRecord.sha256).where(ImageRecord.sha256.like(f"{low}%")).limit(10))
            ) | set(
                s.scalars(
                    select(QualityResultRecord.image_sha256)
                    .where(QualityResultRecord.image_sha256.like(f"{low}%"))
                    .limit(10)
                )
            )
            what = f"sha256 prefix {low}"
    shas.discard(None)  # type: ignore[arg-type]
    if len(shas) == 1:
        return shas.pop()
    if not shas:
        raise NotFoundError(
            f"no image {text!r}: not a sha256 (or a unique prefix of {MIN_PREFIX}+ hex characters), a file, "
            "the source of a catalog image or of a stored QC result, nor a product id"
        )
    about = _describe(db, sorted(shas))
    listed = "; ".join(f"{h} ({about.get(h, (None, []))[0] or '?'})" for h in sorted(shas)[:10])
    raise NotFoundError(f"{what} matches {len(shas)} images; give one's sha256: {listed}")


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _known(db: CatalogDB, shas: list[str]) -> bool:
    from catalens.catalog.schema import ImageRecord

    with db.session() as s:
        if s.scalar(select(ImageRecord.id).where(ImageRecord.sha256.in_(shas)).limit(1)) is not None:
            return True
        q = select(QualityResultRecord.id).where(QualityResultRecord.image_sha256.in_(shas)).limit(1)
        return s.scalar(q) is not None


def _describe(db: CatalogDB, shas: list[str]) -> dict[str, tuple[str | None, list[str]]]:
    """sha256 -> (its source: the catalog's, else a stored QC result's; its product ids)."""
    from catalens.catalog.schema import ImageRecord, ProductImage

    out: dict[str, tuple[str | None, list[str]]] = {}
    with db.session() as s:
        for i in range(0, len(shas), 500):
            part = shas[i : i + 500]
            sources = dict(
                s.execute(
                    select(QualityResultRecord.image_sha256, QualityResultRecord.source).where(
                        QualityResultRecord.image_sha256.in_(part)
                    )
                ).all()
            )
            sources.update(
                s.execute(
                    select(ImageRecord.sha256, ImageRecord.source).where(ImageRecord.sha256.in_(part))
                ).all()
            )
            pids: dict[str, list[str]] = {}
            for sha, pid in s.execute(
                select(ProductImage.image_sha256, ProductImage.product_id)
                .where(ProductImage.image_sha256.in_(part))
                .order_by(ProductImage.product_id)
            ):
                pids.setdefault(sha, []).append(pid)
            out.update({h: (sources.get(h), pids.get(h, [])) for h in part})
    return out


def dismissed_pairs(db: CatalogDB) -> dict[str, set[str]]:
    """image sha256 -> the checks dismissed on it."""
    out: dict[str, set[str]] = {}
    with db.session() as s:
        for sha, check in s.execute(select(QualityException.image_sha256, QualityException.check)):
            out.setdefault(sha, set()).add(check)
    return out


def is_dismissed(check: str | None, verdict: str | None, checks: Iterable[str]) -> bool:
    """Whether a result (``check``, ``verdict``) of an image on which ``checks`` are dismissed
    reads as dismissed: a warn or fail of one of them (never an error: the check did not run)."""
    return verdict in DISMISSABLE and check in checks


def apply_exceptions(row: dict[str, Any], dismissed: dict[str, set[str]]) -> dict[str, Any]:
    """``row`` (a stored result: sha256, verdict, issues, results) with each dismissed check's warn or
    fail read as ``pass`` plus ``dismissed`` (the verdict it had); verdict and issues recomputed.
    An ``error`` (the check could not run) is never dismissed."""
    checks = dismissed.get(row.get("sha256") or "")
    if not checks:
        return row
    results = []
    for r in row["results"]:
        if is_dismissed(r.get("check"), r.get("verdict"), checks):
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


def apply_to_images(images: Iterable[ImageQC], dismissed: dict[str, set[str]]) -> int:
    """The results of a run (``images``, changed in place) read the way :func:`apply_exceptions`
    reads stored ones: each dismissed check's warn or fail becomes ``pass`` with ``dismissed`` set
    to the verdict it had (the image's verdict and issues follow). Returns how many results were
    dismissed. Store the results before (they keep the verdicts the checks gave)."""
    n = 0
    for im in images:
        checks = dismissed.get(im.sha256 or "")
        if not checks:
            continue
        for r in im.results:
            if is_dismissed(r.check, r.verdict, checks):
                r.dismissed, r.verdict = r.verdict, "pass"
                n += 1
    return n


def _as_dict(r: QualityException) -> dict[str, Any]:
    return {
        "sha256": r.image_sha256,
        "check": r.check,
        "note": r.note,
        "created_at": r.created_at.isoformat() if r.created_at else None,
    }
