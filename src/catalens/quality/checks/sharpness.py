"""``blur``: blur, motion blur and soft focus, measured only on edges, per edge orientation.

Score: edge sharpness = median of |Laplacian| / |gradient| over the strongest edges (top 5% of
gradient magnitude, >= ``min_grad``) of each of 4 gradient orientations, worst orientation. For an
edge blurred to a Gaussian profile of width s (px) the ratio is ~1/s, so it is independent of the
edge's contrast and of how much of the image is flat: a white studio background has no edges and
is simply not looked at, so sharp products on white are not flagged (the weakness of the variance
of the Laplacian and of cleanvision's check, which reward busy images and punish plain ones). The
per-orientation minimum catches motion blur, which leaves edges parallel to the motion sharp.

Resolution: read on the working copy (long side <= 512 px, never upscaled), i.e. at the size the
photo is shown at; a 60x80 thumbnail is judged at its own pixel scale (a 1 px edge is sharp).
Higher is sharper: ~0.6-1.0 crisp, < 0.42 soft, < 0.33 clearly blurred (thresholds chosen on the dev half of the planted set).
"""

from __future__ import annotations

import numpy as np

from catalens.quality.context import QCImage
from catalens.quality.registry import Check, register_check
from catalens.quality.result import CheckResult, grade

N_ORIENTATIONS = 4


def edge_sharpness(
    gray: np.ndarray, *, min_grad: float = 20.0, top: float = 95.0, min_pixels: int = 30
) -> tuple[float | None, list[float]]:
    """(worst-orientation sharpness, per-orientation values; nan where too few edges)."""
    import cv2

    g = gray.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    mag = cv2.magnitude(gx, gy)
    strong = mag >= min_grad
    if int(np.count_nonzero(strong)) < min_pixels:
        return None, [float("nan")] * N_ORIENTATIONS
    lap = cv2.dilate(np.abs(cv2.Laplacian(g, cv2.CV_32F, ksize=3)), np.ones((3, 3), np.uint8))
    sx, sy, m_all, l_all = gx[strong], gy[strong], mag[strong], lap[strong]
    ax, ay = np.abs(sx), np.abs(sy)
    # 4 orientation bins of the gradient (0, 45, 90, 135 deg) without arctan: tan(22.5 deg) = 0.4142
    horiz = ay <= 0.4142 * ax
    vert = ax <= 0.4142 * ay
    diag = ~(horiz | vert)
    same_sign = (sx * sy) > 0
    bins = [horiz, diag & same_sign, vert, diag & ~same_sign]
    values: list[float] = []
    for sel in bins:
        if int(np.count_nonzero(sel)) < min_pixels:
            values.append(float("nan"))
            continue
        m = m_all[sel]
        keep = m >= np.percentile(m, top)
        values.append(float(np.median(l_all[sel][keep] / m[keep])))
    finite = [v for v in values if v == v]
    return (min(finite) if finite else None), values


@register_check("blur")
class BlurCheck(Check):
    """Score: edge sharpness (~1 / edge width in working-copy px), lower is blurrier; see the module doc."""

    higher_is_worse = False
    unit = "edge sharpness (1/px)"
    params = {"warn": 0.42, "fail": 0.33, "min_grad": 20.0}

    def run(self, img: QCImage) -> CheckResult:
        score, per = edge_sharpness(img.gray, min_grad=float(self.p["min_grad"]))
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
        return CheckResult(
            "blur", score, self.unit, verdict, f"{words} (edge sharpness {score:.2f}){extra}", details=details
        )
