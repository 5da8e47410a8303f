"""Drawing: heatmap overlays, region boxes, side-by-side pairs and contact sheets (Pillow + numpy).

Small catalog thumbnails (60x80 px) are scaled up for display (short side at least
``MIN_SIDE``), large photos scaled down (long side at most ``MAX_SIDE``); boxes are always given
in source pixels and scaled with the image.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_SIDE = 240
MAX_SIDE = 640
VERDICT_COLOURS = {"error": (180, 40, 200), "fail": (230, 40, 40), "warn": (245, 160, 0), "pass": (40, 170, 70)}
PALETTE = [(0, 200, 255), (255, 60, 200), (255, 220, 0), (60, 255, 60), (255, 120, 0)]


def turbo(values: np.ndarray) -> np.ndarray:
    """Google's Turbo colormap (polynomial fit): [0, 1] floats -> uint8 RGB, shape ``(*values.shape, 3)``."""
    x = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)
    r = 0.13572138 + x * (
        4.61539260 + x * (-42.66032258 + x * (132.13108234 + x * (-152.94239396 + x * 59.28637943)))
    )
    g = 0.09140261 + x * (
        2.19418839 + x * (4.84296658 + x * (-14.18503333 + x * (4.27729857 + x * 2.82956604)))
    )
    b = 0.10667330 + x * (
        12.64194608 + x * (-60.58204836 + x * (110.36276771 + x * (-89.90310912 + x * 27.34824973)))
    )
    rgb = np.stack([r, g, b], axis=-1)
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def display_scale(width: int, height: int) -> float:
    """Factor that brings an image to a readable display size."""
    scale = max(1.0, MIN_SIDE / max(1, min(width, height)))
    if max(width, height) * scale > MAX_SIDE:
        scale = MAX_SIDE / max(width, height)
    return scale


def _scaled(image: Image.Image) -> tuple[Image.Image, float]:
    scale = display_scale(*image.size)
    if abs(scale - 1.0) < 1e-6:
        return image.convert("RGB"), 1.0
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.convert("RGB").resize(size, Image.Resampling.BICUBIC), scale


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - very old Pillow
        return ImageFont.load_default()


def _draw_box(
    draw: ImageDraw.ImageDraw,
    box: Sequence[float],
    scale: float,
    colour: tuple[int, int, int],
    label: str | None,
    width: int,
) -> None:
    x0, y0, x1, y1 = (float(v) * scale for v in box[:4])
    draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=colour, width=width)
    if label:
        font = _font(max(10, width * 5))
        tb = draw.textbbox((x0, y0), label, font=font)
        th, tw = tb[3] - tb[1], tb[2] - tb[0]
        ty = y0 - th - 4 if y0 - th - 4 >= 0 else y0
        draw.rectangle([x0, ty, x0 + tw + 4, ty + th + 4], fill=colour)
        draw.text((x0 + 2, ty + 1), label, fill=(0, 0, 0), font=font)


def overlay(
    image: Image.Image,
    source_map: np.ndarray,
    *,
    boxes: Iterable[Sequence[float]] = (),
    crop_box: Sequence[float] | None = None,
    alpha: tuple[float, float] = (0.2, 0.65),
) -> Image.Image:
    """The image with a Turbo heatmap blended in (more opaque where the map is strong).

    ``source_map`` is a [0, 1] map at the image's resolution; ``boxes`` (source pixels) are drawn
    on top; the area outside ``crop_box`` (what the model did not see) is greyed out.
    """
    base, scale = _scaled(image)
    heat = Image.fromarray(turbo(source_map)).resize(base.size, Image.Resampling.BILINEAR)
    m = (
        np.asarray(
            Image.fromarray((np.clip(source_map, 0, 1) * 255).astype(np.uint8)).resize(
                base.size, Image.Resampling.BILINEAR
            ),
            dtype=np.float32,
        )
        / 255.0
    )
    a = (alpha[0] + (alpha[1] - alpha[0]) * m)[..., None]
    img = np.asarray(base, dtype=np.float32)
    blended = img * (1 - a) + np.asarray(heat, dtype=np.float32) * a
    if crop_box is not None:
        x0, y0, x1, y1 = (round(float(v) * scale) for v in crop_box)
        outside = np.ones(m.shape, dtype=bool)
        outside[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = False
        blended[outside] = img[outside] * 0.45 + 128 * 0.55
    out = Image.fromarray(np.clip(blended + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    width = max(2, round(min(out.size) / 120))
    for i, box in enumerate(boxes):
        _draw_box(draw, box, scale, (255, 255, 255), str(i + 1), width)
    return out


def _region_items(regions: Any) -> list[tuple[list[float], str | None, tuple[int, int, int]]]:
    """Normalise the accepted region inputs to (box, label, colour) triples."""
    items: list[tuple[list[float], str | None, tuple[int, int, int]]] = []
    for i, reg in enumerate(regions or []):
        colour = PALETTE[i % len(PALETTE)]
        if hasattr(reg, "regions") and hasattr(reg, "check"):  # a quality CheckResult
            colour = VERDICT_COLOURS.get(str(getattr(reg, "verdict", "")), colour)
            for box in reg.regions or []:
                items.append((list(map(float, box[:4])), f"{reg.check}", colour))
        elif isinstance(reg, dict):
            if "regions" in reg and "check" in reg:
                colour = VERDICT_COLOURS.get(str(reg.get("verdict", "")), colour)
                items.extend(
                    (list(map(float, b[:4])), str(reg["check"]), colour) for b in reg["regions"] or []
                )
            else:
                box = reg.get("box") or reg.get("bbox")
                colour = tuple(reg.get("colour", colour))  # type: ignore[assignment]
                items.append((list(map(float, box[:4])), reg.get("label"), colour))
        elif hasattr(reg, "box"):
            items.append((list(map(float, reg.box[:4])), getattr(reg, "label", None), colour))
        else:
            seq = list(reg)
            label = str(seq[4]) if len(seq) > 4 else None
            items.append(([float(v) for v in seq[:4]], label, colour))
    return items


def draw_regions(image: Image.Image, regions: Any) -> Image.Image:
    """Draw regions on a copy of ``image`` (scaled to a readable size).

    ``regions`` may hold ``[x0, y0, x1, y1]`` boxes (optionally a 5th item as label), dicts with
    ``box`` (+ ``label``, ``colour``), objects with ``.box`` (explanation regions), or quality
    check results (objects or dicts with ``check``, ``verdict`` and ``regions``: every box of a
    check is drawn labelled with the check name, coloured by verdict). Boxes are in the
    image's own pixel coordinates.
    """
    base, scale = _scaled(image)
    out = base.copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(min(out.size) / 120))
    for box, label, colour in _region_items(regions):
        _draw_box(draw, box, scale, colour, label, width)
    return out


def caption(image: Image.Image, text: str, *, height: int = 22) -> Image.Image:
    """The image with a white caption strip below it."""
    font = _font(max(10, height - 8))
    out = Image.new("RGB", (image.width, image.height + height), (255, 255, 255))
    out.paste(image, (0, 0))
    draw = ImageDraw.Draw(out)
    tw = draw.textlength(text, font=font)
    while tw > image.width - 4 and len(text) > 4:
        text = text[:-4] + "..."
        tw = draw.textlength(text, font=font)
    draw.text((3, image.height + 3), text, fill=(0, 0, 0), font=font)
    return out


def side_by_side(images: Sequence[Image.Image], *, height: int | None = None, gap: int = 8) -> Image.Image:
    """Images next to each other, scaled to a common height, on white."""
    if not images:
        raise ValueError("no images to place")
    h = height or max(im.height for im in images)
    scaled = [
        im if im.height == h else im.resize((max(1, round(im.width * h / im.height)), h)) for im in images
    ]
    total = sum(im.width for im in scaled) + gap * (len(scaled) - 1)
    out = Image.new("RGB", (total, h), (255, 255, 255))
    x = 0
    for im in scaled:
        out.paste(im.convert("RGB"), (x, 0))
        x += im.width + gap
    return out


def grid(rows: Sequence[Sequence[Image.Image]], *, gap: int = 6) -> Image.Image:
    """A contact sheet: each row a side-by-side strip, rows stacked (left-aligned) on white."""
    strips = [side_by_side(list(r), gap=gap) for r in rows if r]
    width = max(s.width for s in strips)
    height = sum(s.height for s in strips) + gap * (len(strips) - 1)
    out = Image.new("RGB", (width, height), (255, 255, 255))
    y = 0
    for s in strips:
        out.paste(s, (0, y))
        y += s.height + gap
    return out
