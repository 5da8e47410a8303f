"""QC false alarms on clean catalog photos, per check, with the recall of planted conversions kept.

The clean photos are Myntra catalog shots (``myntra-dev``, 225x300, and ``myntra-fullres-dev``,
1200 px), none of which has a watermark, an overlay or a grayscale conversion planted. They are split
by PRODUCT ID (md5 of the id, so one product's photos of both sizes land in the same half) into
``dev`` (thresholds and rules may be chosen by looking at it) and ``lockbox`` (reported once, never
tuned on). OCR runs at about 2.5 photos/s here, so each half is SAMPLED: ``--n-small`` photos of
myntra-dev and ``--n-full`` of myntra-fullres-dev (a fixed, id-hashed order).

For each photo and each profile (``general``, ``marketplace-main-image``) every per-image check of the
profile runs (the batch ``duplicates`` check is left out: it compares photos with each other and has
its own benchmark, bench/search_dedup_lockbox.py); the share of clean photos that a check warns on and
fails is printed per check. The same photos are then planted, by this script, with

* ``grayscale``: the photo converted to grayscale (PIL "L"), re-saved as JPEG (quality 70-95), half
  of them also resized to 50-100%;
* ``tiled_mark``: a see-through text mark tiled over the whole photo (background and product alike):
  made-up words from this script's own syllables (none in src/), in the three faces the overlay
  detector never trained on (``synth_marks.BENCH_FONTS``), opacity 0.25-0.5, level or slanted;

and the recall of ``grayscale`` and ``watermark`` (and of watermark or watermark_visual) on them is
printed. The OCR reads are cached in ``--cache`` so that a rerun with other rules costs seconds.

Usage: python bench/quality_false_alarms.py --half lockbox [--n-small 100 --n-full 50] [--show 20]
Prints one JSON line per (profile, check) and per planted kind, then a summary line.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from catalens.quality.context import QCImage
from catalens.quality.profiles import load_profile

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PROFILES = ("general", "marketplace-main-image")
FACES = ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "DejaVuSerif-Bold.ttf")  # synth_marks.BENCH_FONTS
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
# syllables of the planted marks: made up here, none a word of the watermark or promo lists in src/
PIECES = ("qua", "vex", "dor", "jib", "ulf", "gry", "hom", "pez", "wyn", "tak", "oob", "fen", "ziv")


def half(pid: str, salt: str = "") -> str:
    """``dev`` or ``lockbox`` by the md5 of ``salt`` + the product id (another benchmark passes its
    own salt, so that its halves are not this one's)."""
    return "dev" if int(hashlib.md5(f"{salt}{pid}".encode()).hexdigest(), 16) % 2 == 0 else "lockbox"


def sample(
    dataset: str, which: str, n: int, salt: str = "", order: str = "sample:"
) -> list[tuple[str, Path]]:
    """``n`` photos of ``dataset`` in half ``which``, in a fixed order (md5 of ``order`` + id)."""
    root = DATA / dataset
    rows = [r for r in csv.DictReader(open(root / "labels.csv")) if half(r["id"], salt) == which]
    rows.sort(key=lambda r: hashlib.md5(f"{order}{r['id']}".encode()).hexdigest())
    return [(f"{dataset}/{r['id']}", root / r["image"]) for r in rows[:n]]


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def plant_grayscale(data: bytes, rng: np.random.Generator) -> bytes:
    img = Image.open(io.BytesIO(data)).convert("L")
    if rng.random() < 0.5:
        f = float(rng.uniform(0.5, 1.0))
        img = img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))), Image.LANCZOS)
    return _jpeg(img.convert("RGB"), int(rng.integers(70, 96)))


def mark_word(rng: np.random.Generator) -> str:
    word = "".join(str(rng.choice(PIECES)) for _ in range(int(rng.integers(2, 4))))
    return word.upper() if rng.random() < 0.6 else word.capitalize()


def plant_tiled_mark(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """A see-through word tiled over the whole photo, background and product alike."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    arr = np.asarray(img)
    centre = float(arr[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].mean())
    shade = 255 if centre < 110 else int(rng.choice([0, 60, 100]))
    alpha = float(rng.uniform(0.25, 0.5))
    text = mark_word(rng)
    font = ImageFont.truetype(str(FONT_DIR / str(rng.choice(FACES))), max(9, int(rng.uniform(0.035, 0.07) * h)))
    x0, y0, x1, y1 = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
    stamp = Image.new("RGBA", (x1 - x0 + 8, y1 - y0 + 8), (0, 0, 0, 0))
    ImageDraw.Draw(stamp).text((4 - x0, 4 - y0), text, font=font, fill=(shade, shade, shade, int(255 * alpha)))
    angle = float(rng.choice([0.0, 0.0, 25.0, -25.0, 40.0]))
    if angle:
        stamp = stamp.rotate(angle, expand=True, resample=Image.BICUBIC)
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    dx, dy = int(stamp.width * rng.uniform(1.15, 1.8)) + 1, int(stamp.height * rng.uniform(1.4, 2.6)) + 1
    for j, y in enumerate(range(-stamp.height // 3, h, dy)):
        for x in range(-(j % 2) * dx // 2, w, dx):
            layer.alpha_composite(stamp, (max(0, x), max(0, y)))
    out = Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")
    return _jpeg(out, 90), f"{text!r},angle={angle:.0f},alpha={alpha:.2f}"


class OcrCache:
    """The OCR reads of each photo variant (``QCImage.cache`` entries named ``ocr`` / ``ocr_mark:*``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, dict[str, Any]] = pickle.loads(path.read_bytes()) if path.exists() else {}

    def load(self, key: str, img: QCImage) -> None:
        img.cache.update(self.data.get(key, {}))

    def keep(self, key: str, img: QCImage) -> None:
        self.data[key] = {k: v for k, v in img.cache.items() if k == "ocr" or k.startswith("ocr_mark:")}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(pickle.dumps(self.data))


def run_profiles(img: QCImage, checks: dict[str, list[Any]], only: set[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for prof, cs in checks.items():
        for c in cs:
            if only is None or c.name in only:
                r = c.run(img)
                out[f"{prof}/{c.name}"] = (r.verdict, r.reason)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--half", choices=["dev", "lockbox"], required=True)
    ap.add_argument("--n-small", type=int, default=100, help="myntra-dev photos per half")
    ap.add_argument("--n-full", type=int, default=50, help="myntra-fullres-dev photos per half")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/catalens-qfa/ocr.pkl"))
    ap.add_argument("--show", type=int, default=0, help="print this many flagged clean photos per check")
    ap.add_argument("--no-planted", action="store_true")
    a = ap.parse_args()
    if not DATA.is_dir():
        print(f"data folder not found: {DATA}", file=sys.stderr)
        return 2
    checks = {
        p: [c for c in load_profile(p).instantiate() if c.scope != "batch"] for p in PROFILES
    }
    for cs in checks.values():
        for c in cs:
            c.setup()
    cache = OcrCache(a.cache)
    photos = sample("myntra-dev", a.half, a.n_small) + sample("myntra-fullres-dev", a.half, a.n_full)
    rng = np.random.default_rng(23)
    clean: dict[str, dict[str, Any]] = {}
    planted: dict[str, list[dict[str, Any]]] = {"grayscale": [], "tiled_mark": []}
    t0 = time.perf_counter()
    for i, (key, path) in enumerate(photos):
        data = path.read_bytes()
        img = QCImage.from_bytes(data, str(path))
        cache.load(f"clean:{key}", img)
        clean[key] = run_profiles(img, checks)
        cache.keep(f"clean:{key}", img)
        if not a.no_planted:
            gimg = QCImage.from_bytes(plant_grayscale(data, rng), f"gray:{key}")
            planted["grayscale"].append(run_profiles(gimg, checks, {"grayscale"}))
            mdata, desc = plant_tiled_mark(data, rng)
            mimg = QCImage.from_bytes(mdata, f"mark:{key}")
            cache.load(f"mark:{key}", mimg)
            res = run_profiles(mimg, checks, {"watermark", "watermark_visual"})
            res["desc"] = f"{key} {desc}"
            planted["tiled_mark"].append(res)
            cache.keep(f"mark:{key}", mimg)
        if (i + 1) % 25 == 0:
            print(f"[qfa] {i + 1}/{len(photos)} photos, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            cache.save()
    cache.save()
    n = len(clean)
    worst = {"general": 0.0, "marketplace-main-image": 0.0}
    for prof, cs in checks.items():
        for c in cs:
            verdicts = [clean[k][f"{prof}/{c.name}"] for k in clean]
            warn = sum(v == "warn" for v, _ in verdicts)
            fail = sum(v == "fail" for v, _ in verdicts)
            row = {"half": a.half, "profile": prof, "check": c.name, "n": n, "warn": warn, "fail": fail,
                   "warn_rate": round(warn / n, 4), "fail_rate": round(fail / n, 4),
                   "flagged_rate": round((warn + fail) / n, 4)}  # fmt: skip
            worst[prof] = max(worst[prof], row["flagged_rate"])
            print(json.dumps(row))
            if a.show and warn + fail:
                shown = [(k, clean[k][f"{prof}/{c.name}"]) for k in clean if clean[k][f"{prof}/{c.name}"][0] != "pass"]
                for k, (v, reason) in shown[: a.show]:
                    print(f"    {v} {k}: {reason}")
    for kind, rows in planted.items():
        if not rows:
            continue
        for prof in PROFILES:
            check = "grayscale" if kind == "grayscale" else "watermark"
            hit = [r[f"{prof}/{check}"][0] != "pass" for r in rows]
            row = {"half": a.half, "planted": kind, "profile": prof, "check": check, "n": len(rows),
                   "recall": round(sum(hit) / len(rows), 4)}  # fmt: skip
            if kind == "tiled_mark":
                either = [
                    h or r[f"{prof}/watermark_visual"][0] != "pass" for h, r in zip(hit, rows, strict=True)
                ]
                row["recall_watermark_or_visual"] = round(sum(either) / len(rows), 4)
            print(json.dumps(row))
            if a.show and kind == "tiled_mark":
                for r, h in zip(rows, hit, strict=True):
                    if not h:
                        print(f"    missed {r['desc']}: {r[f'{prof}/watermark'][1]}")
    print(json.dumps({"half": a.half, "photos": n, "max_flagged_rate": worst,
                      "seconds": round(time.perf_counter() - t0, 1)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
