"""Learned colour calibration: a foreground colour descriptor, cached per image, for colour heads.

The descriptor (:func:`colour_descriptor`, ``DESCRIPTOR_DIM`` values) describes the product's
foreground (the mask of :func:`catalens.classify.colour.features.foreground_mask` on a copy whose long side
is ``SIDE`` px) in CIELAB:

* a coarse Lab histogram (``L`` x ``a`` x ``b`` = 5 x 7 x 7 bins) of the foreground, and the same
  histogram of the foreground without skin-tone pixels (models wear many catalog products);
* soft palette histograms (fractions per retail colour name) of both pixel sets;
* the Lab mean and standard deviation of the skin-free foreground;
* the three k-means colours of the skin-free foreground, largest first, with their fractions;
* the foreground and skin fractions.

Histograms are square-rooted (Hellinger) so that a linear head compares them sensibly. A colour
field trained with ``--colour-features`` (``input`` ``image+colour``) concatenates the image
embedding and this descriptor; the head is the usual calibrated linear probe.
Descriptors are computed once per image sha and stored in ``classify_image_cache``
(kind :data:`DESCRIPTOR_KIND`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from catalens.classify.colour.features import PALETTE_LAB, _kmeans, foreground_mask, rgb_to_lab, skin_mask

if TYPE_CHECKING:
    from catalens.catalog_base import CatalogParts

DESCRIPTOR_KIND = "colour-v2"
SIDE = 128
L_BINS, AB_BINS, AB_RANGE = 5, 7, 60.0
MAX_PIXELS = 2500
DESCRIPTOR_DIM = 2 * L_BINS * AB_BINS * AB_BINS + 2 * len(PALETTE_LAB) + 6 + 3 * 4 + 2


def _lab_hist(lab: np.ndarray) -> np.ndarray:
    if len(lab) == 0:
        return np.zeros(L_BINS * AB_BINS * AB_BINS, np.float32)
    li = np.clip((lab[:, 0] / 100.0 * L_BINS).astype(int), 0, L_BINS - 1)
    ai = np.clip(((lab[:, 1] + AB_RANGE) / (2 * AB_RANGE) * AB_BINS).astype(int), 0, AB_BINS - 1)
    bi = np.clip(((lab[:, 2] + AB_RANGE) / (2 * AB_RANGE) * AB_BINS).astype(int), 0, AB_BINS - 1)
    h = np.bincount((li * AB_BINS + ai) * AB_BINS + bi, minlength=L_BINS * AB_BINS * AB_BINS)
    return (h / len(lab)).astype(np.float32)


def _palette_hist(lab: np.ndarray) -> np.ndarray:
    if len(lab) == 0:
        return np.zeros(len(PALETTE_LAB), np.float32)
    d = np.linalg.norm(lab[:, None, :] - PALETTE_LAB[None], axis=-1)
    w = np.exp(-((d - d.min(1, keepdims=True)) ** 2) / (2 * 8.0**2))
    w /= w.sum(1, keepdims=True)
    return w.mean(0).astype(np.float32)


def colour_descriptor(img: Any, product_mask: np.ndarray | None = None) -> np.ndarray:
    """The fixed-length (:data:`DESCRIPTOR_DIM`) foreground colour descriptor of a PIL image;
    ``product_mask`` (bool, any size of the image's shape ratio) replaces the foreground separation
    (bench/classify_colour_mask.py measures the product detector's mask there)."""
    im = img.convert("RGB")
    im.thumbnail((SIDE, SIDE))  # downscale before masking: the mask and histograms need no more
    arr = np.asarray(im, np.uint8)
    if product_mask is not None and product_mask.any():
        from catalens.classify.colour.features import _resize_mask

        mask = _resize_mask(product_mask, arr.shape[:2])
    else:
        mask, _ = foreground_mask(arr)
    px = arr[mask]
    if len(px) > MAX_PIXELS:
        px = px[np.random.default_rng(0).choice(len(px), MAX_PIXELS, replace=False)]
    if len(px) == 0:
        px = arr.reshape(-1, 3)
    skin = skin_mask(px)
    lab = rgb_to_lab(px).astype(np.float32)
    cloth = lab[~skin] if (~skin).sum() >= 20 else lab
    centres, assign = _kmeans(cloth.astype(np.float64).copy(), 3, iters=8)
    frac = np.bincount(assign, minlength=len(centres)) / max(len(assign), 1)
    order = np.argsort(-frac)
    km = np.zeros((3, 4), np.float32)
    for r, j in enumerate(order[:3]):
        km[r] = [*(centres[j] / 50.0), frac[j]]
    stats = np.concatenate([cloth.mean(0), cloth.std(0)]) / 50.0
    parts = [
        np.sqrt(_lab_hist(lab)),
        np.sqrt(_lab_hist(cloth)),
        np.sqrt(_palette_hist(lab)),
        np.sqrt(_palette_hist(cloth)),
        stats,
        km.ravel(),
        [float(mask.mean()), float(skin.mean())],
    ]
    return np.concatenate([np.asarray(p, np.float32).ravel() for p in parts])


def colour_descriptors(
    cat: CatalogParts, shas: Sequence[str], progress: Callable[[int, int], None] | None = None
) -> np.ndarray:
    """(N, DESCRIPTOR_DIM) descriptors of stored images, computed once per sha (cached in the catalog)."""
    from catalens.classify.cache import cached, decode_vector, encode_vector
    from catalens.errors import LabelsError
    from catalens.imageio import open_image

    def compute(sha: str) -> bytes:
        rec = cat.db.image(sha)
        if rec is None:
            raise LabelsError(f"image {sha} is not in the catalog")
        return encode_vector(colour_descriptor(open_image(rec.stored_path or rec.source).image))

    raw = cached(cat.db, DESCRIPTOR_KIND, list(shas), compute, batch=256, progress=progress)
    return np.stack([decode_vector(raw[s]) for s in shas]).astype(np.float32)
