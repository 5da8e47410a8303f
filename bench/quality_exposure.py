"""Over-exposure on photos the models never trained on, every size from 60x80 thumbnails to full
resolution, planted by this script's own edits (issue 20 item 5).

Photos: myntra-dev (225x300 catalog), myntra-fullres-dev (up to 1200 px catalog) and clothing-dev
(user photos), split by a hash of ``exposure:<source>:<product id>`` into ``dev`` (2 of 10 buckets:
thresholds and model variants may be chosen by looking at it), ``lockbox`` (2 of 10: reported once)
and the rest, which the trainers may use. ``--write-exclude FILE`` writes the stems of every dev and
lock-box photo (plus bench/data/planted_originals.txt, the originals of bench/quality_planted.py) for
the trainers' ``--exclude``.

Each sampled photo is first reduced to a long side of 80 px (60x80 thumbnails), 160 px, 300 px or kept
as stored (picked by a hash of its id), then gives three JPEGs (quality 70-95):

* ``clean``: as it is;
* ``mild``: brightened or darkened a little (-1 to +1 EV at mid-grey: acceptable);
* ``over``: over-exposed, +1.5 to +3.5 EV at mid-grey.

The brightening is one of five edits written here (not the trainers' code): ``exposure`` (a gain on
pixel values decoded with a plain 2.2 gamma, clipped), ``brightness`` (PIL ImageEnhance.Brightness),
``screen`` (a screen-blend tone curve 1 - (1 - v)^n), ``levels`` (white point lowered) and ``hsv_value``
(the V channel of HSV scaled). Every edit's strength is drawn as its parameter and labelled by the
equivalent EV it gives mid-grey (sRGB 118), measured by applying the edit to a grey pixel; a draw
between +1 and +1.5 EV is drawn again (neither clearly fine nor clearly over-exposed).

The profile's ``overexposed`` check runs on every JPEG (general and marketplace-main-image profiles).
Prints one JSON line per profile: the share of clean and of mild photos flagged at warn-or-worse and at
fail, recall of the over-exposed copies, precision / F1 of over-exposed vs clean photos and F1 with the
mild changes counted as negatives too, at both levels, with the same split by size and by edit; ``--scores FILE`` also writes every score for
choosing thresholds on dev.

    python bench/quality_exposure.py --half dev [--models DIR] [--n 150]
    python bench/quality_exposure.py --write-exclude bench/data/exposure_heldout.txt
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PLANTED = Path(__file__).resolve().parent / "data" / "planted_originals.txt"
SOURCES = ("myntra-dev", "myntra-fullres-dev", "clothing-dev")
SIDES = (80, 160, 300, 0)  # 0 = as stored
EDITS = ("exposure", "brightness", "screen", "levels", "hsv_value")
GREY = 118


def _id(source: str, row: dict[str, str]) -> str:
    return row.get("id") or Path(row["image"]).stem


def split_of(source: str, pid: str) -> str:
    b = hashlib.sha1(f"exposure:{source}:{pid}".encode()).digest()[0] % 10
    return "dev" if b < 2 else "lockbox" if b < 4 else "train"


def photos(which: set[str]) -> list[tuple[str, str, Path]]:
    """(source, id, path) of the photos whose split is in ``which``, in a fixed hashed order."""
    out = []
    for src in SOURCES:
        for row in csv.DictReader(open(DATA / src / "labels.csv")):
            pid = _id(src, row)
            if split_of(src, pid) in which:
                out.append((src, pid, DATA / src / row["image"]))
    return sorted(out, key=lambda t: hashlib.sha1(f"order:{t[0]}:{t[1]}".encode()).hexdigest())


# ---- this script's own brightening edits -------------------------------------------------------
def _lin(v: np.ndarray) -> np.ndarray:  # exact sRGB decoding, for measuring only
    v = np.asarray(v, dtype=np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def apply(img: Image.Image, edit: str, p: float) -> Image.Image:
    if edit == "exposure":  # a 2.2-gamma camera gain (p: factor on linear values)
        a = np.asarray(img, dtype=np.float64) / 255.0
        return Image.fromarray((np.clip((a**2.2) * p, 0, 1) ** (1 / 2.2) * 255 + 0.5).astype(np.uint8))
    if edit == "brightness":
        return ImageEnhance.Brightness(img).enhance(p)
    if edit == "screen":  # 1 - (1 - v)^p, p > 1 brightens
        lut = [round(255 * (1 - (1 - i / 255) ** p)) for i in range(256)]
        return img.point(lut * len(img.getbands()))
    if edit == "levels":  # white point at p (0..255)
        lut = [min(255, round(i * 255 / p)) for i in range(256)]
        return img.point(lut * len(img.getbands()))
    if edit == "hsv_value":
        h, s, v = img.convert("HSV").split()
        v = v.point([min(255, round(i * p)) for i in range(256)])
        return Image.merge("HSV", (h, s, v)).convert("RGB")
    raise ValueError(edit)


def grey_ev(edit: str, p: float) -> float:
    """The stops by which the edit raises mid-grey."""
    g = Image.new("RGB", (1, 1), (GREY, GREY, GREY))
    out = np.asarray(apply(g, edit, p))[0, 0, 0]
    return float(np.log2(max(_lin(out), 1e-6) / _lin(GREY)))


def draw(edit: str, rng: np.random.Generator, lo: float, hi: float) -> tuple[float, float]:
    """(parameter, equivalent EV) with the EV in [lo, hi] (rejection sampling)."""
    ranges = {
        "exposure": (0.3, 14.0),
        "brightness": (0.6, 2.4),
        "screen": (0.7, 6.0),
        "levels": (100.0, 255.0),
        "hsv_value": (0.6, 2.4),
    }
    a, b = ranges[edit]
    for _ in range(2000):
        p = float(np.exp(rng.uniform(np.log(a), np.log(b))))
        ev = grey_ev(edit, p)
        if lo <= ev <= hi:
            return p, ev
    raise RuntimeError(f"cannot draw {edit} in [{lo}, {hi}]")


def jpeg(img: Image.Image, rng: np.random.Generator) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(rng.integers(70, 96)))
    return buf.getvalue()


def size_of(source: str, pid: str) -> int:
    return SIDES[hashlib.sha1(f"side:{source}:{pid}".encode()).digest()[0] % len(SIDES)]


# ---- evaluation ----------------------------------------------------------------------------------
def use_models(folder: Path) -> None:
    """Evaluate the models in ``folder`` (overexposure.npz/.json, exposure.onnx/.json) instead of the
    packaged ones."""
    import catalens.quality.cnn_models as cnn_models
    import catalens.quality.tree_models as tree_models

    tree_models.data_dir = lambda: folder  # type: ignore[assignment]
    cnn_models.data_dir = lambda: folder  # type: ignore[assignment]


def _f1(tp: int, fp: int, n_pos: int) -> tuple[float, float | None]:
    prec = tp / (tp + fp) if tp + fp else None
    rec = tp / n_pos if n_pos else 0.0
    return (2 * prec * rec / (prec + rec) if prec and rec else 0.0), prec


def summary(rows: list[dict[str, Any]], level: str) -> dict[str, Any]:
    """Over-exposed copies vs clean photos (``f1``, ``precision``), and vs clean + mild
    (``f1_with_mild``: the mild +-1 EV changes count as false alarms too)."""
    flag = (lambda r: r["verdict"] != "pass") if level == "warn" else (lambda r: r["verdict"] == "fail")
    pos = [r for r in rows if r["kind"] == "over"]
    clean = [r for r in rows if r["kind"] == "clean"]
    mild = [r for r in rows if r["kind"] == "mild"]
    tp, fp_clean, fp_mild = sum(map(flag, pos)), sum(map(flag, clean)), sum(map(flag, mild))
    f1, prec = _f1(tp, fp_clean, len(pos))
    f1_mild, _ = _f1(tp, fp_clean + fp_mild, len(pos))
    return {
        "f1": round(f1, 4),
        "precision": None if prec is None else round(prec, 4),
        "recall": round(tp / max(1, len(pos)), 4),
        "clean_flagged": round(fp_clean / max(1, len(clean)), 4),
        "f1_with_mild": round(f1_mild, 4),
        "mild_flagged": round(fp_mild / max(1, len(mild)), 4),
    }


def ranking(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Threshold-free figures of the score: AUC of over-exposed vs clean, and the recall at the
    lowest threshold that flags at most 1% of the clean photos."""
    from sklearn.metrics import roc_auc_score

    pos = np.array([r["score"] for r in rows if r["kind"] == "over"])
    clean = np.sort([r["score"] for r in rows if r["kind"] == "clean"])[::-1]
    thr = clean[int(0.01 * len(clean))] if len(clean) else 1.0  # scores above it: <= 1% of clean
    y = np.r_[np.ones(len(pos)), np.zeros(len(clean))]
    return {
        "auc_over_vs_clean": round(float(roc_auc_score(y, np.r_[pos, clean])), 4),
        "recall_at_1pct_clean": round(float((pos > thr).mean()), 4),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--half", choices=("dev", "lockbox"))
    ap.add_argument("--n", type=int, default=150, help="photos per source (fewer where a half has fewer)")
    ap.add_argument("--models", type=Path, help="evaluate the models in this folder, not the packaged ones")
    ap.add_argument("--scores", type=Path, help="write every score (JSON lines) here")
    ap.add_argument("--param", action="append", default=[], help="override a check parameter: NAME=VALUE")
    ap.add_argument("--write-exclude", type=Path, help="write the dev and lock-box stems here and stop")
    args = ap.parse_args()
    if args.write_exclude:
        stems = {p.stem for _, _, p in photos({"dev", "lockbox"})}
        stems |= set(PLANTED.read_text().split())
        args.write_exclude.write_text("\n".join(sorted(stems)) + "\n")
        print(json.dumps({"excluded_stems": len(stems), "file": str(args.write_exclude)}))
        return 0
    if not args.half:
        ap.error("--half is required")
    if args.models:
        use_models(args.models)
    from catalens.quality.context import QCImage
    from catalens.quality.profiles import load_profile

    checks = {
        prof: next(c for c in load_profile(prof).instantiate() if c.name == "overexposed")
        for prof in ("general", "marketplace-main-image")
    }
    for c in checks.values():
        for item in args.param:
            name, _, value = item.partition("=")
            c.p[name] = type(c.p[name])(value) if not isinstance(c.p[name], bool) else value == "true"
        c.setup()
    chosen: list[tuple[str, str, Path]] = []
    for src in SOURCES:
        chosen += [t for t in photos({args.half}) if t[0] == src][: args.n]
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for src, pid, path in chosen:
        rng = np.random.default_rng(
            int.from_bytes(hashlib.sha1(f"edit:{src}:{pid}".encode()).digest()[:4], "little")
        )
        img = Image.open(path).convert("RGB")
        side = size_of(src, pid)
        if side and max(img.size) > side:
            img.thumbnail((side, side), Image.Resampling.LANCZOS)
        e_mild, e_over = (EDITS[int(i)] for i in rng.integers(0, len(EDITS), 2))
        p_mild, ev_mild = draw(e_mild, rng, -1.0, 1.0)
        p_over, ev_over = draw(e_over, rng, 1.5, 3.5)
        for kind, edit, p, ev in (
            ("clean", "", 0.0, 0.0),
            ("mild", e_mild, p_mild, ev_mild),
            ("over", e_over, p_over, ev_over),
        ):
            data = jpeg(img if kind == "clean" else apply(img, edit, p), rng)
            qc = QCImage.from_bytes(data, f"{kind}:{path.name}")
            for prof, check in checks.items():
                res = check.run(qc)
                rows.append(
                    {
                        "profile": prof,
                        "source": src,
                        "id": pid,
                        "side": max(img.size),
                        "kind": kind,
                        "edit": edit,
                        "ev": round(ev, 3),
                        "score": round(float(res.score), 5),
                        "verdict": res.verdict,
                        "trees": (res.details or {}).get("trees"),
                        "cnn": (res.details or {}).get("cnn"),
                    }
                )
    if args.scores:
        args.scores.write_text("".join(json.dumps(r) + "\n" for r in rows))
    load = os.getloadavg()[0]
    for prof in checks:
        mine = [r for r in rows if r["profile"] == prof]
        by_side = {}
        for lo, hi, name in (
            (0, 100, "<=100"),
            (101, 200, "<=200"),
            (201, 300, "<=300"),
            (301, 10**6, ">300"),
        ):
            part = [r for r in mine if lo <= r["side"] <= hi]
            if part:
                by_side[name] = {
                    "n": len(part) // 3,
                    "warn": summary(part, "warn"),
                    "fail": summary(part, "fail"),
                }
        by_edit = {
            e: round(
                np.mean([r["verdict"] != "pass" for r in mine if r["kind"] == "over" and r["edit"] == e]), 4
            )
            for e in EDITS
        }
        by_edit_fail = {
            e: round(
                np.mean([r["verdict"] == "fail" for r in mine if r["kind"] == "over" and r["edit"] == e]), 4
            )
            for e in EDITS
        }
        print(
            json.dumps(
                {
                    "half": args.half,
                    "profile": prof,
                    "models": str(args.models or "packaged"),
                    "photos": len(mine) // 3,
                    "warn": summary(mine, "warn"),
                    "fail": summary(mine, "fail"),
                    **ranking(mine),
                    "by_side": by_side,
                    "recall_by_edit_warn": by_edit,
                    "recall_by_edit_fail": by_edit_fail,
                    "seconds": round(time.perf_counter() - t0, 1),
                    "load_1min": round(load, 2),
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
