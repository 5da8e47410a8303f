"""Planted duplicate set from myntra-dev: copies of originals mixed with originals and other products.

Writes a folder of images and a truth file; used by bench/dedup.py.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

EDITS = ("resize", "jpeg", "crop", "overlay", "border")


def edit(img: Image.Image, kind: str, rng: random.Random) -> tuple[Image.Image, int]:
    """One planted edit; returns the image and the JPEG quality to save with."""
    w, h = img.size
    quality = 95
    if kind == "resize":
        s = rng.uniform(0.5, 0.9)
        img = img.resize((max(8, int(w * s)), max(8, int(h * s))), Image.Resampling.BILINEAR)
        quality = rng.randint(70, 95)
    elif kind == "jpeg":
        quality = rng.randint(30, 95)
    elif kind == "crop":
        fx, fy = rng.uniform(0.02, 0.10), rng.uniform(0.02, 0.10)
        x0, y0 = int(w * fx * rng.random()), int(h * fy * rng.random())
        img = img.crop((x0, y0, x0 + int(w * (1 - fx)), y0 + int(h * (1 - fy))))
    elif kind == "overlay":
        img = img.copy()
        d = ImageDraw.Draw(img)
        x, y = rng.randint(0, w * 2 // 3), rng.randint(0, h * 5 // 6)
        if rng.random() < 0.5:
            d.text((x, y), rng.choice(["SALE", "NEW", "-30%", "shop.example"]), fill=(200, 0, 0))
        else:
            r = max(6, w // 12)
            d.ellipse((x, y, x + r, y + r), fill=(rng.randint(0, 255), 40, 160))
    elif kind == "border":
        b = max(2, int(min(w, h) * rng.uniform(0.02, 0.08)))
        colour = rng.choice([(0, 0, 0), (255, 255, 255), (230, 230, 230), (30, 60, 120)])
        img = ImageOps.expand(img, border=b, fill=colour)
    return img, quality


def make_planted(
    src: Path,
    out: Path,
    n_orig: int = 300,
    n_other: int = 600,
    seed: int = 0,
    base_size: tuple[int, int] | None = None,
) -> dict:
    """Originals (first ``n_orig`` of a seeded shuffle get 1-2 edited copies) plus ``n_other`` others.

    ``base_size`` (w, h): originals are first shrunk to fit it (e.g. (60, 80) for small catalog
    thumbnails), so the copies are edits of the small photo. ``src/labels.csv`` needs an
    ``image`` column (path relative to ``src``); ``id`` is optional.
    """
    rng = random.Random(seed)
    rows = list(csv.DictReader(open(src / "labels.csv")))
    rng.shuffle(rows)
    out.mkdir(parents=True, exist_ok=True)
    truth_groups: list[list[str]] = []
    manifest = []
    for i, row in enumerate(rows[: n_orig + n_other]):
        img = Image.open(src / row["image"]).convert("RGB")
        if base_size is not None:
            img.thumbnail(base_size, Image.Resampling.LANCZOS)
        name = f"o{i:05d}.jpg"
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=95)
        (out / name).write_bytes(buf.getvalue())
        manifest.append(
            {"image": name, "id": f"o{i}", "orig_id": row.get("id", row["image"]), "edit": "original"}
        )
        if i < n_orig:
            group = [name]
            for j in range(rng.choice([1, 1, 2])):
                kind = rng.choice(EDITS)
                copy, q = edit(img, kind, rng)
                cname = f"c{i:05d}_{j}_{kind}.jpg"
                copy.convert("RGB").save(out / cname, format="JPEG", quality=q)
                group.append(cname)
                manifest.append(
                    {"image": cname, "id": f"c{i}_{j}", "orig_id": row.get("id", row["image"]), "edit": kind}
                )
            truth_groups.append(group)
    with open(out / "labels.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=["image", "id", "orig_id", "edit"])
        wr.writeheader()
        wr.writerows(manifest)
    truth = {"groups": truth_groups, "n_images": len(manifest)}
    (out / "truth.json").write_text(json.dumps(truth))
    return truth
