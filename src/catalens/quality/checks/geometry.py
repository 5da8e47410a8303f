"""Geometry: ``resolution`` (shortest and longest side of the file, px) and ``aspect_ratio``."""

from __future__ import annotations

from catalens.quality.context import QCImage
from catalens.quality.registry import Check, register_check
from catalens.quality.result import CheckResult, worst


@register_check("resolution")
class ResolutionCheck(Check):
    """Score: the shortest side in px of the original file (before any draft decoding). Warns/fails when
    the shortest or the longest side is under its limit (a limit of 0 is off)."""

    higher_is_worse = False
    unit = "px (shortest side)"
    params = {
        "min_side_warn": 300,
        "min_side_fail": 150,
        "min_long_side_warn": 500,
        "min_long_side_fail": 250,
    }

    def run(self, img: QCImage) -> CheckResult:
        w, h = img.width or 0, img.height or 0
        short, long_ = min(w, h), max(w, h)
        checks = [
            (short, "shortest side", self.p["min_side_fail"], self.p["min_side_warn"]),
            (long_, "longest side", self.p["min_long_side_fail"], self.p["min_long_side_warn"]),
        ]
        verdicts, reasons = [], []
        for value, label, fail, warn in checks:
            if fail and value < fail:
                verdicts.append("fail")
                reasons.append(f"{label} {value}px < {fail}px")
            elif warn and value < warn:
                verdicts.append("warn")
                reasons.append(f"{label} {value}px < {warn}px")
        verdict = worst(verdicts)
        reason = "; ".join(reasons) if reasons else f"{w}x{h}px is large enough"
        return CheckResult(
            "resolution",
            float(short),
            self.unit,
            verdict,
            reason,
            details={"width": w, "height": h, "long_side": long_},
        )


@register_check("aspect_ratio")
class AspectRatioCheck(Check):
    """Score: long side / short side. Warns/fails outside ``[min, max]`` of width/height when set,
    or when the ratio exceeds ``warn``/``fail``."""

    unit = "long/short"
    params = {"warn": 2.0, "fail": 3.0, "min_w_over_h": None, "max_w_over_h": None}

    def run(self, img: QCImage) -> CheckResult:
        w, h = img.width or 1, img.height or 1
        ratio = max(w, h) / min(w, h)
        wh = w / h
        verdict = "pass"
        reason = f"aspect ratio {w}:{h} ({ratio:.2f}:1) is fine"
        if self.p["fail"] and ratio >= self.p["fail"]:
            verdict, reason = "fail", f"aspect ratio {ratio:.2f}:1 is over {self.p['fail']}:1"
        elif self.p["warn"] and ratio >= self.p["warn"]:
            verdict, reason = "warn", f"aspect ratio {ratio:.2f}:1 is over {self.p['warn']}:1"
        lo, hi = self.p["min_w_over_h"], self.p["max_w_over_h"]
        if (lo is not None and wh < lo) or (hi is not None and wh > hi):
            verdict = "fail"
            reason = f"width/height {wh:.2f} is outside [{lo if lo is not None else '-'}, {hi if hi is not None else '-'}]"
        return CheckResult(
            "aspect_ratio", ratio, self.unit, verdict, reason, details={"w_over_h": round(wh, 4)}
        )  # type: ignore[arg-type]
