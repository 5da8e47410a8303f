"""The thumbnail frame check's scores on the candidate pairs of dev halves, for choosing its limits.

    python bench/search_dedup_lockbox.py --half dev_small --work W1
    python bench/search_dedup_lockbox.py --half dev_thumbs --work W2
    python bench/search_dedup_frame.py --work W1 --work W2

For every candidate pair of each catalog (each image's 10 nearest by embedding, cosine >= 0.65, as
``dedup`` picks candidates) where one photo is under ``copydetail.FRAME_MAX_NATIVE`` and keypoints
do not register the pair, ``copydetail.compare`` falls back to the frame warp; this prints how many
such pairs of one product (resize / recompress copies and originals) and of two products pass the
frame rule at each (median, p95) limit, with ``detail_frame_max_damage`` and ``detail_max_bad_out``
as in ``DedupOptions``. One JSON line per limit pair, then one with the pairs of two products
that pass the loosest limit.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
from pathlib import Path

import numpy as np

MEDIANS = (2.5, 3.0, 3.5, 4.0)
P95S = (6.0, 8.0, 10.0, None)
PLAIN = ("original", "resize", "recompress")  # edits a frame warp can register


def frame_pairs(work: Path) -> list[dict]:
    from catalens.core import Catalog
    from catalens.search import copydetail
    from catalens.search.dedup import DedupOptions

    opts = DedupOptions()
    rows = {r["image"]: r for r in csv.DictReader(open(work / "images" / "labels.csv"))}
    cat = Catalog.open(work / "home")
    shas, x = cat.vectors()
    cat.close()
    names = {hashlib.sha256((work / "images" / n).read_bytes()).hexdigest(): n for n in rows}
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = x @ x.T
    near = np.argsort(-cos, axis=1)[:, 1 : opts.neighbours + 1]
    views: dict[str, copydetail.DetailView | None] = {}

    def view(n: str) -> copydetail.DetailView | None:
        if n not in views:
            views[n] = copydetail.load_view(str(work / "images" / n))
        return views[n]

    seen: set[tuple[int, int]] = set()
    out = []
    for i, j in ((r, int(c)) for r in range(len(shas)) for c in near[r]):
        key = (min(i, j), max(i, j))
        if key in seen or cos[i, j] < opts.candidate_cosine:
            continue
        seen.add(key)
        a, b = names[shas[key[0]]], names[shas[key[1]]]
        va, vb = view(a), view(b)
        if va is None or vb is None or min(va.native, vb.native) >= copydetail.FRAME_MAX_NATIVE:
            continue
        d = copydetail.compare(va, vb, opts.detail_min_inliers, opts.detail_min_inlier_ratio)
        if d.method != "frame" or not d.aligned:
            continue
        same = rows[a]["product"] == rows[b]["product"]
        out.append(
            {
                "work": work.name,
                "a": a,
                "b": b,
                "same": same,
                "plain": rows[a]["edit"] in PLAIN and rows[b]["edit"] in PLAIN,
                "damage": d.damage,
                "bad_out": d.bad_out,
                "median": d.diff_median,
                "p95": d.diff_p95,
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, action="append", required=True)
    args = ap.parse_args()
    from catalens.search.dedup import DedupOptions

    opts = DedupOptions()
    pairs = [p for w in args.work for p in frame_pairs(w)]
    copies = [p for p in pairs if p["same"] and p["plain"]]
    others = [p for p in pairs if not p["same"]]
    for med, p95 in itertools.product(MEDIANS, P95S):

        def ok(p: dict, med: float = med, p95: float | None = p95) -> bool:
            return (
                p["damage"] <= opts.detail_frame_max_damage
                and p["bad_out"] <= opts.detail_max_bad_out
                and p["median"] <= med
                and (p95 is None or p["p95"] <= p95)
            )

        print(
            json.dumps(
                {
                    "max_median": med,
                    "max_p95": p95,
                    "copies_pass": f"{sum(map(ok, copies))}/{len(copies)}",
                    "other_products_pass": f"{sum(map(ok, others))}/{len(others)}",
                }
            )
        )
    loose = [
        (p["work"], p["a"], p["b"], round(p["median"], 2), round(p["p95"], 1))
        for p in others
        if p["damage"] <= opts.detail_frame_max_damage
        and p["bad_out"] <= opts.detail_max_bad_out
        and p["median"] <= max(MEDIANS)
    ]
    print(json.dumps({"other_products_passing_loosest_median": loose}))


if __name__ == "__main__":
    main()
