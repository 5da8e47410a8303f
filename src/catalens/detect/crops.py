"""Cut a detected product out of its photo, for search, classification and colour.

A crop is the detection's box widened by ``pad`` of its size on each side. With ``on_white`` the
pixels outside the product's mask (grown by a few pixels, so a soft edge is kept) are set to white,
so the crop looks like a catalog photo; when the mask covers too little of the box to trust, the
plain crop is used. The plain crop is the default: on the dev half of ``bench/detect.py`` (packaged
detector) it found the exact product as often as the crop on white, and named the catalog colour and
matched the user photos' category more often (figures: bench/RESULTS.md "detect").
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from catalens.detect.detector import Detection

MIN_MASK_SHARE = 0.15  # below this share of the box, the mask is not trusted: plain crop


def crop_box(det: Detection, width: int, height: int, pad: float = 0.06) -> tuple[int, int, int, int]:
    """The integer crop box (x0, y0, x1, y1) of a detection, widened and clipped to the photo."""
    x0, y0, x1, y1 = det.box
    dx, dy = pad * (x1 - x0), pad * (y1 - y0)
    box = (
        max(0, int(np.floor(x0 - dx))),
        max(0, int(np.floor(y0 - dy))),
        min(width, int(np.ceil(x1 + dx))),
        min(height, int(np.ceil(y1 + dy))),
    )
    if box[2] - box[0] < 2 or box[3] - box[1] < 2:
        raise ValueError(f"detection box {det.box} is empty inside a {width}x{height} photo")
    return box


def product_crop(
    rgb: np.ndarray, det: Detection, *, on_white: bool = False, pad: float = 0.06
) -> Image.Image:
    """The detected product as a PIL image (RGB)."""
    import cv2

    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = crop_box(det, w, h, pad)
    part = np.ascontiguousarray(rgb[y0:y1, x0:x1, :3])
    if on_white and det.mask is not None:
        mask = det.mask[y0:y1, x0:x1]
        if mask.mean() >= MIN_MASK_SHARE:
            grow = max(1, int(round(0.01 * max(part.shape[:2]))))
            keep = cv2.dilate(mask.astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) > 0
            part = np.where(keep[..., None], part, np.uint8(255))
    return Image.fromarray(part)
