"""Low-content images.

* ``grayscale``: score = 99th percentile of the LAB chroma (0 = no colour anywhere). A colour photo of
  even a black-and-white product has some chroma (skin, reflections, logos, sensor tint); a grayscale
  conversion has none beyond JPEG noise.
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
    """Score: p99 LAB chroma; at or below ``warn``/``fail`` the image is grayscale."""

    higher_is_worse = False
    unit = "chroma p99 (LAB)"
    params = {"warn": 2.0, "fail": 1.0}

    def run(self, img: QCImage) -> CheckResult:
        hist = np.bincount(img.chroma.ravel(), minlength=256).cumsum()  # noqa: E501
        score = float(np.searchsorted(hist, hist[-1] * 0.99))
        verdict = grade(score, self.p["warn"], self.p["fail"], higher_is_worse=False)
        reason = (
            f"grayscale / no colour (chroma p99 {score:.1f}): a grayscale photo, or a colourless product"
            if verdict != "pass"
            else f"colour image (chroma p99 {score:.1f})"
        )
        return CheckResult("grayscale", score, self.unit, verdict, reason)


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
