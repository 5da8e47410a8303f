"""``duplicates``: exact and near duplicates within the checked set (with ``--all``: the catalog), read
from the findings of :mod:`catalens.search.duplicates` (one interface for every method).

Exact: the same file bytes (SHA-256). Near (``method: auto``, default): the copy verdicts of
:mod:`catalens.search.dedup` - the same descriptors, alignment and :func:`~catalens.search.dedup.classify`
as ``catalens dedup``, so a colour variant of the same template is not a duplicate and a copy with a
pasted label is. Candidates within the checked set are each image's nearest neighbours by the
whole-image gray thumbnail of the descriptor (no embedding model needed); with ``catalens qc --all``
on an embedded catalog the groups come from ``catalens dedup`` itself. Score: the aligned
structure of the pair (1 = identical). ``method: hash``: the old 64-bit difference hash (dHash)
within ``max_distance`` bits (score: Hamming distance). Every member of a group after the first
gets the verdict ``verdict`` and the reason names the first one.
"""

from __future__ import annotations

import functools
from typing import Any

from catalens.quality.context import QCImage
from catalens.quality.registry import Check, register_check
from catalens.quality.result import CheckResult
from catalens.search.duplicates import SET_METHODS, DuplicateFinding, SetDuplicates


@register_check("duplicates")
class DuplicatesCheck(Check):
    unit = "hamming distance (bits of 64)"
    scope = "batch"
    # candidates (method auto): each photo's ``neighbours`` nearest photos of the set by the descriptor's
    # gray thumbnail with correlation >= ``min_similarity``; every candidate is aligned. 5 neighbours
    # (10 before): on bench/quality_duplicates.py's dev half 3 kept every copy 10 found, in less time;
    # 5 leaves room for families of look-alike colour variants, whose gray thumbnails rank close
    # together (bench/RESULTS.md "quality: speed of the model checks")
    params = {"max_distance": 4, "verdict": "warn", "method": "auto", "neighbours": 5, "min_similarity": 0.5}

    @functools.cached_property
    def _method(self) -> SetDuplicates:
        """The duplicates method of these parameters, built once per check (fingerprints are per photo)."""
        name = "hash" if self.p["method"] == "hash" else "copy"
        return SET_METHODS.get(name)(**self.p)

    def fingerprint(self, img: QCImage) -> dict[str, Any]:
        return self._method.fingerprint(img)

    def run_batch(self, items: list[tuple[str, dict[str, Any] | None]]) -> list[CheckResult | None]:
        """``items``: (source, fingerprint or None for undecodable files) -> one result per item."""
        method = self._method
        findings, passed = method.scan([fp for _, fp in items], [src for src, _ in items])
        found = {f.index: f for f in findings}
        out: list[CheckResult | None] = [None] * len(items)
        for i, score in passed.items():
            f = found.get(i)
            out[i] = (
                finding_result(f, items[f.of][0], self.p["verdict"], method.name)
                if f is not None
                else CheckResult("duplicates", score, method.unit, "pass", "no duplicate in the set")
            )
        return out


def finding_result(f: DuplicateFinding, of_source: str, verdict: str, method: str) -> CheckResult:
    """The ``duplicates`` check's result for one finding (``method``: hash, copy or search-dedup)."""
    details: dict[str, Any] = {"of": of_source, "kind": f.kind}
    if method != "hash":
        details["method"] = method
    if f.kind == "exact" and method != "search-dedup":
        reason = f"exact duplicate (same file bytes) of {of_source}"
    elif method == "copy":
        reason = f"near duplicate (copy) of {of_source} ({f.note})"
    elif method == "hash":
        reason = f"near duplicate of {of_source} ({f.note})"
    else:
        reason = f"{f.kind} duplicate of {of_source}" + (f" ({f.note})" if f.note else "")
    return CheckResult("duplicates", f.score, f.unit, verdict, reason, details=details)  # type: ignore[arg-type]
