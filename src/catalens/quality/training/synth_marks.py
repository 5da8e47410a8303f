"""Synthetic see-through marks and opaque prints: the training data of the overlay detector.

:func:`see_through_mark` lays a semi-transparent text mark over a photo the way shops and stock
sites do: one large centred or slanted word, a line at a random place, a tiled pattern, or a small
corner credit; opacity 0.15-0.6, a colour that is usually chosen to be seen (dark on light, light on
dark), sometimes softened. :func:`opaque_print` draws fully opaque text on the middle of a photo:
the hard negative, because a print or a label on the product is text too, but it hides what is
under it, where a watermark lets it show through.

The words, fonts and layouts deliberately differ from those of the planted-issue benchmark
(``bench/quality_planted_set.py``), so the benchmark measures how the detector generalises.
"""

from __future__ import annotations

import functools
import glob
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

# the three faces the planted-issue benchmark draws its marks with: never trained on
BENCH_FONTS = {"DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "DejaVuSerif-Bold.ttf"}
FONT_GLOBS = ("/usr/share/fonts/truetype/*/*.ttf", "/usr/share/fonts/TTF/*.ttf")
WORDS = (
    "PREVIEW",
    "COPYRIGHT",
    "DRAFT",
    "STOCK",
    "DO NOT COPY",
    "NOT FOR SALE",
    "CONFIDENTIAL",
    "ORIGINAL",
    "DEMO",
    "SPECIMEN",
    "EXCLUSIVE",
    "PROTECTED",
    "ALL RIGHTS RESERVED",
    "COPY",
)
PRINT_WORDS = ("SPORT", "ORIGINAL", "NYC 1987", "LOVE", "ATHLETIC DEPT", "Good Vibes", "SUMMER", "TEAM 23")
TLDS = (".com", ".in", ".shop", ".net", ".co", ".store", ".org")
SYLLABLES = ("ka", "ro", "mi", "tex", "sha", "lu", "van", "zo", "pri", "mar", "el", "ta", "nor", "by")
LAYOUTS = ("centre", "centre", "random", "tiled", "tiled", "diagonal", "corner")
MIN_VISIBLE_STEP = 12.0  # grey levels: a mark that moves its pixels less than this is drawn again


@functools.cache
def _font_files() -> tuple[str, ...]:
    found = sorted({f for g in FONT_GLOBS for f in glob.glob(g) if f.rsplit("/", 1)[-1] not in BENCH_FONTS})
    return tuple(f for f in found if "Math" not in f)


def fonts() -> list[str]:
    """TrueType faces on this machine, minus the benchmark's; a clear error when there are none."""
    found = list(_font_files())  # globbed once per process
    if not found:
        raise RuntimeError(
            "no TrueType fonts found (looked in " + ", ".join(FONT_GLOBS) + "); install fonts-dejavu "
            "and fonts-liberation to train the overlay detector"
        )
    return found


def _name(rng: np.random.Generator) -> str:
    return "".join(str(rng.choice(SYLLABLES)) for _ in range(int(rng.integers(2, 4))))


def mark_text(rng: np.random.Generator) -> str:
    """A watermark-like string: a word, a web address, a copyright line, a handle or a credit."""
    r, name = rng.random(), _name(rng)
    if r < 0.25:
        s = str(rng.choice(WORDS))
    elif r < 0.45:
        s = "www." + name + str(rng.choice(TLDS))
    elif r < 0.6:
        s = name + str(rng.choice(TLDS))
    elif r < 0.75:
        s = (
            "\u00a9 "
            + name.capitalize()
            + (f" {int(rng.integers(2015, 2027))}" if rng.random() < 0.4 else "")
        )
    elif r < 0.85:
        s = "@" + name
    elif r < 0.92:
        s = "photo by " + name.capitalize()
    else:
        s = name.upper() + " " + str(rng.choice(["STUDIO", "IMAGES", "FASHION", "MEDIA"]))
    if rng.random() < 0.3:
        return s.upper()
    return s.lower() if rng.random() < 0.2 else s


def _font(px: float, rng: np.random.Generator, faces: list[str]) -> Any:
    return ImageFont.truetype(str(rng.choice(faces)), max(8, int(px)))


def _stamp(text: str, font: Any, fill: tuple[int, ...], angle: float) -> Image.Image:
    """``text`` on its own transparent layer, turned by ``angle`` degrees."""
    x0, y0, x1, y1 = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
    pad = 4
    layer = Image.new("RGBA", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), (0, 0, 0, 0))
    ImageDraw.Draw(layer).text((pad - x0, pad - y0), text, font=font, fill=fill)
    return layer.rotate(angle, expand=True, resample=Image.BICUBIC) if angle else layer


def _fitted_font(text: str, width: float, max_px: float, rng: np.random.Generator, faces: list[str]) -> Any:
    probe = _font(100, rng, faces)
    tw = ImageDraw.Draw(Image.new("L", (1, 1))).textlength(text, font=probe)
    return _font(min(100 * width / max(tw, 1.0), max_px), rng, faces)


def _colour(arr: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int]:
    h, w = arr.shape[:2]
    centre = float(arr[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].mean())
    r = rng.random()
    if r < 0.35:  # chosen to be seen
        c = 255 if centre < 120 else int(rng.choice([0, 40, 80, 110]))
        return (c, c, c)
    if r < 0.75:
        c = int(rng.choice([0, 60, 128, 200, 255]))
        return (c, c, c)
    return tuple(int(v) for v in rng.integers(0, 256, 3))  # type: ignore[return-value]


def see_through_mark(
    img: Image.Image, rng: np.random.Generator, faces: list[str] | None = None, _tries: int = 5
) -> tuple[Image.Image, str]:
    """``img`` with a semi-transparent text mark, and a short description of the mark."""
    faces = faces or fonts()
    img = img.convert("RGB")
    w, h = img.size
    arr = np.asarray(img)
    text = mark_text(rng)
    alpha = float(rng.uniform(0.15, 0.6))
    fill = (*_colour(arr, rng), int(255 * alpha))
    pad = min(w, h)  # stamps are laid on a padded canvas, so they may start off the photo
    layer = Image.new("RGBA", (w + 2 * pad, h + 2 * pad), (0, 0, 0, 0))
    layout = str(rng.choice(LAYOUTS))
    if layout in ("centre", "random", "diagonal"):
        angle = float(rng.choice([-1, 1]) * rng.uniform(20, 55)) if layout == "diagonal" else 0.0
        if layout == "centre" and rng.random() < 0.3:
            angle = float(rng.uniform(-45, 45))
        font = _fitted_font(text, rng.uniform(0.35, 0.95) * w, 0.3 * h, rng, faces)
        st = _stamp(text, font, fill, angle)
        if layout == "random":
            x, y = int(rng.uniform(0, max(1, w - st.width))), int(rng.uniform(0, max(1, h - st.height)))
        else:
            x = (w - st.width) // 2 + int(rng.normal(0, 0.05 * w))
            y = (h - st.height) // 2 + int(rng.normal(0, 0.08 * h))
        layer.alpha_composite(st, (max(0, x + pad), max(0, y + pad)))
    elif layout == "tiled":
        angle = float(rng.choice([0.0, 0.0, 30.0, -30.0, 45.0, float(rng.uniform(-60, 60))]))
        st = _stamp(text, _font(rng.uniform(0.03, 0.09) * h, rng, faces), fill, angle)
        dx = int(st.width * rng.uniform(1.1, 2.0)) + 1
        dy = int(st.height * rng.uniform(1.3, 3.0)) + 1
        offset = int(rng.uniform(0, dx))
        for j, y in enumerate(range(-st.height // 2, h, dy)):
            for x in range(-offset - (j % 2) * dx // 2, w, dx):
                if x + st.width > 0 and x + pad >= 0 and y + pad >= 0:
                    layer.alpha_composite(st, (x + pad, y + pad))
    else:  # a small credit in a corner
        st = _stamp(text, _font(rng.uniform(0.04, 0.08) * h, rng, faces), fill, 0.0)
        x = int(rng.choice([0.03 * w, w - st.width - 0.03 * w]))
        y = int(rng.choice([0.03 * h, h - st.height - 0.03 * h]))
        layer.alpha_composite(st, (max(0, x) + pad, max(0, y) + pad))
    layer = layer.crop((pad, pad, pad + w, pad + h))
    if rng.random() < 0.3:
        layer = layer.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.2)) * min(w, h) / 500))
    out = Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")
    covered = np.asarray(layer)[..., 3] > 20
    step = np.abs(np.asarray(out, np.float32) - arr).max(axis=2)
    if _tries > 0 and (not covered.any() or float(step[covered].mean()) < MIN_VISIBLE_STEP):
        return see_through_mark(img, rng, faces, _tries - 1)  # invisible (white on white): another
    return out, f"{layout},alpha={alpha:.2f},{text!r}"


def opaque_print(img: Image.Image, rng: np.random.Generator, faces: list[str] | None = None) -> Image.Image:
    """``img`` with opaque text near its middle (a print or label: a negative for the detector)."""
    faces = faces or fonts()
    img = img.convert("RGB")
    w, h = img.size
    text = mark_text(rng) if rng.random() < 0.5 else str(rng.choice(PRINT_WORDS))
    fill = (*(int(v) for v in rng.integers(0, 256, 3)), int(255 * rng.uniform(0.92, 1.0)))
    font = _fitted_font(text, rng.uniform(0.2, 0.5) * w, 0.15 * h, rng, faces)
    st = _stamp(text, font, fill, float(rng.uniform(-8, 8)))
    x = int(w / 2 - st.width / 2 + rng.normal(0, 0.06 * w))
    y = int(rng.uniform(0.3, 0.6) * h)
    out = img.convert("RGBA")
    out.alpha_composite(st, (max(0, min(x, w - st.width)), max(0, min(y, h - st.height))))
    return out.convert("RGB")
