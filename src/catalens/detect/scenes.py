"""Synthetic multi-product scenes for training the detector (copy-paste augmentation).

Catalog cut-outs (:mod:`catalens.detect.cutouts`) are pasted, scaled, mirrored and re-lit, onto
a background: a plain or graded colour, a procedural texture (wood, tiles, checks, stripes, mottled
fabric) or a patch of a real photo (a floor, a bed, a wall: the corner of a user photo, where the
product seldom is). Later pastes hide earlier ones; a product hidden past ``MAX_HIDDEN`` is dropped
from the scene, so every labelled product is mostly visible. Each product gets a soft drop shadow
sometimes, and the whole scene a blur, a down-and-up scale (a thumbnail) and a JPEG round trip.

The truth of each product is the part of its mask that stays visible: box, mask and category.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from catalens.detect.cutouts import Cutout

SIZE = 384
MAX_HIDDEN = 0.45  # a product hidden by later ones past this share is left out of the scene
ROTATE_P, ROTATE_MAX = 0.3, 20.0  # share of cut-outs turned, and by at most this many degrees


@dataclass(frozen=True)
class Item:
    """A cut-out product with its coarse category index and an id (for exact-product search)."""

    cutout: Cutout
    category: int
    key: str = ""


@dataclass
class Placed:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in scene pixels (visible part)
    mask: np.ndarray  # bool (SIZE, SIZE)
    category: int
    key: str


@dataclass
class Scene:
    image: np.ndarray  # uint8 RGB (h, w, 3)
    items: list[Placed] = field(default_factory=list)


# ---- backgrounds -----------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    import cv2

    small = rng.random((cells, cells)).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A random background colour: mostly muted (floors, walls, sheets), sometimes saturated."""
    import colorsys

    h, s = rng.random(), rng.uniform(0.0, 0.35) if rng.random() < 0.75 else rng.uniform(0.35, 0.9)
    v = rng.uniform(0.25, 0.95)
    return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32) * 255


def texture(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """A procedural background (uint8 RGB, size x size)."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    a, b = _colour(rng), _colour(rng)
    kind = rng.integers(6)
    if kind == 0:  # plain or graded
        t = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) / size
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6) * rng.uniform(0, 0.5)
    elif kind == 1:  # wood-like planks
        angle = rng.uniform(0, np.pi)
        u = xx * np.cos(angle) + yy * np.sin(angle)
        grain = np.sin(u / rng.uniform(2, 8) + 6 * _smooth_noise(rng, size, 6))
        planks = (np.floor(u / rng.uniform(40, 110)) % 2) * 0.25
        t = 0.35 * (grain * 0.5 + 0.5) + planks
    elif kind == 2:  # tiles with grout lines
        step = rng.uniform(40, 140)
        line = (np.minimum(xx % step, yy % step) < rng.uniform(1.5, 4)).astype(np.float32)
        t = 0.15 * _smooth_noise(rng, size, 5) + line * 0.8
    elif kind == 3:  # checks or plaid
        step = rng.uniform(8, 60)
        t = 0.5 * ((np.floor(xx / step) + np.floor(yy / step)) % 2)
        if rng.random() < 0.5:
            t = 0.5 * (np.sin(xx / step * np.pi) > 0.6) + 0.5 * (np.sin(yy / step * np.pi) > 0.6)
    elif kind == 4:  # stripes
        angle = rng.uniform(0, np.pi)
        u = xx * np.cos(angle) + yy * np.sin(angle)
        t = (np.sin(u / rng.uniform(3, 25)) > rng.uniform(-0.5, 0.5)).astype(np.float32)
    else:  # mottled fabric / carpet / bedding
        t = 0.6 * _smooth_noise(rng, size, int(rng.integers(4, 24))) + 0.4 * rng.random((size, size))
        t = t.astype(np.float32)
    t = np.clip(t, 0, 1)[..., None]
    img = a * (1 - t) + b * t + rng.normal(0, rng.uniform(0, 6), (size, size, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def photo_patch(
    photo: np.ndarray, rng: np.random.Generator, size: int = SIZE, share: float = 0.35
) -> np.ndarray:
    """A corner of a real photo (``share`` of each side), scaled to size x size: the floor, bed or
    wall a user photo shows around its product."""
    import cv2

    h, w = photo.shape[:2]
    ch, cw = max(8, int(h * share)), max(8, int(w * share))
    y = 0 if rng.random() < 0.5 else h - ch
    x = 0 if rng.random() < 0.5 else w - cw
    patch = np.ascontiguousarray(photo[y : y + ch, x : x + cw, :3])
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR)


# ---- composing ---------------------------------------------------------------------------------------


def _paste(
    canvas: np.ndarray, rgba: np.ndarray, x: int, y: int, shadow: bool, rng: np.random.Generator
) -> np.ndarray:
    """Alpha-blend ``rgba`` at (x, y) into ``canvas`` (float32, in place); returns the pasted alpha
    on the canvas grid (float32, 0..1)."""
    import cv2

    size_h, size_w = canvas.shape[:2]
    h, w = rgba.shape[:2]
    full = np.zeros((size_h, size_w), np.float32)
    x0, y0, x1, y1 = max(0, x), max(0, y), min(size_w, x + w), min(size_h, y + h)
    if x1 <= x0 or y1 <= y0:
        return full
    part = rgba[y0 - y : y1 - y, x0 - x : x1 - x]
    alpha = part[..., 3:4].astype(np.float32) / 255.0
    if shadow:
        sh = np.zeros((size_h, size_w), np.float32)
        dx, dy = rng.integers(-6, 7), rng.integers(2, 10)
        sy0, sy1 = max(0, y0 + dy), min(size_h, y1 + dy)
        sx0, sx1 = max(0, x0 + dx), min(size_w, x1 + dx)
        if sy1 > sy0 and sx1 > sx0:
            sh[sy0:sy1, sx0:sx1] = alpha[: sy1 - sy0, : sx1 - sx0, 0]
            sh = cv2.GaussianBlur(sh, (0, 0), rng.uniform(3, 8)) * rng.uniform(0.2, 0.45)
            canvas *= (1 - sh)[..., None]
    region = canvas[y0:y1, x0:x1]
    region *= 1 - alpha
    region += alpha * part[..., :3].astype(np.float32)
    full[y0:y1, x0:x1] = alpha[..., 0]
    return full


def _scaled(item: Item, long_side: float, rng: np.random.Generator) -> np.ndarray:
    import cv2

    rgba = item.cutout.rgba
    h, w = rgba.shape[:2]
    k = long_side / max(h, w)
    size = (max(4, int(round(w * k))), max(4, int(round(h * k))))
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC
    out = cv2.resize(rgba, size, interpolation=interp)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < ROTATE_P:  # laid out at an angle (a flat-lay, a photo from above)
        out = _rotated(np.ascontiguousarray(out), rng.uniform(-ROTATE_MAX, ROTATE_MAX))
    gain = rng.uniform(0.8, 1.12)
    out = out.astype(np.float32)
    out[..., :3] = np.clip(out[..., :3] * gain + rng.uniform(-12, 12), 0, 255)
    return out.astype(np.uint8)


def _rotated(rgba: np.ndarray, degrees: float) -> np.ndarray:
    """``rgba`` turned by ``degrees`` on a canvas large enough to hold it (transparent corners)."""
    import cv2

    h, w = rgba.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sin + w * cos) + 1, int(h * cos + w * sin) + 1
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(rgba, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0))


def finish(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera and thumbnail damage on a whole scene: blur, down-and-up scale, JPEG."""
    import cv2
    from PIL import Image

    size_h, size_w = image.shape[:2]
    if rng.random() < 0.25:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.4))
    if rng.random() < 0.3:
        k = rng.uniform(0.2, 0.6)
        small = cv2.resize(
            image, (max(16, int(size_w * k)), max(16, int(size_h * k))), interpolation=cv2.INTER_AREA
        )
        image = cv2.resize(small, (size_w, size_h), interpolation=cv2.INTER_LINEAR)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=int(rng.integers(60, 96)))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def compose(
    items: Sequence[Item],
    background: np.ndarray,
    rng: np.random.Generator,
    *,
    damage: bool = True,
) -> Scene:
    """Paste ``items`` (in order; later ones on top) onto ``background`` (uint8 RGB, its size is the
    scene's). Each product's long side is drawn so that a scene of more products holds smaller ones."""
    size_h, size_w = background.shape[:2]
    side = min(size_h, size_w)
    canvas = background.astype(np.float32).copy()
    n = max(1, len(items))
    # one product: often large, as in a user's photo of one garment that fills the frame
    lo, hi = (0.45, 1.15) if n == 1 else (0.5 / np.sqrt(n), 1.05 / np.sqrt(n))
    alphas: list[np.ndarray] = []
    pasted: list[float] = []
    kept: list[Item] = []
    for item in items:
        rgba = _scaled(item, side * rng.uniform(lo, hi), rng)
        h, w = rgba.shape[:2]
        off = 5 if n == 1 else 8  # mostly inside the frame; a little may run off an edge
        x = int(rng.integers(-w // off, max(1 - w // off, size_w - w + w // off)))
        y = int(rng.integers(-h // off, max(1 - h // off, size_h - h + h // off)))
        alpha = _paste(canvas, rgba, x, y, shadow=rng.random() < 0.4, rng=rng)
        for k, prev in enumerate(alphas):
            alphas[k] = prev * (1 - alpha)
        alphas.append(alpha)
        pasted.append(float(alpha.sum()))
        kept.append(item)
    image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    if damage:
        image = finish(image, rng)
    scene = Scene(image)
    for item, alpha, area in zip(kept, alphas, pasted, strict=True):
        mask = alpha >= 0.5
        if area <= 0 or float(alpha.sum()) < (1 - MAX_HIDDEN) * area or not mask.any():
            continue  # hidden by later products (or pasted off the frame): not a labelled product
        ys, xs = np.nonzero(mask)
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        scene.items.append(Placed(box, mask, item.category, item.key))
    return scene
