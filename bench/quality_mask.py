"""QC on the product mask: framing/fill, background and the product's colour, each measured with the
packaged product detector's mask and without it, side by side in one run.

    python bench/quality_mask.py --half dev        # choose here
    python bench/quality_mask.py --half lockbox    # report once

Photos: the products the packaged detector was never trained on (``bench/detect.py``'s split, md5 of
``detect:<id>``): myntra-dev products in its ``dev`` / ``lockbox`` part (225x300) and myntra-fullres-dev
products in the same half (up to 1200 px). Only white-background photos are used (three or four
near-white corner patches, ``quality_background.corners_white``), because their product pixels are
known without any check: everything but the near-white pixels connected to the frame.

Each photo is checked as stored and as an 80 px thumbnail, with its background kept (``white``) or
replaced by ``quality_background.plant`` (``grey``, ``colour``, ``busy``: a clothing-dev user photo),
so the product and its true fill stay the same.

Measured per background and size:
- framing: the product's fill of the frame (max of box width / frame width, box height / frame height)
  against the truth's - share measured, median absolute error, share within 0.05 of the truth, and the
  fill verdict at the main-image limits (warn < 0.85, fail < 0.7) against the truth's verdict, for
  ``near_white`` (the old rule: skipped off white backgrounds), ``detector`` and ``auto`` (near-white on
  a white-background shot, the detector otherwise);
- background (main-image limits: warn < 0.97, fail < 0.85): fail rate for ``frame`` (the frame walk,
  product runs found from the pixels) and ``detector`` (product positions along the frame from the
  detector's mask): on ``white`` it is the false fail rate, on the planted backgrounds the recall;
- colour: the primary display colour (``dominant_colours``) equal to the baseColour label, for
  ``foreground`` (its own foreground separation: border colour, GrabCut on a busy photo), ``mask``
  (the detector's mask always) and ``mask_busy`` (the mask only where the foreground separation falls
  back to GrabCut, i.e. the backdrop is not plain) and ``mask_white`` (the shipped rule,
  ``dominant_colours(detect_on_white=True)``: the mask only on a plain near-white backdrop; added after
  the first dev run, which showed the mask helping on white and hurting on grey).

Variants tried on dev: framing 3, background 2, colour 4 (all printed here); the choice (framing ``auto``,
background ``frame``, colour ``mask_white``) was made on dev and the lock-box reported once.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from detect import DATA, half_part, myntra_part  # noqa: E402
from quality_background import busy_pool, corners_white, plant, thumb  # noqa: E402

from catalens.classify.colour.features import _small, dominant_colours, foreground_mask  # noqa: E402
from catalens.detect.cutouts import backdrop_mask  # noqa: E402
from catalens.quality.checks.background import product_box  # noqa: E402
from catalens.quality.context import QCImage  # noqa: E402
from catalens.quality.registry import get_check  # noqa: E402
from catalens.quality.result import grade  # noqa: E402

BACKGROUNDS = ("white", "grey", "colour", "busy")
FILL_WARN, FILL_FAIL = 0.85, 0.7
MAIN_BG = {"band": 0.04, "warn": 0.97, "fail": 0.85}
FRAMING = ("near_white", "detector", "auto")
BACKGROUND = ("frame", "detector")
COLOUR = ("foreground", "mask", "mask_busy", "mask_white")


def photos(half: str, n_small: int, n_full: int) -> list[tuple[Path, str]]:
    out = []
    for folder, n, part in (("myntra-dev", n_small, myntra_part), ("myntra-fullres-dev", n_full, half_part)):
        rows = list(csv.DictReader(open(DATA / folder / "labels.csv", encoding="utf-8")))
        picked = [r for r in rows if part(r["id"]) == half][:n]
        out += [(DATA / folder / r["image"], r["baseColour"]) for r in picked]
    return out


def fill_of(mask: np.ndarray) -> float | None:
    box = product_box(mask)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    h, w = mask.shape
    return max((x1 - x0) / w, (y1 - y0) / h)


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray(mask.astype(np.uint8) * 255).resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(img) >= 128


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--half", choices=("dev", "lockbox"), required=True)
    ap.add_argument("--n-small", type=int, default=300)
    ap.add_argument("--n-full", type=int, default=60)
    args = ap.parse_args()
    t0 = time.perf_counter()
    rng = np.random.default_rng(7 if args.half == "dev" else 8)
    pool = busy_pool()
    framing = {m: get_check("framing")(region=m) for m in FRAMING}
    background = {m: get_check("background")(**MAIN_BG, region=m) for m in BACKGROUND}
    fill: dict = defaultdict(list)  # (bg, size, rule) -> [(estimate or None, truth)]
    bg_fail: dict = defaultdict(list)  # (bg, size, rule) -> [failed]
    colour: dict = defaultdict(list)  # (bg, size, rule) -> [correct]
    used = 0
    for path, base_colour in photos(args.half, args.n_small, args.n_full):
        arr = np.asarray(Image.open(path).convert("RGB"))
        if corners_white(arr) < 3:
            continue
        used += 1
        truth_mask = ~backdrop_mask(arr)
        for bg in BACKGROUNDS:
            planted = arr if bg == "white" else plant(arr, bg, rng, pool)
            for size in ("stored", "80px"):
                img = planted if size == "stored" else thumb(planted)
                qc = QCImage.from_pil(Image.fromarray(img))
                truth = fill_of(resize_mask(truth_mask, qc.rgb.shape[:2]))
                for m, check in framing.items():
                    r = check.run(qc)
                    fill[(bg, size, m)].append((r.score if r.score else None, truth))
                for m, check in background.items():
                    bg_fail[(bg, size, m)].append(check.run(qc).verdict == "fail")
                pil = Image.fromarray(img)
                own = foreground_mask(_small(pil))[1]
                pm = qc.product_mask
                for m in COLOUR:
                    if m == "mask_white":
                        got = dominant_colours(pil, detect_on_white=True)
                    else:
                        use = pm if m == "mask" or (m == "mask_busy" and own.startswith("grabcut")) else None
                        got = dominant_colours(pil, product_mask=use)
                    colour[(bg, size, m)].append(got.primary == base_colour)
    out: dict = {"half": args.half, "photos": used, "framing": {}, "background": {}, "colour": {}}
    for (bg, size, m), rows in sorted(fill.items()):
        measured = [(e, t) for e, t in rows if e is not None and t is not None]
        err = np.array([abs(e - t) for e, t in measured]) if measured else np.array([np.nan])
        agree = [
            grade(e if e is not None else 1.0, FILL_WARN, FILL_FAIL, higher_is_worse=False)
            == grade(t, FILL_WARN, FILL_FAIL, higher_is_worse=False)
            for e, t in rows
            if t is not None
        ]
        out["framing"][f"{bg}/{size}/{m}"] = {
            "n": len(rows),
            "measured": round(len(measured) / len(rows), 4),
            "median_abs_error": round(float(np.median(err)), 4),
            "within_0.05": round(float(np.mean(err <= 0.05)) * len(measured) / len(rows), 4),
            "verdict_agrees": round(float(np.mean(agree)), 4),
        }
    for (bg, size, m), fails in sorted(bg_fail.items()):
        out["background"][f"{bg}/{size}/{m}"] = {"n": len(fails), "fail_rate": round(float(np.mean(fails)), 4)}
    for (bg, size, m), ok in sorted(colour.items()):
        out["colour"][f"{bg}/{size}/{m}"] = {"n": len(ok), "accuracy": round(float(np.mean(ok)), 4)}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
