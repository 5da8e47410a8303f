"""Exposure and contrast on the gray working copy (0..255 luma).

* ``underexposed``: score = the 99th-percentile luma (the highlights). A correctly exposed photo has
  something near white - a white studio background always does; an under-exposed one does not.
* ``overexposed``: score = probability from two small learned models, averaged in log-odds: trees on
  tonal features and a pixel CNN, both trained on synthetic exposure changes of catalog photos
  (``catalens.quality.training.exposure_trees``, ``catalens.quality.training.exposure_cnn``). One rule on one cue -
  clipped channels, pale highlights, lifted blacks - either misses +2 EV copies of light products or
  flags correctly exposed pale ones; the trees weigh the cues together, the CNN sees where they are.
* ``low_contrast``: score = luma range p99.9 - p0.1 (the extremes, not p1..p99): a contrast-reduced
  photo has neither a true black nor a true white, while a clean one - even a white product on a
  white background, or a flat pastel shot - keeps a real white and some deep shadow.

Thresholds were chosen on the dev half of the planted set (bench/quality_planted.py); the tonal
range threshold 128 is half of the full luma scale.
"""

from __future__ import annotations

import math
from typing import Any

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


def _mean_log_odds(*probs: float) -> float:
    """The probability whose log-odds are the mean of those of ``probs`` (each clipped to 1e-6)."""
    clipped = [min(max(p, 1e-6), 1 - 1e-6) for p in probs]
    logits = [math.log(p / (1 - p)) for p in clipped]
    return 1.0 / (1.0 + math.exp(-sum(logits) / len(logits)))


def _flat_content_share(img: QCImage) -> float:
    """Share of the non-white content whose 3x3 neighbourhood is one exact colour: near 0 for a
    photograph (sensor noise), high for a flat graphic or render."""
    import cv2
    import numpy as np

    assert img.decoded is not None
    rgb = np.asarray(img.decoded.image.convert("RGB"))[::2, ::2]  # every other pixel is enough
    content = rgb.min(axis=2) < 235
    n = int(content.sum())
    if n < 100:
        return 1.0
    total = rgb.astype(np.float32).sum(axis=2)
    kernel = np.ones((3, 3), np.uint8)
    flat = cv2.dilate(total, kernel) == cv2.erode(total, kernel)
    return float((flat & content).sum() / n)


@register_check("overexposed")
class OverexposedCheck(Check):
    """Score: probability (0..1) that the photo is over-exposed, from the packaged learned models:
    ``model`` (gradient-boosted trees on tonal features - clipped channels, lifted blacks, blown
    areas inside the product, the content's tone histogram; see
    :mod:`catalens.quality.exposure_features`) and, with ``cnn`` on, the exposure CNN
    (:mod:`catalens.quality.cnn_models`), their log-odds averaged. The CNN is run only when the trees
    give at least ``cnn_from`` (below it the average could only raise a clearly fine photo; on the
    planted set no over-exposed copy scores below 0.01) and not on noise-free flat graphics
    (``cnn_max_flat``: the CNN was trained on photographs). An image that is almost all
    near-white (a product bleached into the background) scores 1. ``details`` keep both models'
    probabilities and the readable cues: the share of the content with a clipped channel, the
    content's highlight (luma p98) and darkest tone (p0.5)."""

    unit = "over-exposure probability (0..1)"
    params = {
        "warn": 0.3,
        "fail": 0.85,
        "min_content": 0.01,
        "model": "overexposure",
        "cnn": True,
        "cnn_from": 0.01,
        "cnn_max_flat": 0.5,
    }

    def setup(self) -> None:
        self._model()
        if self.p["cnn"]:
            from catalens.quality.cnn_models import load_net

            load_net("exposure")

    def _model(self) -> Any:
        from catalens.quality.exposure_features import FEATURE_VERSION
        from catalens.quality.tree_models import load_learned

        return load_learned(str(self.p["model"]), feature_version=FEATURE_VERSION)

    def _with_cnn(self, img: QCImage, trees: float, details: dict[str, Any]) -> float:
        """The trees' probability averaged with the CNN's where the CNN is needed and applies."""
        if trees < float(self.p["cnn_from"]):  # clearly fine: the CNN could only flag it (and costs)
            details["cnn"] = f"not needed: the trees' probability {trees:.3f} is below cnn_from"
            return trees
        flat = _flat_content_share(img)
        if flat >= float(self.p["cnn_max_flat"]):  # a graphic or render: the CNN knows photographs
            details["cnn"] = f"not used: {flat:.0%} of the content is noise-free flat colour"
            return trees
        from catalens.quality.cnn_models import probability

        cnn = probability(img, "exposure")
        details["cnn"] = round(cnn, 4)
        return _mean_log_odds(trees, cnn)

    def run(self, img: QCImage) -> CheckResult:
        from catalens.quality.exposure_features import FEATURE_NAMES, exposure_features

        feats = exposure_features(img)
        cue = dict(zip(FEATURE_NAMES, feats.tolist(), strict=True))
        share = cue["content_share"]
        details: dict[str, Any] = {"content_share": round(share, 4)}
        if share < float(self.p["min_content"]):
            score = 1.0
            reason = (
                "over-exposed: the whole photo is near-white (the product is bleached into the background)"
            )
        else:
            score = trees = float(self._model().predict(feats)[0])
            details["trees"] = round(trees, 4)
            if self.p["cnn"]:
                score = self._with_cnn(img, trees, details)
            clipped = cue["content_partly_clipped"]  # (fully clipped pixels are background white)
            highlight, dark = 255 * cue["content_luma_p98"], 255 * cue["content_luma_p0.5"]
            details.update(
                {
                    "clipped_share_of_content": round(clipped, 4),
                    "content_highlight_p98": round(highlight),
                    "content_darkest_p0_5": round(dark),
                }
            )
            cues = (
                f"{clipped:.0%} of the product clipped, highlights at luma {highlight:.0f}, "
                f"darkest tones at {dark:.0f}"
            )
            reason = (
                f"over-exposed (score {score:.2f}): {cues}"
                if score >= float(self.p["warn"])
                else f"exposure fine (score {score:.2f}; {cues})"
            )
        verdict = grade(score, self.p["warn"], self.p["fail"], higher_is_worse=True)
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
