"""``duplicates``: exact and near duplicates within the checked set (with ``--all``: the catalogue).

Exact: the same file bytes (SHA-256). Near: a 64-bit difference hash (dHash) of the gray working
copy within ``max_distance`` bits (re-encodes, resizes, light edits). Score: Hamming distance to the
closest other image (0 = identical pixels at hash resolution; 64 = nothing alike). Every member of a
group after the first gets the verdict ``verdict`` and the reason names the first one.

``method: auto`` (default): with ``catalens qc --all`` on an embedded catalogue the groups come from
:mod:`catalens.search.dedup` (embeddings + copy verification) instead; ``method: hash`` always uses
the hashes above.
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
    params = {"max_distance": 4, "verdict": "warn", "method": "auto"}

    def fingerprint(self, img: QCImage) -> dict[str, Any]:
        return {"sha256": img.sha256, "dhash": dhash(img.gray)}

    def run_batch(self, items: list[tuple[str, dict[str, Any] | None]]) -> list[CheckResult | None]:
        """``items``: (source, fingerprint or None for undecodable files) -> one result per item."""
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
