"""Where text sits: on the product (its own print, following the garment) or over the photo (an overlay
on the backdrop, across the product's edge, or on a plate drawn behind it). Used by the text check's
``exclude_print`` / ``print_rule`` and by the watermark check on white-backdrop photos.
"""

from __future__ import annotations

import numpy as np

from catalens.quality.context import QCImage


def product_silhouette(img: QCImage, min_backdrop: float = 0.6) -> np.ndarray | None:
    """bool mask (working copy) of the main product of a white-backdrop photo: the largest connected
    region that is not backdrop (near-white 4-connected to the image border), so white print inside
    the product belongs to it. None when the photo's border is not mostly near-white (< ``min_backdrop``):
    no backdrop, no silhouette to tell print from overlay."""
    import cv2

    def compute() -> np.ndarray | None:
        nw = img.near_white
        h, w = nw.shape
        b = max(1, int(0.04 * min(h, w)))
        border = np.concatenate([nw[:b].ravel(), nw[-b:].ravel(), nw[:, :b].ravel(), nw[:, -b:].ravel()])
        if float(border.mean()) < min_backdrop:
            return None
        _, labels = cv2.connectedComponents(nw.astype(np.uint8), connectivity=4)
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        backdrop = np.isin(labels, edge[edge > 0])
        n, comp, stats, _ = cv2.connectedComponentsWithStats((~backdrop).astype(np.uint8), connectivity=8)
        if n <= 1:
            return None
        return comp == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))

    return img.memo("product_silhouette", compute)


def is_print(img: QCImage, box: list[float], *, min_inside: float = 0.9) -> bool:
    """True when a text box (full-resolution px) is print on the product of a white-backdrop photo: at
    least ``min_inside`` of the box lies inside the product's silhouette (see
    :func:`product_silhouette`). Text on the white margin, across the product's outline, or on its own
    banner apart from the product is not print. Photos without a white backdrop give no such
    evidence: their text is never called print."""
    sil = product_silhouette(img)
    if sil is None:
        return False
    h, w = sil.shape
    x0, y0, x1, y1 = (v / img.to_full for v in box)
    ys = slice(max(0, int(y0)), min(h, int(np.ceil(y1))))
    xs = slice(max(0, int(x0)), min(w, int(np.ceil(x1))))
    inside = sil[ys, xs]
    return inside.size > 0 and float(inside.mean()) >= min_inside


def product_region(img: QCImage) -> np.ndarray | None:
    """The product's pixels (working copy): on a white-backdrop photo its silhouette, joined with the
    packaged product detector's mask (:attr:`QCImage.product_mask`) when the silhouette holds under
    70% of that mask (a white garment on white, which the silhouette misses); elsewhere the detector's
    mask. None when neither finds a product."""
    sil, mask = product_silhouette(img), img.product_mask
    if sil is None or mask is None:
        return sil if mask is None else mask
    return sil | mask if (sil & mask).sum() < 0.7 * mask.sum() else sil


def _ground(img: QCImage, box: list[float]) -> tuple[slice, slice, np.ndarray] | None:
    """The working-copy slices of a text box (full-resolution px) and the mask of its ground: the
    majority (Otsu) luma class inside the box, i.e. what is around and between the strokes."""
    import cv2

    h, w = img.gray.shape
    x0, y0, x1, y1 = (v / img.to_full for v in box)
    ys = slice(max(0, int(y0)), min(h, int(np.ceil(y1))))
    xs = slice(max(0, int(x0)), min(w, int(np.ceil(x1))))
    gray = img.gray[ys, xs]
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return None
    _, cls = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    fg = cls.astype(bool)
    return ys, xs, (fg if fg.mean() >= 0.5 else ~fg)


def on_plate(
    img: QCImage, box: list[float], *, delta_e: float = 15.0, reach: float = 3.0, min_fill: float = 0.9
) -> bool:
    """True when a text box (full-resolution px) sits on a plate of its own - a band, badge or box
    drawn behind the text. The plate's colour is the majority (Otsu) class inside the box; the plate
    is the connected region of that colour (within ``delta_e`` CIELAB units) that holds those pixels.
    It is a plate when it ends within ``reach`` box heights above and below the box (a band may run
    to the frame's sides; a badge ends on all sides or at the frame's edge) and fills at least
    ``min_fill`` of its bounding box (a rectangle or rounded box: drawn plates fill 0.94-1.0 of it
    after JPEG, the printed patches of garments on the dev half of bench/quality_text_print.py mostly
    0.4-0.8). Print on a garment has the garment's own fabric around it, which runs on past the text
    or is not a rectangle."""
    import cv2

    lab = img.memo("lab", lambda: cv2.cvtColor(img.rgb, cv2.COLOR_RGB2LAB).astype(np.float32))
    h = lab.shape[0]
    cut = _ground(img, box)
    if cut is None:
        return False
    ys, xs, ground = cut
    by0, by1, bx0, bx1 = ys.start, ys.stop, xs.start, xs.stop
    plate = np.median(lab[by0:by1, bx0:bx1][ground], axis=0)
    th = by1 - by0
    wy0, wy1 = max(0, int(by0 - reach * th)), min(h, int(by1 + reach * th))
    window = lab[wy0:wy1]  # the full width: a band may cross the photo
    similar = (np.linalg.norm(window - plate, axis=2) <= delta_e).astype(np.uint8)
    _, labels = cv2.connectedComponents(similar, connectivity=4)
    seeds = labels[by0 - wy0 : by1 - wy0, bx0:bx1][ground]
    seeds = seeds[seeds > 0]
    if seeds.size == 0:
        return False
    comp = labels == np.bincount(seeds).argmax()
    rows, cols = np.flatnonzero(comp.any(axis=1)), np.flatnonzero(comp.any(axis=0))
    top, bottom = int(rows[0]) + wy0, int(rows[-1]) + wy0 + 1
    if (top == wy0 and wy0 > 0) or (bottom == wy1 and wy1 < h):
        return False  # runs on past the window above or below: the garment, the backdrop
    left, right = int(cols[0]), int(cols[-1]) + 1
    filled = comp.copy()
    filled[by0 - wy0 : by1 - wy0, bx0:bx1] = True  # the strokes' holes
    area = filled[top - wy0 : bottom - wy0, left:right]
    return float(area.mean()) >= min_fill


def text_on_product(
    img: QCImage, box: list[float], *, min_ground: float = 0.9, min_box: float = 0.75
) -> bool:
    """True when a text box is the product's own print on any background: at least ``min_ground`` of
    its ground (the pixels around and between the strokes, :func:`_ground`) and ``min_box`` of the
    whole box lie inside the product (:func:`product_region`), and the text is not on a plate of its
    own (:func:`on_plate`). The ground alone can mislead (an overlay's strokes join the silhouette;
    across a dark garment's edge the garment is the majority), the box alone too (print running to a
    seam): both must agree. Text on the background, across the product's edge, or in a band or box
    is an overlay."""
    region = product_region(img)
    cut = _ground(img, box)
    if region is None or cut is None:
        return False
    ys, xs, ground = cut
    inside = region[ys, xs]
    if float(inside[ground].mean()) < min_ground or float(inside.mean()) < min_box:
        return False
    return not on_plate(img, box)
