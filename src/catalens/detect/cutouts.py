"""Cut a product out of a catalog photo shot on a plain white backdrop.

The backdrop is the near-white area connected to the photo's border (4-connected flood from the
edge), so white print or a white collar inside the product stays product. A photo whose border is
not mostly backdrop (a grey studio, a room, a user photo) gives no cut-out: its product cannot be
told from its background without a model. Small specks (dust, a shadow fleck) are dropped; parts of
the product that are separate (a pair of shoes, earrings) are kept when they are a fair share of
the largest part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEAR_WHITE_MIN = 236  # every channel at least this ...
NEAR_WHITE_SPREAD = 16  # ... and channels within this of each other
MIN_BORDER_BACKDROP = 0.80  # share of the photo's outer frame that must be backdrop
MIN_PART = 0.04  # a separate part must be at least this share of the largest part
MIN_AREA = 0.03  # the product must cover at least this share of the photo


@dataclass(frozen=True)
class Cutout:
    """An RGBA product cut-out, trimmed to its box."""

    rgba: np.ndarray  # (h, w, 4) uint8; alpha 0 = backdrop, 255 = product, feathered edge
    touches_edge: bool  # the product ran off the photo (a model cropped at the frame)

    @property
    def mask(self) -> np.ndarray:
        return self.rgba[..., 3] >= 128


def backdrop_mask(rgb: np.ndarray) -> np.ndarray:
    """bool mask of the near-white pixels 4-connected to the photo's border."""
    import cv2

    a = rgb.astype(np.int16)
    lo, hi = a.min(axis=2), a.max(axis=2)
    near_white = ((lo >= NEAR_WHITE_MIN) & (hi - lo <= NEAR_WHITE_SPREAD)).astype(np.uint8)
    _, labels = cv2.connectedComponents(near_white, connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, edge[edge > 0])


def cut_out(rgb: np.ndarray) -> Cutout | None:
    """The product of a white-backdrop photo (uint8 RGB) as an RGBA cut-out, or None when the photo
    has no white backdrop or no clear product."""
    import cv2

    h, w = rgb.shape[:2]
    if min(h, w) < 16:
        return None
    backdrop = backdrop_mask(rgb)
    frame = np.concatenate([backdrop[0], backdrop[-1], backdrop[:, 0], backdrop[:, -1]])
    if float(frame.mean()) < MIN_BORDER_BACKDROP:
        return None
    product = (~backdrop).astype(np.uint8)
    product = cv2.morphologyEx(product, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, comp, stats, _ = cv2.connectedComponentsWithStats(product, connectivity=8)
    if n <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.flatnonzero(areas >= MIN_PART * areas.max())
    mask = np.isin(comp, keep)
    if mask.mean() < MIN_AREA:
        return None
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    touches = bool(y0 == 0 or x0 == 0 or y1 == h or x1 == w)
    alpha = mask.astype(np.float32)
    # a one-pixel feather: pasted edges blend instead of showing a white or jagged fringe
    alpha = cv2.GaussianBlur(cv2.erode(alpha, np.ones((2, 2), np.uint8)), (3, 3), 0)
    rgba = np.dstack([rgb[..., :3], np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8)])
    return Cutout(np.ascontiguousarray(rgba[y0:y1, x0:x1]), touches)
