"""Exposure and contrast on the gray working copy (0..255 luma).

* ``underexposed``: score = the 99th-percentile luma (the highlights). A correctly exposed photo has
  something near white - a white studio background always does; an under-exposed one does not.
* ``overexposed``: score = share of the content (not the white background) with a clipped channel;
  also flagged when the content's own highlights (luma p99 of the non-background pixels) are almost
  white: over-exposure bleaches the bright parts of the product into pale, near-white tints.
* ``low_contrast``: score = luma range p99.9 - p0.1 (the extremes, not p1..p99): a contrast-reduced
  photo has neither a true black nor a true white, while a clean one - even a white product on a
  white background, or a flat pastel shot - keeps a real white and some deep shadow.

Thresholds were chosen on the dev half of the planted set (bench/quality_planted.py); the tonal
range threshold 128 is half of the full luma scale.
"""

from __future__ import annotations

import numpy as np

from catalens.quality.context import QCImage
from catalens.quality.registry import Check, register_check
from catalens.quality.result import CheckResult, grade


def _percentiles(img: QCImage) -> dict[float, float]:
    return {p: img.gray_percentile(p) for p in (0.1, 1, 2, 50, 98, 99, 99.9)}


@register_check("underexposed")
class UnderexposedCheck(Check):
    """Score: 99th-percentile luma (0..255); lower is darker."""

    higher_is_worse = False
    unit = "luma p99 (0..255)"
    params = {"warn": 141.0, "fail": 110.0}

    def run(self, img: QCImage) -> CheckResult:
        p = _percentiles(img)
        score = p[99]
        verdict = grade(score, self.p["warn"], self.p["fail"], higher_is_worse=False)
        reason = (
            f"under-exposed: the brightest parts only reach luma {score:.0f}/255"
            if verdict != "pass"
            else f"exposure fine (highlights at luma {score:.0f})"
        )
        return CheckResult("underexposed", score, self.unit, verdict, reason, details={"median": p[50]})


@register_check("overexposed")
class OverexposedCheck(Check):
    """Score: share (0..1) of the content (pixels that are not near-white background) with a blown,
    clipped channel (>= 253): highlights burnt out into flat white. An image that is almost all
    near-white (a product bleached into the background) scores 1. Independently, the content's
    highlights (luma p99 of the content) at or above ``highlight_warn`` warn: bright parts washed out
    into pale near-white tints (``None`` turns this off)."""

    unit = "blown share of content (0..1)"
    params = {"warn": 0.15, "fail": 0.3, "min_content": 0.01, "highlight_warn": 249.0}

    def run(self, img: QCImage) -> CheckResult:
        content = ~img.near_white
        share = float(content.mean())
        highlight: float | None = None
        if share < float(self.p["min_content"]):
            score = 1.0
        else:
            score = float((img.channel_range[1][content] >= 253).mean())
            hist = np.bincount(img.gray[content], minlength=256).cumsum()
            highlight = float(np.searchsorted(hist, hist[-1] * 0.99))
        verdict = grade(score, self.p["warn"], self.p["fail"], higher_is_worse=True)
        limit = self.p["highlight_warn"]
        washed = limit is not None and highlight is not None and highlight >= float(limit)
        if washed and verdict == "pass":
            verdict = "warn"
        if score >= float(self.p["warn"]) or share < float(self.p["min_content"]):
            reason = f"over-exposed: {score:.0%} of the content is blown out to white"
        elif washed:
            reason = f"over-exposed / washed out: the product's highlights reach luma {highlight:.0f}/255"
        else:
            reason = f"highlights fine ({score:.0%} of the content clipped)"
        details = {"content_share": round(share, 4), "content_highlight_p99": highlight}
        return CheckResult("overexposed", score, self.unit, verdict, reason, details=details)


@register_check("low_contrast")
class LowContrastCheck(Check):
    """Score: luma range p99.9 - p0.1 (0..255); lower is flatter / hazier."""

    higher_is_worse = False
    unit = "luma range p0.1..p99.9 (0..255)"
    params = {"warn": 128.0, "fail": 90.0}

    def run(self, img: QCImage) -> CheckResult:
        p = _percentiles(img)
        lo, hi = p[0.1], p[99.9]
        score = hi - lo
        verdict = grade(score, self.p["warn"], self.p["fail"], higher_is_worse=False)
        reason = (
            f"low contrast: tones span only luma {lo:.0f}..{hi:.0f}"
            if verdict != "pass"
            else f"contrast fine (luma {lo:.0f}..{hi:.0f})"
        )
        return CheckResult("low_contrast", score, self.unit, verdict, reason, details={"p1": lo, "p99": hi})
