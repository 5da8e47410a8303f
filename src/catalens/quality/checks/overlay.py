"""``watermark_visual``: probability (0..1) that a see-through overlay (a watermark) lies on the
photo, from the packaged overlay detector (:mod:`catalens.quality.cnn_models`), which looks at the
pixels rather than at text that OCR read. It complements ``watermark`` (OCR): it finds large marks
at 25-45% opacity that OCR cannot box, and it does not read what the mark says. Opaque text (a
print on the product, a promo banner) is not what it looks for: ``text`` covers that."""

from __future__ import annotations

from catalens.quality.cnn_models import load_net, overlay_probability
from catalens.quality.context import QCImage
from catalens.quality.registry import Check, register_check
from catalens.quality.result import CheckResult, grade


@register_check("watermark_visual")
class WatermarkVisualCheck(Check):
    """Score: probability of a see-through overlay (0..1), higher is worse."""

    unit = "probability (0..1)"
    scope = "model"
    params = {"warn": 0.9, "fail": 0.97}

    def setup(self) -> None:
        load_net("overlay")

    def run(self, img: QCImage) -> CheckResult:
        score = overlay_probability(img)
        verdict = grade(score, self.p["warn"], self.p["fail"], higher_is_worse=True)
        reason = f"see-through overlay probability {score:.2f}" + (
            " - looks watermarked" if verdict != "pass" else ""
        )
        return CheckResult("watermark_visual", score, self.unit, verdict, reason)
