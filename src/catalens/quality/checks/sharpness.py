"""``blur``: blur, motion blur and soft focus, measured only on edges, per edge orientation.

Score: edge sharpness = median of |Laplacian| / |gradient| over the strongest edges (top 2% of
gradient magnitude, at least 10 pixels, >= ``min_grad``) of each of 4 gradient orientations, worst
orientation. Only the strongest edges (the product's outline, seams, print) are read: soft shading
on leather or satin makes many medium gradients that are smooth by nature, and reading them (top
5%, the earlier setting) flagged sharp shoes as soft. For an
edge blurred to a Gaussian profile of width s (px) the ratio is ~1/s, so it is independent of the
edge's contrast and of how much of the image is flat: a white studio background has no edges and
is simply not looked at, so sharp products on white are not flagged (the weakness of the variance
of the Laplacian and of cleanvision's check, which reward busy images and punish plain ones). The
per-orientation minimum catches motion blur, which leaves edges parallel to the motion sharp.
Each orientation's value is also capped by ``width_k`` / edge width, the width measured directly
(luma step across 9 px / steepest slope, ~2 px when crisp): a linear motion smears an edge into a
ramp with sharp corners, where the Laplacian spikes as if the edge were crisp; the ramp's width does
not lie (``width_k`` 2.4 chosen on the dev half: a crisp edge stays >= ~1, a 9 px smear reads ~0.3).

Resolution: read on the working copy (long side <= 512 px, never upscaled), i.e. at the size the
photo is shown at; a 60x80 thumbnail is judged at its own pixel scale (a 1 px edge is sharp).
Higher is sharper: ~0.6-1.0 crisp, < 0.42 soft, < 0.33 clearly blurred (thresholds chosen on the dev half of the planted set).

Regions (only for warn / fail verdicts): the working copy is cut into a grid of cells (about
``cell`` px); a cell with enough strong edges gets the same worst-orientation sharpness, read on
its own edges (the stronger half, edge width included); cells under the warn threshold are merged (8-connected) into boxes in
full-resolution pixels. When no cell has enough edges to judge (a uniformly soft photo), the box
around the edges / foreground is returned, so a blur verdict always points at something.
"""

from __future__ import annotations

import numpy as np

from catalens.quality.context import QCImage
from catalens.quality.registry import Check, register_check
from catalens.quality.result import CheckResult, grade

N_ORIENTATIONS = 4


# pixel step across an edge for each gradient orientation bin (dy, dx): along x, the down-right
# diagonal, along y, the other diagonal
_ACROSS = ((0, 1), (1, 1), (1, 0), (1, -1))


def _step_across(
    gray: np.ndarray, ys: np.ndarray, xs: np.ndarray, orientation: int, radius: int
) -> np.ndarray:
    """Luma step (max - min) over ``2 * radius + 1`` px through each pixel (``ys``, ``xs``) across an
    edge of gradient orientation bin ``orientation`` (clamped at the image border)."""
    dy, dx = _ACROSS[orientation]
    h, w = gray.shape
    t = np.arange(-radius, radius + 1)[:, None]
    vals = gray[np.clip(ys[None, :] + t * dy, 0, h - 1), np.clip(xs[None, :] + t * dx, 0, w - 1)]
    return (vals.max(axis=0) - vals.min(axis=0)).astype(np.float32)


def edge_sharpness(
    gray: np.ndarray,
    *,
    min_grad: float = 20.0,
    top: float = 98.0,
    min_pixels: int = 30,
    min_keep: int = 10,
    width_k: float | None = 2.4,
    width_radius: int = 4,
) -> tuple[float | None, list[float]]:
    """(worst-orientation sharpness, per-orientation values; nan where too few edges).

    Per orientation, the sharpness is the median |Laplacian| / |gradient| of the strongest edges,
    capped by ``width_k`` / (their median edge width): width = the luma step across the edge (max -
    min over ``2 * width_radius + 1`` px along the gradient) / its steepest slope (|Sobel| / 8), ~2 px
    for a crisp edge. The width term is what reads motion blur: a linear motion smears an edge into
    a ramp with sharp corners, where the Laplacian spikes as if the edge were crisp, but the ramp is
    as wide as the motion. ``width_k=None`` turns it off."""
    import cv2

    g = gray.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    mag = cv2.magnitude(gx, gy)
    strong = mag >= min_grad
    if int(np.count_nonzero(strong)) < min_pixels:
        return None, [float("nan")] * N_ORIENTATIONS
    lap = cv2.dilate(np.abs(cv2.Laplacian(g, cv2.CV_32F, ksize=3)), np.ones((3, 3), np.uint8))
    idx = np.flatnonzero(strong)
    sx, sy, m_all, l_all = gx.ravel()[idx], gy.ravel()[idx], mag.ravel()[idx], lap.ravel()[idx]
    ax, ay = np.abs(sx), np.abs(sy)
    # 4 orientation bins of the gradient (0, 45, 90, 135 deg) without arctan: tan(22.5 deg) = 0.4142
    horiz = ay <= 0.4142 * ax
    vert = ax <= 0.4142 * ay
    diag = ~(horiz | vert)
    same_sign = (sx * sy) > 0
    bins = [horiz, diag & same_sign, vert, diag & ~same_sign]
    values: list[float] = []
    for o, sel in enumerate(bins):
        if int(np.count_nonzero(sel)) < min_pixels:
            values.append(float("nan"))
            continue
        m = m_all[sel]
        k = min(m.size, max(min_keep, int(np.ceil(m.size * (100.0 - top) / 100.0))))
        keep = np.argpartition(m, m.size - k)[m.size - k :]  # the k strongest edges
        value = float(np.median(l_all[sel][keep] / m[keep]))
        if width_k is not None:
            ys, xs = np.divmod(idx[sel][keep], g.shape[1])
            step = _step_across(g, ys, xs, o, width_radius)
            diagonal = np.sqrt(2.0) if o in (1, 3) else 1.0  # a diagonal pixel step is sqrt(2) px long
            width = float(np.median(step / (m[keep] / 8.0))) * diagonal
            value = min(value, float(width_k) / max(width, 1e-6))
        values.append(value)
    finite = [v for v in values if v == v]
    return (min(finite) if finite else None), values


def blur_regions(
    gray: np.ndarray,
    foreground: np.ndarray | None,
    *,
    limit: float,
    min_grad: float = 20.0,
    cell: int = 48,
    scale: float = 1.0,
    width_k: float | None = 2.4,
) -> list[list[float]]:
    """Boxes ``[x0, y0, x1, y1]`` (working-copy px times ``scale``) of the grid cells whose edge
    sharpness is <= ``limit``, 8-connected cells merged; see the module doc. Each cell is measured
    like the whole image (:func:`edge_sharpness`, edge width included) over the stronger half of its
    edges."""
    from scipy import ndimage

    h, w = gray.shape
    ny, nx = max(1, round(h / cell)), max(1, round(w / cell))
    ys = np.linspace(0, h, ny + 1).round().astype(int)
    xs = np.linspace(0, w, nx + 1).round().astype(int)
    low = np.zeros((ny, nx), dtype=bool)
    judged = False
    for i in range(ny):
        for j in range(nx):
            # a margin so that Sobel / Laplacian and the step across an edge (4 px each side) see
            # the cell's own edges, not the crop border
            y0, y1, x0, x1 = (
                max(0, ys[i] - 6),
                min(h, ys[i + 1] + 6),
                max(0, xs[j] - 6),
                min(w, xs[j + 1] + 6),
            )
            value, _ = edge_sharpness(
                gray[y0:y1, x0:x1], min_grad=min_grad, top=50.0, min_pixels=12, width_k=width_k
            )
            if value is None:
                continue
            judged = True
            low[i, j] = value <= limit
    boxes: list[list[float]] = []
    if judged:
        labels, count = ndimage.label(low, structure=np.ones((3, 3), dtype=bool))
        for sl in ndimage.find_objects(labels):
            if sl is not None:
                boxes.append([xs[sl[1].start], ys[sl[0].start], xs[sl[1].stop], ys[sl[0].stop]])
    if not boxes:  # nothing measurable per cell: the area that holds the content
        mask = foreground if foreground is not None and foreground.any() else None
        if mask is None:
            return []
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        boxes = [[cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]]
    return [[round(float(v) * scale) for v in b] for b in boxes]


@register_check("blur")
class BlurCheck(Check):
    """Score: edge sharpness (~1 / edge width in working-copy px), lower is blurrier; see the module doc."""

    higher_is_worse = False
    unit = "edge sharpness (1/px)"
    params = {"warn": 0.42, "fail": 0.33, "min_grad": 20.0, "cell": 48, "width_k": 2.4}

    def run(self, img: QCImage) -> CheckResult:
        wk = self.p.get("width_k")
        score, per = edge_sharpness(
            img.gray, min_grad=float(self.p["min_grad"]), width_k=None if wk is None else float(wk)
        )
        details = {"per_orientation": [round(v, 4) if v == v else None for v in per]}
        if score is None:
            return CheckResult(
                "blur", None, self.unit, "pass", "no edges to judge sharpness on", details=details
            )
        verdict = grade(score, self.p["warn"], self.p["fail"], higher_is_worse=False)
        words = {"pass": "sharp", "warn": "soft / slightly blurred", "fail": "blurred"}[verdict]
        worst_dir = int(np.nanargmin(per)) * 180 // N_ORIENTATIONS
        extra = ""
        finite = [v for v in per if v == v]
        if verdict != "pass" and max(finite) > 2 * score:
            extra = f"; motion blur likely (edges at {worst_dir} deg are smeared, others sharp)"
        regions: list[list[float]] = []
        if verdict != "pass":
            regions = blur_regions(
                img.gray,
                img.foreground,
                limit=float(self.p["warn"]),
                min_grad=float(self.p["min_grad"]),
                cell=int(self.p.get("cell", 48)),
                scale=img.to_full,
                width_k=None if wk is None else float(wk),
            )
        return CheckResult(
            "blur",
            score,
            self.unit,
            verdict,
            f"{words} (edge sharpness {score:.2f}){extra}",
            regions=regions,
            details=details,
        )
