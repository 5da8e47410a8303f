"""Printed product text vs overlaid text: the main-image ``text`` rule on clean printed apparel and on
the same photos with an overlay planted by this script, for each way of telling print from overlay.

    python bench/quality_text_print.py --half dev        # choose here
    python bench/quality_text_print.py --half lockbox    # report once

Photos: myntra-dev apparel (225x300) and myntra-fullres-dev apparel (to 1200 px) on white backdrops
(three or four near-white corner patches), split by the md5 of ``text-print:<id>``. *Printed* photos are
those whose catalog title says so ("print", "graphic", "typography", "slogan", "logo"): the truth that
they carry print comes from the catalog, not from any check. Other apparel photos are kept as a second
clean group.

Each photo also gives one planted copy (JPEG 80-95), one overlay in one layout, phrase and face drawn
by this script (phrases: ``quality_text_unseen.PHRASES``, written for the benchmarks, none from the
word lists in src/; faces: ``synth_marks.BENCH_FONTS``; 5-9% of the photo's height):
- ``band``: a filled band across the photo's width, near the top or bottom (crosses the product);
- ``badge``: a filled rounded box, anywhere, over the product or not;
- ``margin``: outlined text on the backdrop, clear of the product;
- ``edge``: outlined text straddling the product's outline (a third to two thirds of it on the product);
- ``over``: outlined text with no plate wholly on the product. Nothing but the look of the strokes
  tells it from print; it is reported apart and not counted in the overlay recall.
The product's outline for placing text is the near-white backdrop connected to the frame (truth from
the pixels of the clean photo, not from any check).

Rules compared (the ``text`` check with the marketplace-main-image limits: warn 0.0005, fail 0.003):
``all`` (every text counts: the main-image rule before), ``silhouette`` (print = 90% inside the white
backdrop's product silhouette) and ``product`` (print = inside the product - silhouette on white, the
product detector's mask elsewhere - and not on a plate of its own: ``text.on_plate``). Printed: per rule,
the share of clean photos failed (printed / other apparel) and the recall at fail per layout.

Variants tried on dev: the three rules above (and ``on_plate``'s thresholds as written, not tuned).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_false_alarms as false_alarms  # noqa: E402
from quality_background import corners_white  # noqa: E402
from quality_text_unseen import PHRASES, text_style  # noqa: E402

from catalens.detect.cutouts import backdrop_mask  # noqa: E402

DATA = false_alarms.DATA
LAYOUTS = ("band", "badge", "margin", "edge", "over")
OVERLAYS = ("band", "badge", "margin", "edge")  # the overlay recall counts these
MAIN = {"warn": 0.0005, "fail": 0.003, "promo_verdict": "fail"}
RULES: dict[str, dict[str, Any]] = {
    "all": {"exclude_print": False},
    "silhouette": {"exclude_print": True, "print_rule": "silhouette"},
    "product": {"exclude_print": True, "print_rule": "product"},
}
PRINTED = re.compile(r"print|graphic|typograph|slogan|logo", re.I)


def part(pid: str) -> str:
    return "dev" if int(hashlib.md5(f"text-print:{pid}".encode()).hexdigest()[:8], 16) % 2 == 0 else "lockbox"


def photos(half: str, n_printed: int, n_other: int, n_full: int) -> list[tuple[str, Path, bool]]:
    out: list[tuple[str, Path, bool]] = []
    for folder, caps in (("myntra-dev", (n_printed, n_other)), ("myntra-fullres-dev", (n_full, n_full))):
        rows = list(csv.DictReader(open(DATA / folder / "labels.csv", encoding="utf-8")))
        rows = [r for r in rows if r["masterCategory"] == "Apparel" and part(r["id"]) == half]
        printed = [r for r in rows if PRINTED.search(r["productDisplayName"])]
        other = [r for r in rows if not PRINTED.search(r["productDisplayName"])]
        for group, cap, flag in ((printed, caps[0], True), (other, caps[1], False)):
            out += [(f"{folder}:{r['id']}", DATA / folder / r["image"], flag) for r in group[:cap]]
    return out


def plant(img: Image.Image, product: np.ndarray, layout: str, phrase: str, rng: np.random.Generator) -> Image.Image:
    out = img.copy()
    w, h = out.size
    d = ImageDraw.Draw(out)
    font, size, x0, y0, tw, th, ink, back = text_style(d, w, h, phrase, rng, 0.9 if layout == "band" else 0.6)
    stroke = (0, 0, 0) if ink != (20, 20, 20) else (255, 255, 255)
    if layout == "band":
        y = int(rng.choice([0.04, 0.82]) * h)
        d.rectangle((0, y, w, y + th + int(0.6 * th)), fill=back)
        d.text(((w - tw) // 2 - x0, y + int(0.3 * th) - y0), phrase, font=font, fill=ink)
        return out
    if layout == "badge":
        pad = int(0.35 * th)
        x = int(rng.uniform(0, max(1, w - tw - 2 * pad)))
        y = int(rng.uniform(0, max(1, h - th - 2 * pad)))
        d.rounded_rectangle((x, y, x + tw + 2 * pad, y + th + 2 * pad), radius=pad, fill=back)
        d.text((x + pad - x0, y + pad - y0), phrase, font=font, fill=ink)
        return out
    # plain outlined text placed by how much of its box lies on the product
    want = {"margin": (0.0, 0.02), "edge": (0.33, 0.67), "over": (0.98, 1.01)}[layout]
    integral = np.pad(product.astype(np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    for _ in range(400):
        x = int(rng.uniform(0, max(1, w - tw)))
        y = int(rng.uniform(0, max(1, h - th)))
        inside = (
            integral[y + th, x + tw] - integral[y, x + tw] - integral[y + th, x] + integral[y, x]
        ) / max(1, tw * th)
        if want[0] <= inside < want[1]:
            d.text((x - x0, y - y0), phrase, font=font, fill=ink, stroke_width=max(1, size // 12), stroke_fill=stroke)
            return out
    raise LookupError(layout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--half", choices=("dev", "lockbox"), required=True)
    ap.add_argument("--n-printed", type=int, default=110)
    ap.add_argument("--n-other", type=int, default=50)
    ap.add_argument("--n-full", type=int, default=25)
    args = ap.parse_args()
    from catalens.quality.context import QCImage
    from catalens.quality.registry import get_check

    checks = {name: get_check("text")(**MAIN, **params) for name, params in RULES.items()}
    for c in checks.values():
        c.setup()
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    skipped = 0
    for key, path, printed in photos(args.half, args.n_printed, args.n_other, args.n_full):
        img = Image.open(path).convert("RGB")
        arr = np.asarray(img)
        if corners_white(arr) < 3:
            skipped += 1
            continue
        rng = np.random.default_rng(int(hashlib.md5(f"plant:{key}".encode()).hexdigest()[:8], 16))
        layout = str(rng.choice(LAYOUTS))
        phrase = str(rng.choice(PHRASES))
        try:
            planted = plant(img, ~backdrop_mask(arr), layout, phrase, rng)
        except LookupError:
            planted = None  # no place for this layout on this photo (a product filling the frame)
        for kind, im in (("clean", img), ("planted", planted)):
            if im is None:
                continue
            qc = QCImage.from_bytes(false_alarms._jpeg(im, int(rng.integers(80, 96))), f"{kind}:{key}")
            for rule, check in checks.items():
                res = check.run(qc)
                rows.append(
                    {
                        "rule": rule,
                        "kind": kind,
                        "printed": printed,
                        "layout": layout if kind == "planted" else "",
                        "fail": res.verdict == "fail",
                        "print_area": res.details.get("print_area", 0.0),
                        "overlay_area": res.details.get("overlay_area", res.score),
                    }
                )
    load = os.getloadavg()[0]
    for rule in checks:
        mine = [r for r in rows if r["rule"] == rule]
        clean = [r for r in mine if r["kind"] == "clean"]
        planted = [r for r in mine if r["kind"] == "planted"]
        over = [r for r in planted if r["layout"] in OVERLAYS]

        def rate(rs: list[dict[str, Any]]) -> float:
            return round(sum(r["fail"] for r in rs) / max(1, len(rs)), 4)

        line = {
            "half": args.half,
            "rule": rule,
            "clean_printed": sum(r["printed"] for r in clean),
            "clean_other": sum(not r["printed"] for r in clean),
            "false_fail_printed": rate([r for r in clean if r["printed"]]),
            "false_fail_other": rate([r for r in clean if not r["printed"]]),
            "overlay_recall": rate(over),
            "overlays": len(over),
            "recall_by_layout": {
                lay: f"{sum(r['fail'] for r in planted if r['layout'] == lay)}/"
                f"{sum(1 for r in planted if r['layout'] == lay)}"
                for lay in LAYOUTS
            },
            "skipped_not_white": skipped,
            "seconds": round(time.perf_counter() - t0, 1),
            "load_1min": round(load, 2),
        }
        print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
