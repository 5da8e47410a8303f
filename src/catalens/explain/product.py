"""Product weighting of a heatmap: keep what the model looked at *on the product*.

The packaged product detector (:mod:`catalens.detect`) finds the product's pixels in the source photo;
that mask, cut to the area the network saw (the preprocessing's crop box), widened a little and
softened (a Gaussian of ``sigma`` x the input's shorter side, so that the outline keeps part of its
weight), multiplies the map. A photo where no product is found keeps its map. How much of the map's
mass lands on the product, and whether the weighted map stays faithful (deletion AUC against random
maps), is measured in ``bench/explain_product_mass.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from catalens.explain.maps import Box, normalise, smooth

SIGMA = 0.01  # of the input's shorter side
BOOST = 1.0  # the softened mask times this, clipped to 1


def from_source(mask: np.ndarray, crop_box: Box, size: tuple[int, int]) -> np.ndarray:
    """A source-resolution mask cut to ``crop_box`` and resized to the input's ``(height, width)``,
    float32 0..1 (the share of each input pixel's area that is set)."""
    from PIL import Image

    h, w = mask.shape
    x0, y0, x1, y1 = crop_box
    img = Image.fromarray(mask.astype(np.uint8) * 255)
    # pixels of the crop box that lie outside the source (a letterbox) stay 0
    out = img.transform(
        (size[1], size[0]), Image.Transform.EXTENT, (x0, y0, x1, y1), resample=Image.Resampling.BILINEAR
    )
    return np.asarray(out, dtype=np.float32) / 255.0


def product_mask(image: Any) -> np.ndarray | None:
    """The packaged product detector's product-pixel mask of a PIL image (its size; every pixel it calls
    product, with or without a box over its threshold), or None when it covers under 2% of the photo."""
    from catalens.detect.detector import photo_product_mask

    return photo_product_mask(image, boxed=False, min_share=0.02)


def weight(
    input_map: np.ndarray, image: Any, crop_box: Box, *, sigma: float = SIGMA, boost: float = BOOST
) -> tuple[np.ndarray, bool]:
    """``input_map`` weighted by the product's (softened) mask and rescaled to 0..1, and whether a
    product was found (False: the map is returned unchanged)."""
    mask = product_mask(image)
    if mask is None or not mask.any():
        return input_map, False
    h, w = input_map.shape
    soft = np.clip(smooth(from_source(mask, crop_box, (h, w)), sigma * min(h, w)) * boost, 0.0, 1.0)
    weighted = normalise(input_map * soft)
    if not weighted.any():
        return input_map, False
    return weighted, True
