"""Low-content images.

* ``grayscale``: score = share of the photo's pixels with real chroma (LAB chroma >= ``min_chroma``,
  about one just-noticeable difference), over the WHOLE photo. A grayscale conversion has R = G = B in
  every pixel, and JPEG, resizing and PNG keep it so: chroma 0 everywhere. A colour photo of a black,
  white or silver product is near-neutral where the product is, but somewhere (skin, a label, a
  reflection, the backdrop's tint, the sensor's own colour noise) some pixels carry chroma. A quantile
  of the chroma (the old score: p99 <= 2) called 4% of clean Myntra photos grayscale, mostly black,
  white and silver products whose colour lives in under 1% of the pixels; this share keeps any such
  pixels as evidence. A photo that is neutral in every pixel is still flagged: its file carries no
  colour (a desaturated photo of a colourless product reads the same, and is flagged too).
* ``low_information``: blank, flat or placeholder images: score = share of the image with visible
  detail (Sobel magnitude > ``edge``), together with the luma spread.
"""

from __future__ import annotations

import numpy as np

from catalens.quality.context import QCImage
from catalens.quality.registry import Check, register_check
from catalens.quality.result import CheckResult, grade


@register_check("grayscale")
class GrayscaleCheck(Check):
    """Score: share (0..1) of pixels with LAB chroma >= ``min_chroma``; at or below ``warn``/``fail`` the
    photo has no colour anywhere (a grayscale photo)."""

    higher_is_worse = False
    unit = "share of pixels with chroma (0..1)"
    params = {"min_chroma": 2, "warn": 0.0001, "fail": 0.0}

    def run(self, img: QCImage) -> CheckResult:
        counts = np.bincount(img.chroma.ravel(), minlength=256)
        total = int(counts.sum())
        score = float(counts[int(self.p["min_chroma"]) :].sum()) / max(1, total)
        p99 = float(np.searchsorted(counts.cumsum(), total * 0.99))
        top = int(np.flatnonzero(counts)[-1]) if total else 0
        verdict = grade(score, self.p["warn"], self.p["fail"], higher_is_worse=False)
        reason = (
            f"grayscale: no colour anywhere in the photo ({score:.3%} of pixels with chroma >= "
            f"{self.p['min_chroma']}, max chroma {top})"
            if verdict != "pass"
            else f"colour photo ({score:.2%} of pixels with chroma >= {self.p['min_chroma']}, max {top})"
        )
        return CheckResult(
            "grayscale", score, self.unit, verdict, reason, details={"chroma_p99": p99, "chroma_max": top}
        )


@register_check("low_information")
class LowInformationCheck(Check):
    """Score: share (0..1) of pixels with visible detail. Fails on a blank/flat image (luma spread under
    ``min_spread`` or detail under ``fail``), warns under ``warn``."""

    higher_is_worse = False
    unit = "detail share (0..1)"
    params = {"edge": 40.0, "warn": 0.004, "fail": 0.001, "min_spread": 6.0}

    def run(self, img: QCImage) -> CheckResult:
        detail = float(np.count_nonzero(img.grad > float(self.p["edge"]))) / img.grad.size
        spread = img.gray_percentile(99.5) - img.gray_percentile(0.5)
        if spread < float(self.p["min_spread"]):
            return CheckResult(
                "low_information",
                detail,
                self.unit,
                "fail",
                f"blank image: a single flat tone (luma spread {spread:.0f})",
                details={"spread": spread},
            )
        verdict = grade(detail, self.p["warn"], self.p["fail"], higher_is_worse=False)
        reason = (
            f"almost no content: only {detail:.2%} of the image has detail"
            if verdict != "pass"
            else f"enough content ({detail:.1%} of the image has detail)"
        )
        return CheckResult("low_information", detail, self.unit, verdict, reason, details={"spread": spread})
