"""Background judged on the background: white-background catalog photos (models running off the frame
included) against the same photos with their background replaced; the old rule and the new, side by side.

Photos: ``myntra-dev`` (225x300) and ``myntra-fullres-dev`` (up to 1200 px), split into ``dev`` and
``lockbox`` halves by the md5 of the product id (``quality_false_alarms.half``); each photo is checked as
stored and as an 80 px thumbnail.

Ground truth, decided without the check: a photo is a *white-background* photo when at least three of
its four corner patches (6% of the short side, square) are near-white (each channel's median >= 240,
channel spread <= 12), and a *coloured-backdrop* photo when none is (grey studio backdrops and the like).
Photos in between are left out.

Planted by this script on every white-background photo: the near-white pixels connected to the frame
(the background) replaced by ``grey`` (level 150-225), ``colour`` (a random backdrop colour, pastel or
saturated) or ``busy`` (a crop of a clothing-dev user photo); re-saved as JPEG (quality 85). These
must fail.

Rules compared in one run, with the marketplace-main-image thresholds (warn 0.97, fail 0.85): ``old``
(the whole border band: ``product_at_edge: false``) and ``new`` (the background along the frame, product
runs left out: the default). Printed, per rule and size: the false fail and false warn rates on the
white-background photos (all, and ``at_edge``: those whose border band the product crosses, i.e. the
old rule scores them < 0.97), the fail rate on each planted kind and on the coloured-backdrop photos.

Usage: python bench/quality_background.py --half dev|lockbox [--n-small 600 --n-full 100]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_false_alarms import DATA, sample  # noqa: E402

from catalens.quality.context import QCImage  # noqa: E402
from catalens.quality.registry import get_check  # noqa: E402

MAIN = {"band": 0.04, "warn": 0.97, "fail": 0.85}
RULES = {"old": {**MAIN, "product_at_edge": False}, "new": dict(MAIN)}
PLANTS = ("grey", "colour", "busy")


def corners_white(arr: np.ndarray) -> int:
    """How many of the four corner patches are near-white."""
    h, w = arr.shape[:2]
    s = max(2, int(0.06 * min(h, w)))
    n = 0
    for patch in (arr[:s, :s], arr[:s, -s:], arr[-s:, :s], arr[-s:, -s:]):
        med = np.median(patch.reshape(-1, 3), axis=0)
        n += int(med.min() >= 240 and med.max() - med.min() <= 12)
    return n


def background_mask(arr: np.ndarray) -> np.ndarray:
    """Near-white pixels connected to the frame."""
    import cv2

    lo, hi = arr.min(axis=2), arr.max(axis=2)
    nw = ((lo >= 235) & (hi - lo <= 14)).astype(np.uint8)
    n, labels = cv2.connectedComponents(nw, connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    edge = edge[edge > 0]
    return np.isin(labels, edge)


def busy_pool() -> list[Path]:
    root = DATA / "clothing-dev"
    rows = list(csv.DictReader(open(root / "labels.csv")))
    return [root / r["image"] for r in rows[:400]]


def plant(arr: np.ndarray, kind: str, rng: np.random.Generator, pool: list[Path]) -> np.ndarray:
    h, w = arr.shape[:2]
    bg = background_mask(arr)
    if kind == "grey":
        fill = np.full((h, w, 3), int(rng.integers(150, 226)), np.uint8)
    elif kind == "colour":
        if rng.random() < 0.5:  # pastel
            c = rng.integers(170, 236, 3)
        else:
            c = rng.integers(20, 230, 3)
        fill = np.broadcast_to(c.astype(np.uint8), (h, w, 3)).copy()
    else:
        src = Image.open(pool[int(rng.integers(len(pool)))]).convert("RGB")
        fill = np.asarray(src.resize((w, h), Image.Resampling.BILINEAR))
    out = arr.copy()
    out[bg] = fill[bg]
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, "JPEG", quality=85)
    return np.asarray(Image.open(buf).convert("RGB"))


def thumb(arr: np.ndarray, side: int = 80) -> np.ndarray:
    img = Image.fromarray(arr)
    img.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(img)


def verdicts(arr: np.ndarray) -> dict[str, tuple[str, float]]:
    qc = QCImage.from_pil(Image.fromarray(arr))
    out = {}
    for name, params in RULES.items():
        r = get_check("background")(**params).run(qc)
        out[name] = (r.verdict, float(r.score or 0.0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--half", choices=("dev", "lockbox"), required=True)
    ap.add_argument("--n-small", type=int, default=600)
    ap.add_argument("--n-full", type=int, default=100)
    ap.add_argument("--show", type=int, default=0, help="print this many false fails of the new rule")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rng = np.random.default_rng(7 if args.half == "dev" else 11)
    pool = busy_pool()
    photos = sample("myntra-dev", args.half, args.n_small) + sample(
        "myntra-fullres-dev", args.half, args.n_full
    )
    # counts[rule][size][set] = [n, warn_or_fail, fail]
    counts: dict[str, dict[str, dict[str, list[int]]]] = {
        r: {s: {} for s in ("stored", "80px")} for r in RULES
    }
    shown: list[str] = []

    def add(rule: str, size: str, key: str, verdict: str) -> None:
        c = counts[rule][size].setdefault(key, [0, 0, 0])
        c[0] += 1
        c[1] += verdict in ("warn", "fail")
        c[2] += verdict == "fail"

    n_white = n_backdrop = 0
    for pid, path in photos:
        arr = np.asarray(Image.open(path).convert("RGB"))
        cw = corners_white(arr)
        if cw >= 3:
            n_white += 1
            plants = {k: plant(arr, k, rng, pool) for k in PLANTS}
            for size, f in (("stored", lambda a: a), ("80px", thumb)):
                v = verdicts(f(arr))
                at_edge = v["old"][1] < MAIN["warn"]
                for rule in RULES:
                    add(rule, size, "white", v[rule][0])
                    if at_edge:
                        add(rule, size, "white_at_edge", v[rule][0])
                if v["new"][0] == "fail" and len(shown) < args.show:
                    shown.append(f"{pid} {size} score={v['new'][1]:.3f}")
                for kind, planted in plants.items():
                    pv = verdicts(f(planted))
                    for rule in RULES:
                        add(rule, size, f"planted_{kind}", pv[rule][0])
        elif cw == 0:
            n_backdrop += 1
            for size, f in (("stored", lambda a: a), ("80px", thumb)):
                v = verdicts(f(arr))
                for rule in RULES:
                    add(rule, size, "coloured_backdrop", v[rule][0])
    for rule, sizes in counts.items():
        for size, sets in sizes.items():
            row: dict[str, Any] = {"half": args.half, "rule": rule, "size": size}
            for key, (n, wf, f) in sorted(sets.items()):
                if key.startswith("white"):
                    row[key] = {"n": n, "false_fail": round(f / n, 4), "false_warn_or_fail": round(wf / n, 4)}
                else:
                    row[key] = {"n": n, "fail": round(f / n, 4), "warn_or_fail": round(wf / n, 4)}
            print(json.dumps(row), flush=True)
    print(
        json.dumps(
            {
                "half": args.half,
                "photos": len(photos),
                "white_background": n_white,
                "coloured_backdrop": n_backdrop,
                "seconds": round(time.perf_counter() - t0, 1),
                "false_fails_new": shown,
            }
        )
    )


if __name__ == "__main__":
    main()
