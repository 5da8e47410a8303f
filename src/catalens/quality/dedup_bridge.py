"""Catalogue-wide duplicates from :mod:`catalens.search.dedup` (embeddings + copy verification) for
``catalens qc --all``; falls back to the ``duplicates`` check's own hashes when the catalogue has no
embeddings for the model."""

from __future__ import annotations

from typing import Any

from catalens.errors import CatalensError
from catalens.quality.result import CheckResult, ImageQC


def apply_catalog_dedup(catalog: Any, images: list[ImageQC], verdict: str) -> str:
    """Replace the ``duplicates`` results of ``images`` with the catalogue dedup groups.

    Returns the method used: "search-dedup" or "hash" (fallback; the results are left as they are)."""
    try:
        report = catalog.dedup()
    except (CatalensError, ImportError):
        return "hash"
    by_sha = {im.sha256: im for im in images if im.sha256}
    fresh: dict[str, CheckResult] = {}
    for group in report.groups:
        members = [m for m in group.images if m.get("image_sha256") in by_sha]
        if len(members) < 2:
            continue
        order = {im.sha256: i for i, im in enumerate(images)}
        members.sort(key=lambda m: order[m["image_sha256"]])
        first = members[0]
        for m in members[1:]:
            pair = next(
                (p for p in group.pairs if {p.a, p.b} == {first["image_sha256"], m["image_sha256"]}), None
            )
            extra = ""
            if pair is not None and pair.cosine is not None:
                extra = f" (cosine {pair.cosine:.3f}, structure {pair.structure:.2f})"
            fresh[m["image_sha256"]] = CheckResult(
                "duplicates",
                float(group.score),
                "copy score (1 = exact)",
                verdict,  # type: ignore[arg-type]
                f"{group.kind} duplicate of {first.get('source')}{extra}",
                details={"of": first.get("source"), "kind": group.kind, "method": "search-dedup"},
            )
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
                "no duplicate in the catalogue",
                details={"method": "search-dedup"},
            )
        )
    return "search-dedup"
