"""Turn ``catalens qc`` inputs (files, folders, ``--all``) into :class:`QCItem` s."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from catalens.catalog.db import CatalogDB
from catalens.errors import NotFoundError
from catalens.ingest.sources import iter_folder, refuse_empty
from catalens.quality.result import CheckResult, ImageQC
from catalens.quality.runner import QCItem


def collect_items(
    db: CatalogDB, paths: Sequence[str | Path], all_images: bool, *, allow_empty: bool = False
) -> tuple[list[QCItem], list[ImageQC]]:
    """(items to check, ready-made "file" failures for catalog images that never ingested).

    A folder without images raises :class:`EmptyInputError` (a warning with ``allow_empty``)."""
    items: list[QCItem] = []
    failed: list[ImageQC] = []
    empty: list[str] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = [QCItem(source=it.source, path=it.path) for it in iter_folder(p) if it.path]
            if not found:
                empty.append(str(raw))
            items.extend(found)
        elif p.exists() or p.is_symlink():
            items.append(QCItem(source=str(p), path=p))
        else:
            raise NotFoundError(f"{p}: no such file or folder")
    refuse_empty(empty, allow_empty)
    if all_images:
        for rec in db.ok_images():
            path = Path(rec.stored_path or rec.source)
            items.append(QCItem(source=rec.source, path=path, sha256=rec.sha256))
        from sqlalchemy import select

        from catalens.catalog.schema import ImageRecord

        with db.session() as s:
            for rec in s.scalars(select(ImageRecord).where(ImageRecord.status == "failed")):
                qc = ImageQC(source=rec.source, sha256=None, width=None, height=None, format=None)
                qc.results.append(
                    CheckResult(
                        "file",
                        None,
                        "bytes",
                        "fail",
                        rec.error or "failed at ingest",
                        details={"kind": rec.error_kind},
                    )
                )
                failed.append(qc)
    seen: set[str] = set()
    unique = []
    for it in items:
        if it.source not in seen:
            seen.add(it.source)
            unique.append(it)
    return unique, failed
