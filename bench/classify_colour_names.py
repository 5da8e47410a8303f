"""How often the uncalibrated display colour (``catalens colour``: the product's pixels, palette names)
equals the catalogue's baseColour label, with the most frequent confusions.

    python bench/classify_colour_names.py                  # dev: every 8th myntra-dev image (as stored)
    python bench/classify_colour_names.py --half heldout   # rows no colour-name choice looked at

This is not the calibrated colour classifier (``catalens classify train``, whose colour fields read the
colour descriptor; bench/classify_colour_mask.py); it checks that the names a merchandiser sees are
sensible.

Halves: ``dev`` is every 8th row of myntra-dev, the rows the palette names, the skin rule and the
"Multi" rule were chosen on. ``heldout`` is every other myntra-dev row that the packaged product
detector never trained on (``bench/detect.py``'s dev and lock-box parts, ``bench/data/detect_heldout.txt``),
as stored (225x300) and as 60x80 thumbnails, and every myntra-fullres-dev photo, at full size and as a
60x80 thumbnail. Both ``catalens colour``'s answer (the detector's mask on white backdrops) and the
backdrop separation alone are scored.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image

from catalens.classify.colour.features import dominant_colours
from catalens.classify.thumbnail_views import VIEWS, view_image

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CATALENS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def rows_of(half: str) -> dict[str, list[tuple[Path, str]]]:
    """Sets of (photo, baseColour label) by name."""
    dev = list(csv.DictReader(open(DATA / "myntra-dev" / "labels.csv", encoding="utf-8")))
    if half == "dev":
        return {
            "myntra-dev every 8th, 225x300": [
                (DATA / "myntra-dev" / r["image"], r["baseColour"]) for r in dev[::8]
            ]
        }
    unseen = set((ROOT / "bench" / "data" / "detect_heldout.txt").read_text().split())
    mine = [
        (DATA / "myntra-dev" / r["image"], r["baseColour"])
        for i, r in enumerate(dev)
        if i % 8 and r["image"] in unseen and r["baseColour"]
    ]
    full = [
        (DATA / "myntra-fullres-dev" / r["image"], r["baseColour"])
        for r in csv.DictReader(open(DATA / "myntra-fullres-dev" / "labels.csv", encoding="utf-8"))
        if r["baseColour"]
    ]
    return {
        "myntra-dev held out, 225x300": mine,
        "myntra-dev held out, 60x80": mine,
        "myntra-fullres-dev, full size": full,
        "myntra-fullres-dev, 60x80": full,
    }


def score(items: list[tuple[Path, str]], thumb: bool, detect: bool) -> dict[str, Any]:
    ok, conf = 0, collections.Counter[tuple[str, str]]()
    t = time.perf_counter()
    for path, label in items:
        img = Image.open(path).convert("RGB")
        if thumb:
            img = view_image(img, VIEWS["thumb"])
        primary = dominant_colours(img, detect_on_white=detect).primary
        ok += primary == label
        if primary != label:
            conf[(label, primary)] += 1
    return {
        "images": len(items),
        "primary_equals_baseColour": round(ok / max(len(items), 1), 3),
        "ms_per_image": round((time.perf_counter() - t) / max(len(items), 1) * 1000, 1),
        "top_confusions": [[a, b, c] for (a, b), c in conf.most_common(8)],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--half", choices=("dev", "heldout"), default="dev")
    args = ap.parse_args()
    for name, items in rows_of(args.half).items():
        for detect in (True, False):
            row = score(items, thumb=name.endswith("60x80"), detect=detect)
            how = "catalens colour (mask on white)" if detect else "backdrop separation only"
            print(json.dumps({"half": args.half, "set": name, "method": how, **row}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
