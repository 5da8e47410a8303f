"""``duplicates``: exact and near duplicates within the checked set (with ``--all``: the catalogue).

Exact: the same file bytes (SHA-256). Near (``method: auto``, default): the copy verdicts of
:mod:`catalens.search.dedup` - the same descriptors, alignment and :func:`~catalens.search.dedup.classify`
as ``catalens dedup``, so a colour variant of the same template is not a duplicate and a copy with a
pasted label is. Candidates within the checked set are each image's nearest neighbours by the
whole-image gray thumbnail of the descriptor (no embedding model needed); with ``catalens qc --all``
on an embedded catalogue the groups come from ``catalens dedup`` itself. Score: the aligned
structure of the pair (1 = identical). ``method: hash``: the old 64-bit difference hash (dHash)
within ``max_distance`` bits (score: Hamming distance). Every member of a group after the first
gets the verdict ``verdict`` and the reason names the first one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from catalens.quality.context import QCImage
from catalens.quality.registry import Check, register_check
from catalens.quality.result import CheckResult


def dhash(gray: np.ndarray) -> int:
    """64-bit difference hash: 9x8 area-downscaled luma, 1 bit per horizontal neighbour comparison."""
    import cv2

    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


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

    def fingerprint(self, img: QCImage) -> dict[str, Any]:
        fp: dict[str, Any] = {"sha256": img.sha256, "dhash": dhash(img.gray)}
        if self.p["method"] != "hash" and img.decoded is not None:
            from catalens.search import copy_descriptor

            fp["copy"] = copy_descriptor.describe(img.decoded.image)
        return fp

    def run_batch(self, items: list[tuple[str, dict[str, Any] | None]]) -> list[CheckResult | None]:
        """``items``: (source, fingerprint or None for undecodable files) -> one result per item."""
        if self.p["method"] != "hash":
            return self._copy_batch(items)
        return self._hash_batch(items)

    def _copy_batch(self, items: list[tuple[str, dict[str, Any] | None]]) -> list[CheckResult | None]:
        from catalens.search import copy_descriptor, copydetail
        from catalens.search.dedup import DedupOptions, classify, neighbour_rank, refine, verify
        from catalens.search.neighbours import neighbour_pairs

        idx = [i for i, (_, fp) in enumerate(items) if fp is not None and "copy" in fp]
        out: list[CheckResult | None] = [None] * len(items)
        unit = "copy score (1 = exact)"
        first_by_sha: dict[str, int] = {}
        exact: dict[int, int] = {}
        for i in idx:
            sha = items[i][1]["sha256"]  # type: ignore[index]
            if sha and sha in first_by_sha:
                exact[i] = first_by_sha[sha]
            elif sha:
                first_by_sha[sha] = i
        keys = [str(i) for i in idx]
        descs = {str(i): items[i][1]["copy"] for i in idx}  # type: ignore[index]
        best: dict[int, tuple[int, float]] = {}  # later image -> (earlier copy, structure)
        if len(idx) >= 2:
            full = copy_descriptor.parse([descs[k] for k in keys]).full
            assert full is not None
            vec = full.gray.reshape(len(idx), -1).astype(np.float32)
            vec -= vec.mean(axis=1, keepdims=True)
            ra, rb, sim = neighbour_pairs(vec, int(self.p["neighbours"]), float(self.p["min_similarity"]))
            a = [keys[r] for r in ra]
            b = [keys[r] for r in rb]
            opts = DedupOptions()
            ones = np.ones(len(a), dtype=np.float32)  # no embedding: every candidate is aligned
            ver = verify(descs, a, b, ones, opts)
            nan = np.full(len(a), np.nan, dtype=np.float32)
            verdict = classify(opts, nan, ver)

            def load(key: str) -> copydetail.DetailView | None:  # the full-detail check reads the files again
                return copydetail.load_view(items[int(key)][0])

            verdict, _ = refine(opts, nan, ver, verdict, a, b, load, rank=neighbour_rank(ra, rb, sim))
            for k in np.flatnonzero(verdict == "copy"):
                i, j = sorted((idx[int(ra[k])], idx[int(rb[k])]))
                st = float(ver.structure[k])
                if j not in best or i < best[j][0]:
                    best[j] = (i, st)
        for i in idx:
            if i in exact:
                out[i] = CheckResult(
                    "duplicates",
                    1.0,
                    unit,
                    self.p["verdict"],
                    f"exact duplicate (same file bytes) of {items[exact[i]][0]}",
                    details={"of": items[exact[i]][0], "kind": "exact", "method": "copy"},
                )
            elif i in best:
                j, st = best[i]
                out[i] = CheckResult(
                    "duplicates",
                    round(st, 4),
                    unit,
                    self.p["verdict"],
                    f"near duplicate (copy) of {items[j][0]} (structure {st:.2f})",
                    details={"of": items[j][0], "kind": "near", "method": "copy"},
                )
            else:
                out[i] = CheckResult("duplicates", 0.0, unit, "pass", "no duplicate in the set")
        return out

    def _hash_batch(self, items: list[tuple[str, dict[str, Any] | None]]) -> list[CheckResult | None]:
        idx = [i for i, (_, fp) in enumerate(items) if fp is not None]
        out: list[CheckResult | None] = [None] * len(items)
        if not idx:
            return out
        hashes = np.array([items[i][1]["dhash"] for i in idx], dtype=np.uint64)  # type: ignore[index]
        shas = [items[i][1]["sha256"] for i in idx]  # type: ignore[index]
        first_by_sha: dict[str, int] = {}
        maxd = int(self.p["max_distance"])
        for k, i in enumerate(idx):
            x = hashes ^ hashes[k]
            dist = np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
            dist[k] = 65
            nearest = int(dist.min()) if len(dist) > 1 else 64
            sha = shas[k]
            exact_of = first_by_sha.get(sha) if sha else None
            if sha and sha not in first_by_sha:
                first_by_sha[sha] = i
            earlier = [idx[j] for j in np.flatnonzero(dist <= maxd) if j < k]
            score = float(min(nearest, 64))
            if exact_of is not None:
                out[i] = CheckResult(
                    "duplicates",
                    0.0,
                    self.unit,
                    self.p["verdict"],
                    f"exact duplicate (same file bytes) of {items[exact_of][0]}",
                    details={"of": items[exact_of][0], "kind": "exact"},
                )
            elif earlier:
                j = earlier[0]
                out[i] = CheckResult(
                    "duplicates",
                    score,
                    self.unit,
                    self.p["verdict"],
                    f"near duplicate of {items[j][0]} (hash distance {int(dist[idx.index(j)])})",
                    details={"of": items[j][0], "kind": "near"},
                )
            else:
                out[i] = CheckResult("duplicates", score, self.unit, "pass", "no duplicate in the set")
        return out
