"""Planted copies for the dedup lock-box benchmark (bench/search_dedup_lockbox.py).

Products of ../shared/data are split into two halves by a hash of their product id (``dev``: thresholds
are chosen on it; ``lockbox``: reported once). In each half, ``n_orig`` originals get one planted copy
each, the edit kinds taking turns, so every kind has the same number of pairs; ``n_other`` further
photos are added unchanged (they carry the natural look-alikes: same-template colour variants, shades
of one lipstick...).

Edit kinds: ``resize``, ``recompress``, ``crop``, ``border``, ``overlay_text`` (text drawn over the
photo), and opaque pastes covering 2-10% of the photo: ``label`` (a box with a shop name), ``sticker``
(a disc with a short word), ``price_tag`` (a notched tag with a price), ``logo`` (two shapes and
letters). The strings come from lists in this file that the project's code does not use.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

EDITS = (
    "resize",
    "recompress",
    "crop",
    "border",
    "overlay_text",
    "label",
    "sticker",
    "price_tag",
    "logo",
)
PASTES = ("label", "sticker", "price_tag", "logo")
SHOPS = ["Kavya Traders", "urbanloft.in", "DealsHub 24", "MEGA MART", "Style Bazaar", "@thriftqueen"]
WORDS = ["HOT", "BUY 2", "LIMITED", "TOP PICK", "FRESH", "BEST"]
PRICES = ["$19.99", "Rs 499", "EUR 12", "799/-", "$5 OFF", "2 for 1"]
FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
]


def half_of(product_id: str) -> str:
    """``dev`` or ``lockbox``, fixed by the product id (not by a seed)."""
    return "dev" if hashlib.sha1(product_id.encode()).digest()[0] % 2 == 0 else "lockbox"


def _font(size: int, rng: random.Random) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    path = rng.choice(FONTS)
    try:
        return ImageFont.truetype(path, max(6, size))
    except OSError:
        return ImageFont.load_default(max(6, size))


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))


def _fit_text(d: ImageDraw.ImageDraw, box: tuple[int, int, int, int], text: str, fill, rng) -> None:
    x0, y0, x1, y1 = box
    size = max(6, int((y1 - y0) * 0.5))
    font = _font(size, rng)
    while size > 6 and d.textlength(text, font=font) > 0.9 * (x1 - x0):
        size -= 1
        font = _font(size, rng)
    tw = d.textlength(text, font=font)
    d.text((x0 + (x1 - x0 - tw) / 2, y0 + (y1 - y0 - size) / 2), text, fill=fill, font=font)


def _paste(img: Image.Image, kind: str, rng: random.Random) -> Image.Image:
    """An opaque label / sticker / price tag / logo covering 2-10% of the photo, anywhere on it."""
    w, h = img.size
    area = rng.uniform(0.02, 0.10) * w * h
    aspect = {"label": rng.uniform(1.6, 3.5), "price_tag": rng.uniform(1.4, 2.2)}.get(kind, 1.0)
    bw = min(w - 2, int(math.sqrt(area * aspect)))
    bh = min(h - 2, int(area / max(bw, 1)))
    x0, y0 = rng.randint(0, w - bw - 1), rng.randint(0, h - bh - 1)
    x1, y1 = x0 + bw, y0 + bh
    out = img.copy()
    d = ImageDraw.Draw(out)
    fill = _colour(rng)
    ink = (255, 255, 255) if sum(fill) < 380 else (0, 0, 0)
    if kind == "label":
        d.rectangle((x0, y0, x1, y1), fill=fill, outline=ink, width=max(1, bh // 15))
        _fit_text(d, (x0, y0, x1, y1), rng.choice(SHOPS), ink, rng)
    elif kind == "sticker":
        if rng.random() < 0.5:
            d.ellipse((x0, y0, x1, y1), fill=fill)
        else:  # a starburst
            cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, bw / 2
            pts = [
                (
                    cx + (r if k % 2 == 0 else 0.75 * r) * math.cos(k * math.pi / 10),
                    cy + (r if k % 2 == 0 else 0.75 * r) * math.sin(k * math.pi / 10),
                )
                for k in range(20)
            ]
            d.polygon(pts, fill=fill)
        _fit_text(d, (x0 + bw // 6, y0 + bh // 4, x1 - bw // 6, y1 - bh // 4), rng.choice(WORDS), ink, rng)
    elif kind == "price_tag":
        notch = bw // 5
        d.polygon([(x0 + notch, y0), (x1, y0), (x1, y1), (x0 + notch, y1), (x0, (y0 + y1) // 2)], fill=fill)
        r = max(1, bh // 10)
        d.ellipse(
            (x0 + notch // 2, (y0 + y1) // 2 - r, x0 + notch // 2 + 2 * r, (y0 + y1) // 2 + r), fill=ink
        )
        _fit_text(d, (x0 + notch + 2, y0, x1 - 2, y1), rng.choice(PRICES), ink, rng)
    elif kind == "logo":
        d.rectangle((x0, y0, x1, y1), fill=fill)
        d.ellipse((x0 + bw // 8, y0 + bh // 8, x1 - bw // 8, y1 - bh // 8), fill=_colour(rng))
        _fit_text(
            d, (x0, y0 + bh // 4, x1, y1 - bh // 4), "".join(rng.choice("KQZXRW") for _ in range(2)), ink, rng
        )
    return out


def edit(img: Image.Image, kind: str, rng: random.Random) -> tuple[Image.Image, int]:
    """One planted edit; returns the image and the JPEG quality to save it with."""
    w, h = img.size
    quality = rng.randint(80, 95)
    if kind == "resize":
        s = rng.uniform(0.4, 0.9)
        img = img.resize((max(8, int(w * s)), max(8, int(h * s))), Image.Resampling.BICUBIC)
    elif kind == "recompress":
        quality = rng.randint(25, 60)
    elif kind == "crop":
        fx, fy = rng.uniform(0.03, 0.12), rng.uniform(0.03, 0.12)
        x0, y0 = int(w * fx * rng.random()), int(h * fy * rng.random())
        img = img.crop((x0, y0, x0 + int(w * (1 - fx)), y0 + int(h * (1 - fy))))
    elif kind == "border":
        b = max(2, int(min(w, h) * rng.uniform(0.02, 0.08)))
        img = ImageOps.expand(
            img, border=b, fill=rng.choice([(0, 0, 0), (255, 255, 255), (240, 236, 226), _colour(rng)])
        )
    elif kind == "overlay_text":
        img = img.copy()
        d = ImageDraw.Draw(img)
        text = rng.choice(SHOPS + WORDS)
        font = _font(int(h * rng.uniform(0.04, 0.09)), rng)
        x = rng.randint(0, max(1, int(w * 0.5)))
        y = rng.randint(0, max(1, int(h * 0.9)))
        d.text((x, y), text, fill=_colour(rng), font=font)
    elif kind in PASTES:
        img = _paste(img, kind, rng)
    else:
        raise ValueError(f"unknown edit {kind!r}")
    return img, quality


SOURCES = {
    # name: (id column or None = image path, articleType column, baseColour column or None)
    "myntra-dev": ("id", "articleType", "baseColour"),
    "clothing-dev": (None, "label", None),
    "myntra-fullres-dev": ("id", "articleType", "baseColour"),
}


def make_half(
    data: Path,
    half: str,
    out: Path,
    n_orig: int,
    n_other: int,
    seed: int = 0,
    sources: tuple[str, ...] = ("myntra-dev", "clothing-dev"),
    copies: int = 1,
    sizes: tuple[int, ...] = (),
    size_pick: str = "turns",
    products: str = "",
) -> list[dict[str, str]]:
    """Write one half's images and ``labels.csv`` (image, id, product, articleType, baseColour, edit, source, side).

    ``n_orig`` / ``n_other`` are split evenly over ``sources``; each original gets ``copies`` planted
    copies (the edit kinds keep taking turns). ``half`` ``dev`` / ``lockbox`` keeps the products of that
    half; any other name (``lockbox2``) keeps every product of ``sources``. With ``sizes`` (longest
    sides; 0 = as stored) each product's photo is first reduced to one of them, taking turns (or by a
    hash of the product id with ``size_pick="hash"``), so the catalog holds thumbnails next to
    full-resolution photos. ``products`` (``dev`` / ``lockbox``) keeps that half's products whatever
    the half's name. Returns the manifest rows.
    """
    rng = random.Random(f"{seed}-{half}")
    out.mkdir(parents=True, exist_ok=True)
    manifest: list[dict[str, str]] = []
    k = n_copies = 0
    for si, src in enumerate(sources):
        id_col, type_col, colour_col = SOURCES[src]
        rows = list(csv.DictReader(open(data / src / "labels.csv")))
        keep = products or (half if half in ("dev", "lockbox") else "")
        if keep:
            rows = [r for r in rows if half_of(f"{src}:{r[id_col] if id_col else r['image']}") == keep]
        rows.sort(key=lambda r: r["image"])
        rng.shuffle(rows)
        no = n_orig // len(sources) + (si < n_orig % len(sources))
        nt = n_other // len(sources) + (si < n_other % len(sources))
        for i, row in enumerate(rows[: no + nt]):
            pid = f"{src}:{row[id_col] if id_col else row['image']}"
            img = Image.open(data / src / row["image"]).convert("RGB")
            if not sizes:
                side = 0
            elif size_pick == "hash":  # independent of which edits the product gets
                side = sizes[hashlib.sha1(f"size:{pid}".encode()).digest()[0] % len(sizes)]
            else:  # taking turns: with 3 copies each size meets only 3 of the 9 edit kinds
                side = sizes[k % len(sizes)]
            if side and max(img.size) > side:
                img.thumbnail((side, side), Image.Resampling.LANCZOS)
            base = {
                "product": pid,
                "articleType": row.get(type_col, ""),
                "baseColour": row.get(colour_col, "") if colour_col else "",
                "source": src,
                "side": str(max(img.size)),
            }
            name = f"o{k:05d}.jpg"
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=95)
            (out / name).write_bytes(buf.getvalue())
            manifest.append({"image": name, "id": f"o{k}", "edit": "original", **base})
            for c in range(copies if i < no else 0):
                kind = EDITS[n_copies % len(EDITS)]
                n_copies += 1
                copy, q = edit(img, kind, rng)
                cname = f"c{k:05d}_{c}_{kind}.jpg" if copies > 1 else f"c{k:05d}_{kind}.jpg"
                copy.convert("RGB").save(out / cname, format="JPEG", quality=q)
                manifest.append(
                    {"image": cname, "id": f"c{k}_{c}" if copies > 1 else f"c{k}", "edit": kind, **base}
                )
            k += 1
    with open(out / "labels.csv", "w", newline="") as fh:
        wr = csv.DictWriter(
            fh, fieldnames=["image", "id", "product", "articleType", "baseColour", "edit", "source", "side"]
        )
        wr.writeheader()
        wr.writerows(manifest)
    return manifest
