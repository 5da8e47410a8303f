"""Background and framing for studio product shots.

* ``background``: score = share of the border band (outer ``band`` of each side) that is near-white
  (every channel >= 235, channel spread <= 14). A white studio background scores ~1; a busy scene ~0.
* ``framing``: the product's fill of the frame and whether it touches / is cut off at the edges.
  Fill = max(product bbox width / image width, product bbox height / image height) - the way
  marketplaces measure "the product fills 85% of the frame". Only meaningful on a light background.
"""

from __future__ import annotations

import numpy as np

from catalens.quality.context import QCImage
from catalens.quality.registry import Check, register_check
from catalens.quality.result import CheckResult, grade, worst


def border_band(shape: tuple[int, ...], band: float) -> np.ndarray:
    """bool mask of the outer ``band`` fraction (of the short side, >= 1 px) of an image."""
    h, w = shape[:2]
    b = max(1, int(round(band * min(h, w))))
    m = np.zeros((h, w), bool)
    m[:b], m[-b:], m[:, :b], m[:, -b:] = True, True, True, True
    return m


def product_box(mask: np.ndarray, trim: float = 0.002) -> tuple[int, int, int, int] | None:
    """Robust bounding box (x0, y0, x1, y1) of a foreground mask: rows/cols with at least ``trim``
    of their pixels set (ignores specks and JPEG noise); None when nothing is set."""
    h, w = mask.shape
    cols = np.flatnonzero(mask.sum(axis=0) > max(1, trim * h))
    rows = np.flatnonzero(mask.sum(axis=1) > max(1, trim * w))
    if cols.size == 0 or rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


@register_check("background")
class BackgroundCheck(Check):
    """Score: share (0..1) of the border band that is near-white. Lower is worse."""

    higher_is_worse = False
    unit = "share of border near-white"
    params = {"band": 0.04, "warn": 0.85, "fail": 0.6}

    def run(self, img: QCImage) -> CheckResult:
        band = border_band(img.near_white.shape, float(self.p["band"]))
        share = float(img.near_white[band].mean())
        verdict = grade(share, self.p["warn"], self.p["fail"], higher_is_worse=False)
        if verdict == "pass":
            reason = f"background is white ({share:.0%} of the border is near-white)"
        else:
            mean = img.rgb[band & ~img.near_white].reshape(-1, 3).mean(axis=0)
            colour = "rgb({:.0f},{:.0f},{:.0f})".format(*mean)
            reason = (
                f"background is not white: only {share:.0%} of the border is near-white (mostly {colour})"
            )
        return CheckResult("background", share, self.unit, verdict, reason)


@register_check("framing")
class FramingCheck(Check):
    """Score: product fill of the frame (0..1, see module doc). Fails/warns under ``min_fill_*``; warns
    (or fails with ``touching: fail``) when the product touches more than ``max_touch_sides`` sides.
    Skipped (pass) when the background is not mostly white, since the product cannot be isolated."""

    higher_is_worse = False
    unit = "fill (bbox side / frame side)"
    params = {
        "min_fill_warn": None,
        "min_fill_fail": None,
        "max_fill": None,
        "touching": "warn",
        "max_touch_sides": 0,
        "touch_share": 0.03,
        "min_white_border": 0.6,
    }

    def run(self, img: QCImage) -> CheckResult:
        nw = img.near_white
        band = border_band(nw.shape, 0.04)
        if float(nw[band].mean()) < float(self.p["min_white_border"]):
            return CheckResult(
                "framing", None, self.unit, "pass", "not a white-background shot: framing not measured"
            )
        fg = img.foreground
        box = product_box(fg)
        if box is None:
            return CheckResult(
                "framing", 0.0, self.unit, "fail", "no product found: the image is (almost) blank"
            )
        h, w = fg.shape
        x0, y0, x1, y1 = box
        fill = max((x1 - x0) / w, (y1 - y0) / h)
        verdicts: list[str] = []
        reasons: list[str] = []
        if self.p["min_fill_fail"] is not None or self.p["min_fill_warn"] is not None:
            v = grade(fill, self.p["min_fill_warn"], self.p["min_fill_fail"], higher_is_worse=False)
            if v != "pass":
                verdicts.append(v)
                reasons.append(
                    f"product fills {fill:.0%} of the frame (< {self.p['min_fill_warn'] or self.p['min_fill_fail']:.0%})"
                )
        if self.p["max_fill"] is not None and fill > float(self.p["max_fill"]):
            verdicts.append("warn")
            reasons.append(f"product fills {fill:.0%} of the frame: no margin")
        # touching: a side whose edge line is covered by the product over > touch_share of its length
        edges = {"top": fg[0], "bottom": fg[-1], "left": fg[:, 0], "right": fg[:, -1]}
        touching = [side for side, line in edges.items() if line.mean() > float(self.p["touch_share"])]
        if len(touching) > int(self.p["max_touch_sides"]) and self.p["touching"]:
            verdicts.append(str(self.p["touching"]))
            reasons.append(f"product touches / is cut off at the {', '.join(touching)} edge(s)")
        f = img.to_full
        region = [round(x0 * f), round(y0 * f), round(x1 * f), round(y1 * f)]
        verdict = worst(verdicts)
        reason = "; ".join(reasons) or f"product fills {fill:.0%} of the frame, clear of the edges"
        return CheckResult(
            "framing",
            fill,
            self.unit,
            verdict,
            reason,
            regions=[region],
            details={"touching": touching, "box": region},
        )
