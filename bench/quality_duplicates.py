"""The QC ``duplicates`` check (method auto: copy verdicts within the checked set) on planted copies:
what each candidate setting finds and what it costs, in one run.

    python bench/quality_duplicates.py --half dev [--variants '[{"neighbours": 10}, {"neighbours": 3}]']
    python bench/quality_duplicates.py --half lockbox --variants '[{}, {"neighbours": N, ...}]'  # once

Sets: ``bench/search_dedup_lockbox_planted.make_half`` (its edit kinds: resize, recompress, crop,
border, overlay_text and opaque label / sticker / price tag / logo pastes) on the dev or lock-box
half's products of myntra-dev, clothing-dev and myntra-fullres-dev (150 originals with one copy each
and 150 unplanted photos; each product at 60, 80, 300 px or as stored, by a hash of its id; fresh
edits, seed 21 / 22: these photos were shown by spent dedup lock-boxes, with other edits).

Per variant (check parameters over the defaults; ``{}`` = the defaults) prints one JSON line: pair
recall per edit kind (a copy counts when the check names its original, or the original its copy),
false pairs (flagged pairs of two different products), precision, the candidate count, and the
seconds of the check (decode + descriptor per photo, then the batch stage: medians of ``--runs``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_dedup_lockbox_planted import EDITS, make_half  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCES = ("myntra-dev", "clothing-dev", "myntra-fullres-dev")
HALVES = {"dev": 21, "lockbox": 22}


def build(half: str, out: Path) -> list[dict[str, str]]:
    if (out / "labels.csv").exists():
        return list(csv.DictReader(open(out / "labels.csv")))
    return make_half(
        DATA, half, out, n_orig=150, n_other=150, sources=SOURCES, copies=1, sizes=(60, 80, 300, 0),
        size_pick="hash", seed=HALVES[half], products=half,
    )  # fmt: skip


def run_variant(
    rows: list[dict[str, str]], folder: Path, params: dict[str, Any], runs: int
) -> dict[str, Any]:
    from catalens.config import Settings
    from catalens.quality.profiles import Profile
    from catalens.quality.runner import QCItem, run_checks

    items = [QCItem(r["image"], folder / r["image"]) for r in rows]
    prof = Profile("dups", checks={"duplicates": dict(params)})
    settings = Settings(home=Path("/tmp/qc-dup-home"), workers=2)
    seconds, rep = [], None
    for _ in range(runs):
        rep = run_checks(items, prof, settings)
        seconds.append(rep.seconds)
    assert rep is not None
    product = {r["image"]: r["product"] for r in rows}
    edit = {r["image"]: r["edit"] for r in rows}
    flagged: set[tuple[str, str]] = set()
    for im in rep.images:
        for r in im.results:
            of = (r.details or {}).get("of")
            if r.check == "duplicates" and r.verdict != "pass" and of:
                flagged.add(tuple(sorted((im.source, str(of)))))  # type: ignore[arg-type]
    copies = [r for r in rows if r["edit"] != "original"]
    originals = {r["product"]: r["image"] for r in rows if r["edit"] == "original"}
    found = {c["image"]: tuple(sorted((c["image"], originals[c["product"]]))) in flagged for c in copies}
    false = [p for p in flagged if product[p[0]] != product[p[1]]]
    true = len(flagged) - len(false)
    by_edit = {
        k: f"{sum(found[c['image']] for c in copies if c['edit'] == k)}/{sum(1 for c in copies if c['edit'] == k)}"
        for k in EDITS
    }
    return {
        "params": params,
        "recall": round(sum(found.values()) / max(1, len(found)), 4),
        "recall_by_edit": by_edit,
        "false_pairs": len(false),
        "precision": round(true / max(1, len(flagged)), 4),
        "false_examples": [f"{a} ({edit[a]}) ~ {b} ({edit[b]})" for a, b in false[:5]],
        "seconds_median": round(statistics.median(seconds), 2),
        "seconds": [round(s, 2) for s in seconds],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--half", choices=tuple(HALVES), required=True)
    ap.add_argument("--variants", default="[{}]", help="JSON list of duplicates-check parameter overrides")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default="/tmp/catalens-qc-dups")
    a = ap.parse_args()
    folder = Path(a.out) / a.half
    rows = build(a.half, folder)
    for params in json.loads(a.variants):
        line = {"half": a.half, "photos": len(rows), **run_variant(rows, folder, params, a.runs)}
        line["load_1min"] = round(os.getloadavg()[0], 2)
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
