"""Promotional text overlays with phrases the text check's word lists were not written from.

The ``text`` check fails a photo when OCR reads promotional words from ``quality/data/text_words.yaml``.
Those lists were extended while tuning on the planted benchmark's phrases (bench/quality_planted_set.py),
so that benchmark's F1 says little about a seller's own wording. Here the phrases are this script's
own (``PHRASES``: everyday overlay wording of shop listings, written for this benchmark; none is copied
from the lists or from the planted benchmark), drawn in three layouts (a filled band across the photo,
a badge in a corner, plain outlined text) in the three DejaVu faces of
``synth_marks.BENCH_FONTS``, at 5-9% of the photo's height.

Photos: clean myntra-dev (225x300) and myntra-fullres-dev (to 1200 px) catalog shots, split by the md5
of ``text-unseen:<id>`` into ``dev`` and ``lockbox``; each photo gives itself and one planted copy.
Nothing in src/ is chosen with this benchmark; both halves are measurements.

For each profile (general, marketplace-main-image) prints one JSON line: recall of the planted copies
at warn-or-worse and at fail, the share of clean photos flagged, F1, and the recall split by whether
the phrase contains a word of the packaged promo list (``with_list_word``) or not (``no_list_word``):
the second is what a word list cannot know.

    python bench/quality_text_unseen.py --half dev [--n-small 60 --n-full 20]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_false_alarms as false_alarms  # noqa: E402

FONT_DIR, FACES = false_alarms.FONT_DIR, false_alarms.FACES  # synth_marks.BENCH_FONTS
PHRASES = (
    "Summer Sale",
    "Hurry Up",
    "Only Today",
    "Mega Savings",
    "Just Launched",
    "Exclusive Online",
    "Shop Now",
    "Limited Stock",
    "Save Big",
    "Best Buy",
    "Hot Pick",
    "Trending Now",
    "Order Today",
    "New Season",
    "Top Rated",
    "Grab Yours",
    "Special Price",
    "Bumper Savings",
    "Festive Offer",
    "Easy Returns",
    "COD Available",
    "Free Gift Inside",
    "Buy 2 Get 1",
    "Upto 60% Off",
    "Rs. 499 Only",
    "Deal of the Day",
    "Lowest Ever",
    "Flash Deal",
    "Combo Pack",
    "Members Only",
)
LAYOUTS = ("band", "badge", "plain")


def sample(dataset: str, which: str, n: int) -> list[tuple[str, Path]]:
    """``n`` photos of ``dataset`` in half ``which`` of this benchmark's own split."""
    return false_alarms.sample(dataset, which, n, salt="text-unseen:", order="order:")


def text_style(
    d: ImageDraw.ImageDraw, w: int, h: int, phrase: str, rng: np.random.Generator, max_width: float = 0.9
) -> tuple[ImageFont.FreeTypeFont, int, int, int, int, int, tuple[int, ...], tuple[int, ...]]:
    """(font, size, x0, y0, text width, text height, ink, back) of an overlay phrase: 5-9% of the
    photo's height in a bench face, shrunk to at most ``max_width`` of its width; ink and plate
    colours drawn (black ink gets a yellow plate)."""
    size = max(9, int(rng.uniform(0.05, 0.09) * h))
    font = ImageFont.truetype(str(FONT_DIR / str(rng.choice(FACES))), size)
    x0, y0, x1, y1 = d.textbbox((0, 0), phrase, font=font)
    while x1 - x0 > max_width * w and size > 9:  # fit the width
        size = max(9, int(size * 0.9))
        font = ImageFont.truetype(font.path, size)
        x0, y0, x1, y1 = d.textbbox((0, 0), phrase, font=font)
    ink = tuple(int(c) for c in rng.choice([(255, 255, 255), (255, 230, 0), (20, 20, 20)]))
    back = tuple(int(c) for c in rng.choice([(200, 20, 40), (20, 60, 160), (0, 0, 0), (230, 90, 0)]))
    if ink == (20, 20, 20):
        back = (255, 215, 0)
    return font, size, x0, y0, x1 - x0, y1 - y0, ink, back


def plant(img: Image.Image, phrase: str, layout: str, rng: np.random.Generator) -> Image.Image:
    """``phrase`` drawn over ``img`` in ``layout``."""
    out = img.convert("RGB").copy()
    w, h = out.size
    d = ImageDraw.Draw(out)
    font, size, x0, y0, tw, th, ink, back = text_style(d, w, h, phrase, rng)
    if layout == "band":
        y = int(rng.choice([0.04, 0.82]) * h)
        d.rectangle((0, y, w, y + th + int(0.6 * th)), fill=back)
        d.text(((w - tw) // 2 - x0, y + int(0.3 * th) - y0), phrase, font=font, fill=ink)
    elif layout == "badge":
        pad = int(0.35 * th)
        x = int(rng.choice([0.03 * w, w - tw - 2 * pad - 0.03 * w]))
        y = int(rng.choice([0.03 * h, h - th - 2 * pad - 0.03 * h]))
        d.rounded_rectangle((x, y, x + tw + 2 * pad, y + th + 2 * pad), radius=pad, fill=back)
        d.text((x + pad - x0, y + pad - y0), phrase, font=font, fill=ink)
    else:
        x = int(rng.uniform(0.02, max(0.03, 0.98 - tw / w)) * w)
        y = int(rng.choice([0.05, 0.45, 0.85]) * h)
        stroke = (0, 0, 0) if ink != (20, 20, 20) else (255, 255, 255)
        d.text(
            (x - x0, y - y0), phrase, font=font, fill=ink, stroke_width=max(1, size // 12), stroke_fill=stroke
        )
    return out


def has_list_word(phrase: str, words: list[str]) -> bool:
    tokens = re.findall(r"[a-z]+", phrase.lower())
    return any(t in words for t in tokens)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--half", choices=("dev", "lockbox"), required=True)
    ap.add_argument("--n-small", type=int, default=60)
    ap.add_argument("--n-full", type=int, default=20)
    args = ap.parse_args()
    from catalens.quality.checks.text import PROMO_WORDS
    from catalens.quality.context import QCImage
    from catalens.quality.profiles import load_profile

    checks = {
        p: next(c for c in load_profile(p).instantiate() if c.name == "text")
        for p in ("general", "marketplace-main-image")
    }
    for c in checks.values():
        c.setup()
    photos = sample("myntra-dev", args.half, args.n_small) + sample(
        "myntra-fullres-dev", args.half, args.n_full
    )
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for key, path in photos:
        rng = np.random.default_rng(int(hashlib.md5(f"plant:{key}".encode()).hexdigest()[:8], 16))
        img = Image.open(path).convert("RGB")
        phrase = str(rng.choice(PHRASES))
        layout = str(rng.choice(LAYOUTS))
        for kind, data in (
            ("clean", false_alarms._jpeg(img, 92)),
            ("planted", false_alarms._jpeg(plant(img, phrase, layout, rng), int(rng.integers(80, 96)))),
        ):
            qc = QCImage.from_bytes(data, f"{kind}:{key}")
            for prof, check in checks.items():
                res = check.run(qc)
                rows.append(
                    {
                        "profile": prof,
                        "key": key,
                        "kind": kind,
                        "phrase": phrase if kind == "planted" else "",
                        "layout": layout if kind == "planted" else "",
                        "list_word": has_list_word(phrase, PROMO_WORDS) if kind == "planted" else None,
                        "verdict": res.verdict,
                    }
                )
    load = os.getloadavg()[0]
    for prof in checks:
        mine = [r for r in rows if r["profile"] == prof]
        pos = [r for r in mine if r["kind"] == "planted"]
        neg = [r for r in mine if r["kind"] == "clean"]
        line: dict[str, Any] = {"half": args.half, "profile": prof, "photos": len(neg)}
        for level, flag in (
            ("warn", lambda r: r["verdict"] != "pass"),
            ("fail", lambda r: r["verdict"] == "fail"),
        ):
            tp, fp = sum(map(flag, pos)), sum(map(flag, neg))
            prec = tp / (tp + fp) if tp + fp else 0.0
            rec = tp / len(pos) if pos else 0.0
            line[level] = {
                "recall": round(rec, 4),
                "clean_flagged": round(fp / max(1, len(neg)), 4),
                "f1": round(2 * prec * rec / (prec + rec), 4) if prec and rec else 0.0,
                "recall_with_list_word": f"{sum(flag(r) for r in pos if r['list_word'])}/"
                f"{sum(1 for r in pos if r['list_word'])}",
                "recall_no_list_word": f"{sum(flag(r) for r in pos if not r['list_word'])}/"
                f"{sum(1 for r in pos if not r['list_word'])}",
                "recall_by_layout": {
                    lay: f"{sum(flag(r) for r in pos if r['layout'] == lay)}/{sum(1 for r in pos if r['layout'] == lay)}"
                    for lay in LAYOUTS
                },
            }
        line["missed_no_list_word"] = sorted(
            {r["phrase"] for r in pos if not r["list_word"] and r["verdict"] == "pass"}
        )
        line["seconds"] = round(time.perf_counter() - t0, 1)
        line["load_1min"] = round(load, 2)
        print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
