"""Catalog-wide duplicates from :mod:`catalens.search.dedup` (embeddings + copy verification) for
``catalens qc --all``, read as the same findings (:func:`catalens.search.duplicates.findings_from_report`)
and results as the check's own methods; falls back to the check's own result when the catalog has no
embeddings for the model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from catalens.errors import CatalensError
from catalens.quality.result import CheckResult, ImageQC

if TYPE_CHECKING:
    from catalens.core import Catalog


def apply_catalog_dedup(catalog: Catalog, images: list[ImageQC], verdict: str) -> str:
    """Replace the ``duplicates`` results of ``images`` with the catalog dedup groups.

    Returns the method used: "search-dedup" or "hash" (fallback; the results are left as they are)."""
    try:
        report = catalog.dedup()
    except (CatalensError, ImportError):
        return "hash"
    from catalens.quality.checks.duplicates import finding_result
    from catalens.search.duplicates import findings_from_report

    fresh: dict[str, CheckResult] = {}
    for f in findings_from_report(report, [im.sha256 for im in images]):
        sha = images[f.index].sha256
        assert sha is not None
        fresh[sha] = finding_result(f, f.details.get("of_source") or images[f.of].source, verdict, "search-dedup")
    for im in images:
        if im.sha256 is None or not any(r.check == "duplicates" for r in im.results):
            continue
        im.results = [r for r in im.results if r.check != "duplicates"]
        im.results.append(
            fresh.get(im.sha256)
            or CheckResult(
                "duplicates",
                0.0,
                "copy score (1 = exact)",
                "pass",
                "no duplicate in the catalog",
                details={"method": "search-dedup"},
            )
        )
    return "search-dedup"
