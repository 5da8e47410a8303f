"""``border``: a frame or letterbox - uniform strips of one colour along the edges that end in a
straight line where the picture starts.

Per side, rows (columns) are walked inward while >= 95% of their pixels lie within ``tol`` of the
edge colour; the strip counts when it is at least ``min_width`` of the short side wide, at most 30%,
and the first row past it differs from the strip colour over most of its length (a sharp, straight
transition: a plain studio backdrop fades into the product instead). A white strip must end in a
near-total change (else it is just a white background). A border is >= 3 such sides of the same colour, or 2 opposite sides of the
same width (letterbox), or >= 3 strips of one colour and one width even where the photo's edge is
too close in colour for the transition test (a pad; white pads also need 2 sharp sides). Score: mean
strip width as a fraction of the short side (0 = none).
"""

from __future__ import annotations

import numpy as np

from catalens.quality.context import QCImage
from catalens.quality.registry import Check, register_check
from catalens.quality.result import CheckResult


def _strip(lines: np.ndarray, tol: float, max_w: int, chunk: int = 16) -> tuple[int, np.ndarray]:
    """(width, colour) of the uniform strip at the start of ``lines`` (N, L, 3) uint8; walks inward
    ``chunk`` rows at a time and stops at the first row that is not uniform."""
    colour = np.median(lines[0], axis=0)
    ref = colour.astype(np.int16)
    limit = min(max_w + 1, len(lines))
    start = 0
    while start < limit:
        block = lines[start : min(start + chunk, limit)].astype(np.int16)
        uniform = (np.abs(block - ref).max(axis=2) <= tol).mean(axis=1) >= 0.95
        bad = np.flatnonzero(~uniform)
        if bad.size:
            return start + int(bad[0]), colour
        start += len(block)
    return limit, colour


@register_check("border")
class BorderCheck(Check):
    """Fails when a frame/letterbox is found (score >= ``fail``); see the module doc."""

    unit = "border width / short side"
    params = {"min_width": 0.008, "tol": 24.0, "transition": 0.5, "warn": 0.004, "fail": 0.008}

    def run(self, img: QCImage) -> CheckResult:
        rgb = img.rgb
        h, w = rgb.shape[:2]
        short = min(h, w)
        min_w = max(2, int(round(float(self.p["min_width"]) * short)))
        tol = float(self.p["tol"])
        views = {
            "top": rgb,
            "bottom": rgb[::-1],
            "left": rgb.transpose(1, 0, 2),
            "right": rgb.transpose(1, 0, 2)[::-1],
        }
        sides: dict[str, tuple[int, np.ndarray]] = {}
        strips: dict[str, tuple[int, np.ndarray, bool, bool]] = {}  # every strip: width, colour, white, sharp
        for side, lines in views.items():
            width, colour = _strip(lines, tol, int(0.3 * len(lines)))
            if width < min_w or width >= int(0.3 * len(lines)):
                continue
            inner = lines[width].astype(np.int16)
            differs = float((np.abs(inner - colour).max(axis=1) > tol).mean())
            white = colour.min() >= 235 and (colour.max() - colour.min()) <= 14
            # a white strip on a white-background shot is just background: demand a near-total change
            sharp = differs >= (0.85 if white else float(self.p["transition"]))
            strips[side] = (width, colour, white, sharp)
            if sharp:
                sides[side] = (width, colour)
        found = self._frame(sides) or self._even_frame(strips)
        if found:
            sides = {s: (strips[s][0], strips[s][1]) for s in found}
        if not found:
            return CheckResult("border", 0.0, self.unit, "pass", "no border or frame")
        widths = [sides[s][0] for s in found]
        score = float(np.mean(widths)) / short
        colour = np.mean([sides[s][1] for s in found], axis=0)
        verdict = (
            "fail" if score >= float(self.p["fail"]) else "warn" if score >= float(self.p["warn"]) else "pass"
        )
        f = img.to_full
        regions = []
        for s in found:
            wd = sides[s][0] * f
            W, H = w * f, h * f
            regions.append(
                {
                    "top": [0, 0, W, wd],
                    "bottom": [0, H - wd, W, H],
                    "left": [0, 0, wd, H],
                    "right": [W - wd, 0, W, H],
                }[s]
            )
        rgbs = "rgb({:.0f},{:.0f},{:.0f})".format(*colour)
        reason = f"{rgbs} border on the {', '.join(found)} side(s), {score:.1%} of the short side wide"
        return CheckResult(
            "border",
            score,
            self.unit,
            verdict,
            reason,
            regions=[[round(v) for v in r] for r in regions],
            details={"sides": found, "colour": [round(float(c)) for c in colour]},
        )

    @staticmethod
    def _even_frame(strips: dict[str, tuple[int, np.ndarray, bool, bool]]) -> list[str]:
        """3+ strips of one colour and one width (+-1 px, 5%): a pad added around the photo, even where
        the photo's edge is close to the pad's colour so that the transition test fails. A backdrop
        walked up to the product gives strips of different widths. White strips (a white margin is
        what an evenly padded studio shot has) also need two sides with a sharp transition."""
        if len(strips) < 3:
            return []
        widths = np.array([w for w, _, _, _ in strips.values()], dtype=float)
        cols = np.array([c for _, c, _, _ in strips.values()], dtype=float)
        mid, col = float(np.median(widths)), np.median(cols, axis=0)
        same = [
            s
            for s, (w, c, _, _) in strips.items()
            if abs(w - mid) <= 1 + 0.05 * mid and np.abs(c - col).max() <= 30
        ]
        if len(same) < 3:
            return []
        if all(strips[s][2] for s in same) and sum(strips[s][3] for s in same) < 2:
            return []
        return same

    @staticmethod
    def _frame(sides: dict[str, tuple[int, np.ndarray]]) -> list[str]:
        if len(sides) >= 3:
            cols = np.array([c for _, c in sides.values()])
            if np.abs(cols - cols.mean(axis=0)).max() <= 30:
                return list(sides)
        for a, b in (("top", "bottom"), ("left", "right")):
            if a in sides and b in sides:
                wa, wb = sides[a][0], sides[b][0]
                if abs(wa - wb) <= 2 + 0.1 * max(wa, wb) and np.abs(sides[a][1] - sides[b][1]).max() <= 30:
                    return [a, b]
        return []
