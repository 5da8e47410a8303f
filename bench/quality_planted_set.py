"""Build the planted-issue set for the quality benchmark (used by bench/quality_planted.py).

Each clean original (Myntra full-res studio shots and clothing-dev user photos) is copied as is
(label "clean") and degraded once per planted type with a strength drawn from that type's list;
each copy is labelled with what was planted. Originals are split into two halves by a hash of
their path: "dev" (thresholds may be tuned on it) and "test" (reported, never tuned on).

Strengths are relative to the image size so that the same degradation looks the same at any
resolution (sigma and motion length as a fraction of the long side).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

PLANTED_TYPES = (
    "blur_gaussian",
    "blur_motion",
    "underexposed",
    "overexposed",
    "low_contrast",
    "downscaled",
    "text_overlay",
    "watermark",
    "border",
    "busy_background",
    "grayscale",
)
PROMO = [
    "SALE 50% OFF",
    "FREE SHIPPING",
    "BUY 1 GET 1 FREE",
    "NEW ARRIVAL",
    "BEST PRICE",
    "LIMITED OFFER",
    "30% OFF TODAY",
    "HOT DEAL",
    "CLEARANCE SALE",
    "FLAT 40% OFF",
]
MARKS = ["© SHOPNAME", "SAMPLE", "watermark.com", "© PHOTO STUDIO", "PROOF"]
FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
]


@dataclass
class Item:
    path: str
    original: str
    dataset: str
    split: str
    planted: str  # "clean" or one of PLANTED_TYPES
    strength: str
    white_bg: bool = False  # the ORIGINAL has a white studio background (>= 90% of its border near-white)


def white_border_share(arr: np.ndarray, band: float = 0.04) -> float:
    """Share of the outer ``band`` of an RGB array that is near-white (a white studio background)."""
    a = np.asarray(arr)
    h, w = a.shape[:2]
    b = max(1, int(band * min(h, w)))
    ring = np.concatenate(
        [a[:b].reshape(-1, 3), a[-b:].reshape(-1, 3), a[:, :b].reshape(-1, 3), a[:, -b:].reshape(-1, 3)]
    )
    lo, hi = ring.min(1), ring.max(1)
    return float(((lo >= 235) & (hi.astype(int) - lo <= 14)).mean())


def _split(name: str) -> str:
    return "dev" if int(hashlib.md5(name.encode()).hexdigest(), 16) % 2 == 0 else "test"


def _font(size: int, rng: np.random.Generator) -> ImageFont.FreeTypeFont:
    path = FONTS[int(rng.integers(len(FONTS)))]
    try:
        return ImageFont.truetype(path, size)
    except OSError:
        return ImageFont.load_default(size=size)


def _to_linear(a: np.ndarray) -> np.ndarray:
    a = a / 255.0
    return np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)


def _to_srgb(a: np.ndarray) -> np.ndarray:
    a = np.clip(a, 0, 1)
    return np.clip(np.where(a <= 0.0031308, a * 12.92, 1.055 * a ** (1 / 2.4) - 0.055) * 255, 0, 255)


def _motion_kernel(length: int, angle: float) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    dx, dy = math.cos(angle), math.sin(angle)
    for t in np.linspace(-c, c, 4 * length):
        x, y = int(round(c + t * dx)), int(round(c + t * dy))
        k[y, x] = 1
    return k / k.sum()


def _product_mask(arr: np.ndarray) -> np.ndarray:
    lo, hi = arr.min(2), arr.max(2)
    mask = ~((lo >= 235) & (hi - lo <= 14))
    m = mask.astype(np.uint8) * 255
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m)
    keep = np.zeros_like(m)
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] > 0.002 * m.size:
            keep[labels == i] = 255
    # fill holes
    flood = keep.copy()
    ff = np.zeros((m.shape[0] + 2, m.shape[1] + 2), np.uint8)
    cv2.floodFill(flood, ff, (0, 0), 255)
    return keep | cv2.bitwise_not(flood)


def _text_layer(
    size: tuple[int, int],
    text: str,
    font: ImageFont.FreeTypeFont,
    xy: tuple[int, int],
    fill: tuple[int, int, int, int],
    angle: float = 0.0,
) -> Image.Image:
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).text(xy, text, font=font, fill=fill)
    if angle:
        layer = layer.rotate(angle, resample=Image.BICUBIC, center=(size[0] / 2, size[1] / 2))
    return layer


def plant(
    img: Image.Image, kind: str, rng: np.random.Generator, backgrounds: list[Path]
) -> tuple[Image.Image, str]:
    """Return (degraded copy, strength label)."""
    w, h = img.size
    long_side = max(w, h)
    arr = np.asarray(img).astype(np.float32)
    if kind == "blur_gaussian":
        frac = float(rng.choice([0.003, 0.005, 0.008]))
        out = cv2.GaussianBlur(arr, (0, 0), frac * long_side)
        return Image.fromarray(out.clip(0, 255).astype(np.uint8)), f"sigma={frac:.3f}*long"
    if kind == "blur_motion":
        frac = float(rng.choice([0.015, 0.025, 0.04]))
        length = max(3, int(round(frac * long_side)))
        out = cv2.filter2D(arr, -1, _motion_kernel(length, float(rng.uniform(0, math.pi))))
        return Image.fromarray(out.clip(0, 255).astype(np.uint8)), f"len={frac:.3f}*long"
    if kind == "underexposed":
        ev = float(rng.choice([-2.0, -2.5, -3.0]))
        out = _to_srgb(_to_linear(arr) * 2**ev)
        return Image.fromarray(out.astype(np.uint8)), f"{ev:+.1f}EV"
    if kind == "overexposed":
        ev = float(rng.choice([2.0, 2.5, 3.0]))
        out = _to_srgb(_to_linear(arr) * 2**ev)
        return Image.fromarray(out.astype(np.uint8)), f"{ev:+.1f}EV"
    if kind == "low_contrast":
        c = float(rng.choice([0.3, 0.4, 0.5]))
        mean = arr.mean(axis=(0, 1), keepdims=True)
        out = mean + (arr - mean) * c
        return Image.fromarray(out.clip(0, 255).astype(np.uint8)), f"contrast*{c}"
    if kind == "downscaled":
        target = int(rng.choice([200, 256, 320]))
        f = target / long_side
        return img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.LANCZOS), f"long={target}"
    if kind == "text_overlay":
        text = str(rng.choice(PROMO))
        rel = float(rng.choice([0.05, 0.07, 0.09]))
        font = _font(max(10, int(rel * h)), rng)
        out = img.convert("RGBA")
        draw = ImageDraw.Draw(out)
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
        tw, th = x1 - x0, y1 - y0
        if tw > 0.95 * w:  # shrink to fit the width
            font = _font(max(8, int(font.size * 0.95 * w / tw)), rng)
            x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
            tw, th = x1 - x0, y1 - y0
        where = str(rng.choice(["top", "bottom", "middle"]))
        y = {"top": int(0.04 * h), "bottom": int(0.96 * h - th), "middle": int(0.5 * h - th / 2)}[where]
        x = int(rng.uniform(0.02 * w, max(0.02 * w + 1, w - tw - 0.02 * w)))
        colour = tuple(
            int(c)
            for c in rng.choice([(220, 20, 30), (0, 0, 0), (255, 200, 0), (30, 60, 200), (255, 255, 255)])
        )
        if rng.random() < 0.5 or colour == (255, 255, 255):  # a banner behind the text
            bg = (200, 0, 0) if colour != (220, 20, 30) else (255, 255, 255)
            bg = (0, 0, 0) if colour == (255, 255, 255) else bg
            pad = int(0.3 * th)
            draw.rectangle([x - pad, y - pad + y0, x + tw + pad, y + y1 + pad], fill=bg)
        draw.text((x - x0, y), text, font=font, fill=colour)
        return out.convert("RGB"), f"{where},h={rel}"
    if kind == "watermark":
        text = str(rng.choice(MARKS))
        alpha = int(255 * float(rng.choice([0.25, 0.35, 0.45])))
        # a watermark is meant to be seen: dark on light images, light on dark ones
        centre = arr[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].mean()
        colour = (
            (255, 255, 255) if centre < 110 else tuple(int(c) for c in rng.choice([(0, 0, 0), (90, 90, 90)]))
        )
        style = str(rng.choice(["center", "tiled"]))
        out = img.convert("RGBA")
        if style == "center":
            font = _font(max(12, int(0.12 * min(w, h) * (8 / max(6, len(text))))), rng)
            bbox = ImageDraw.Draw(out).textbbox((0, 0), text, font=font)
            xy = (int((w - (bbox[2] - bbox[0])) / 2), int((h - (bbox[3] - bbox[1])) / 2))
            layer = _text_layer((w, h), text, font, xy, (*colour, alpha), angle=float(rng.choice([0, 30])))
        else:
            font = _font(max(10, int(0.05 * h)), rng)
            layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
            d = ImageDraw.Draw(layer)
            for yy in range(int(0.1 * h), h, int(0.22 * h)):
                for xx in range(int(-0.1 * w), w, int(0.55 * w)):
                    d.text((xx + (yy // 7) % 40, yy), text, font=font, fill=(*colour, alpha))
        return Image.alpha_composite(out, layer).convert("RGB"), f"{style},a={alpha / 255:.2f}"
    if kind == "border":
        rel = float(rng.choice([0.02, 0.04, 0.06]))
        b = max(2, int(round(rel * min(w, h))))
        colour = tuple(
            int(c)
            for c in rng.choice(
                [(0, 0, 0), (90, 90, 90), (200, 30, 40), (20, 40, 140), (225, 205, 170), (255, 255, 255)]
            )
        )
        if rng.random() < 0.5:
            out = Image.new("RGB", (w + 2 * b, h + 2 * b), colour)
            out.paste(img, (b, b))
            return out, f"pad{rel},rgb{colour}"
        out = img.copy()
        d = ImageDraw.Draw(out)
        for box in ([0, 0, w, b], [0, h - b, w, h], [0, 0, b, h], [w - b, 0, w, h]):
            d.rectangle(box, fill=colour)
        return out, f"frame{rel},rgb{colour}"
    if kind == "busy_background":
        bg_path = backgrounds[int(rng.integers(len(backgrounds)))]
        bg = Image.open(bg_path).convert("RGB")
        scale = max(w / bg.width, h / bg.height)
        bg = bg.resize((math.ceil(bg.width * scale), math.ceil(bg.height * scale)), Image.BILINEAR).crop(
            (0, 0, w, h)
        )
        mask = _product_mask(np.asarray(img))
        mask = cv2.GaussianBlur(mask, (0, 0), 1.0).astype(np.float32)[..., None] / 255.0
        out = arr * mask + np.asarray(bg, np.float32) * (1 - mask)
        return Image.fromarray(out.clip(0, 255).astype(np.uint8)), bg_path.parent.name
    if kind == "grayscale":
        return img.convert("L").convert("RGB"), "L"
    raise ValueError(kind)


def build(
    out_dir: Path,
    data_root: Path,
    n_myntra: int = 200,
    n_clothing: int = 200,
    seed: int = 0,
    fresh: int = 0,
) -> list[Item]:
    """Write the planted set under ``out_dir`` and return its items (also written as items.jsonl).

    ``fresh`` > 0 builds a new lock-box instead (bench/README.md rule 3): that many clothing-dev photos
    that the default set uses neither as originals nor as backgrounds, drawn with ``seed``, every item in
    split ``fresh``. (myntra-fullres-dev has no photo left: the default set uses all 200.) The learned
    checks' trainers left out only the default set's originals (``bench/data/planted_originals.txt``), so
    they have seen these clean photos (not these edits)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    myntra = sorted((data_root / "myntra-fullres-dev" / "images").glob("*.jpg"))[:n_myntra]
    clothing_all = sorted((data_root / "clothing-dev").glob("*/*/*.jpg"))
    picks = rng.permutation(len(clothing_all))
    clothing = [clothing_all[i] for i in picks[:n_clothing]]
    backgrounds = [clothing_all[i] for i in picks[n_clothing : n_clothing + 200]]
    if fresh:
        unused = picks[n_clothing + 200 :]
        rng = np.random.default_rng(seed)
        myntra, clothing = [], [clothing_all[i] for i in sorted(rng.choice(unused, fresh, replace=False))]
    elif seed:
        rng = np.random.default_rng(seed)
    items: list[Item] = []
    for dataset, paths in (("myntra", myntra), ("clothing", clothing)):
        for src in paths:
            name = f"{dataset}-{src.stem}"
            split = "fresh" if fresh else _split(name)
            clean = out_dir / f"{name}__clean.jpg"
            clean.write_bytes(src.read_bytes())
            img = Image.open(src).convert("RGB")
            white = white_border_share(np.asarray(img)) >= 0.9
            items.append(Item(str(clean), name, dataset, split, "clean", "", white))
            for kind in PLANTED_TYPES:
                if kind == "busy_background" and not white:
                    continue  # needs a white studio background to cut the product out
                copy, strength = plant(img, kind, rng, backgrounds)
                path = out_dir / f"{name}__{kind}.jpg"
                copy.save(path, "JPEG", quality=92)
                items.append(Item(str(path), name, dataset, split, kind, strength, white))
    with (out_dir / "items.jsonl").open("w") as f:
        for it in items:
            f.write(json.dumps(asdict(it)) + "\n")
    return items


def load_items(out_dir: Path) -> list[Item]:
    return [Item(**json.loads(line)) for line in (out_dir / "items.jsonl").read_text().splitlines()]


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="/tmp/catalens-planted")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
    ap.add_argument("--n-myntra", type=int, default=200)
    ap.add_argument("--n-clothing", type=int, default=200)
    ap.add_argument("--fresh", type=int, default=0, help="a fresh lock-box of N unused clothing-dev photos")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    its = build(Path(a.out), Path(a.data), a.n_myntra, a.n_clothing, seed=a.seed, fresh=a.fresh)
    print(json.dumps({"items": len(its), "out": a.out}))
