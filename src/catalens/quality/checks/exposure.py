"""Exposure and contrast on the gray working copy (0..255 luma).

* ``underexposed``: score = the 99th-percentile luma (the highlights). A correctly exposed photo has
  something near white - a white studio background always does; an under-exposed one does not.
* ``overexposed``: score = share of the content (not the white background) with a clipped channel.
* ``low_contrast``: score = luma range p99 - p1: low for washed-out, hazy or flat photos.
"""

from __future__ import annotations

from catalens.quality.context import QCImage
from catalens.quality.registry import Check, register_check
from catalens.quality.result import CheckResult, grade


def _percentiles(img: QCImage) -> dict[int, float]:
    return {p: img.gray_percentile(p) for p in (1, 2, 50, 98, 99)}


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
    near-white (a product bleached into the background) scores 1."""

    unit = "blown share of content (0..1)"
    params = {"warn": 0.15, "fail": 0.3, "min_content": 0.01}

    def run(self, img: QCImage) -> CheckResult:
        content = ~img.near_white
        share = float(content.mean())
        if share < float(self.p["min_content"]):
            score = 1.0
        else:
            score = float((img.channel_range[1][content] >= 253).mean())
        verdict = grade(score, self.p["warn"], self.p["fail"], higher_is_worse=True)
        reason = (
            f"over-exposed: {score:.0%} of the content is blown out to white"
            if verdict != "pass"
            else f"highlights fine ({score:.0%} of the content clipped)"
        )
        return CheckResult(
            "overexposed", score, self.unit, verdict, reason, details={"content_share": round(share, 4)}
        )


@register_check("low_contrast")
class LowContrastCheck(Check):
    """Score: luma range p99 - p1 (0..255); lower is flatter / hazier."""

    higher_is_worse = False
    unit = "luma range p1..p99 (0..255)"
    params = {"warn": 100.0, "fail": 70.0}

    def run(self, img: QCImage) -> CheckResult:
        p = _percentiles(img)
        lo, hi = p[1], p[99]
        score = hi - lo
        verdict = grade(score, self.p["warn"], self.p["fail"], higher_is_worse=False)
        reason = (
            f"low contrast: tones span only luma {lo:.0f}..{hi:.0f}"
            if verdict != "pass"
            else f"contrast fine (luma {lo:.0f}..{hi:.0f})"
        )
        return CheckResult("low_contrast", score, self.unit, verdict, reason, details={"p1": lo, "p99": hi})
