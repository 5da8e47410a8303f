"""Background and framing for studio product shots.

* ``background``: score = share of the *background* along the frame that is near-white (every
  channel >= 235, channel spread <= 14). The frame is walked position by position (the outer ``band``
  of each side); a run of non-white positions is the product crossing the edge, not background,
  when it is flanked by white and short (<= ``max_product_run`` of the perimeter each, <=
  ``max_product_share`` together) and its non-white pixels reach inward past the band into the
  product (a model cut at the frame edge, shoes on the floor line). Those runs are left out; the
  rest of the frame is the background. A white studio background scores ~1 even with the model
  running off the frame; a grey or coloured backdrop wraps the whole frame (one run, no white)
  and scores ~0; a busy scene ~0. ``product_at_edge: false`` scores the whole band (the old rule).
* ``framing``: the product's fill of the frame and whether it touches / is cut off at the edges.
  Fill = max(product bbox width / image width, product bbox height / image height) - the way
  marketplaces measure "the product fills 85% of the frame". The product is the non-white pixels on a
  white-background shot and the packaged product detector's mask on any other background
  (``region``; see bench/RESULTS.md "QC on the product mask" for how each was measured).
"""

from __future__ import annotations

import numpy as np

from catalens.quality.context import QCImage
from catalens.quality.registry import Check, register_check
from catalens.quality.result import CheckResult, grade, worst

REGIONS = ("auto", "near_white", "detector")


def load_detector() -> None:
    """Load the packaged product detector once, before a run's worker threads start."""
    from catalens.detect.detector import default_detector

    default_detector()


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


def _perimeter(mask: np.ndarray, b: int) -> np.ndarray:
    """Per position along the frame (clockwise from the top-left corner): share of ``mask`` across the
    band's depth ``b`` at that position."""
    top = mask[:b].mean(axis=0)
    right = mask[:, -b:].mean(axis=1)
    bottom = mask[-b:].mean(axis=0)[::-1]
    left = mask[:, :b].mean(axis=1)[::-1]
    return np.concatenate([top, right, bottom, left])


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of the runs of True in a circular sequence; [(0, n)] when all are True."""
    n = len(flags)
    if flags.all():
        return [(0, n)]
    if not flags.any():
        return []
    start = int(np.argmin(flags))  # a False position: runs do not wrap past it
    rolled = np.roll(flags, -start)
    edges = np.diff(np.concatenate([[0], rolled.astype(np.int8), [0]]))
    begins, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [((int(a) + start) % n, int(e - a)) for a, e in zip(begins, ends, strict=True)]


def _inward(fg: np.ndarray, b: int) -> np.ndarray:
    """Per perimeter position: whether the foreground there belongs to a component that reaches past
    the band into the frame (the product), not one that stays within the band (a frame or strip)."""
    import cv2

    n, labels = cv2.connectedComponents(fg.astype(np.uint8), connectivity=8)
    inner = np.zeros(n, dtype=bool)
    core = labels[b:-b, b:-b] if min(fg.shape) > 2 * b else labels[:0, :0]
    inner[np.unique(core)] = True
    inner[0] = False  # the background label
    return _perimeter(inner[labels], b) > 0.5


@register_check("background")
class BackgroundCheck(Check):
    """Score: share (0..1) of the background along the frame that is near-white (see the module doc).
    Lower is worse."""

    higher_is_worse = False
    unit = "share of background near-white"
    params = {
        "band": 0.04,
        "warn": 0.85,
        "fail": 0.6,
        "product_at_edge": True,
        "max_product_run": 0.25,
        "max_product_share": 0.4,
        "region": "frame",
    }
    choices = {"region": ("frame", "detector")}

    def setup(self) -> None:
        if self.p["region"] == "detector":
            load_detector()

    def _product_runs(self, img: QCImage, white: np.ndarray, keep: np.ndarray, b: int) -> list[str]:
        """Clear ``keep`` where a short non-white run of the frame is the product crossing the edge;
        the sides crossed."""
        h, w = img.near_white.shape
        inward = _inward(img.foreground, b)
        n = len(white)
        budget = float(self.p["max_product_share"]) * n
        crossing = []
        for start, length in sorted(_runs(~white), key=lambda r: r[1]):
            idx = (start + np.arange(length)) % n
            if length > float(self.p["max_product_run"]) * n or length > budget:
                continue
            if inward[idx].mean() < 0.5:  # a strip along the edge, not the product
                continue
            keep[idx] = False
            budget -= length
            crossing.append(_side(int(idx[length // 2]), w, h))
        return crossing

    def run(self, img: QCImage) -> CheckResult:
        nw = img.near_white
        h, w = nw.shape
        b = max(1, int(round(float(self.p["band"]) * min(h, w))))
        white = _perimeter(nw, b) >= 0.5
        keep = np.ones(len(white), dtype=bool)  # positions that are background
        crossing: list[str] = []
        if self.p["region"] == "detector":
            if img.product_mask is not None:
                keep = _perimeter(img.product_mask, b) < 0.5
                crossing = sorted({_side(int(i), w, h) for i in np.flatnonzero(~keep)})
        elif self.p["product_at_edge"] and white.any():
            crossing = self._product_runs(img, white, keep, b)
        share = float(white[keep].mean()) if keep.any() else 0.0
        verdict = grade(share, self.p["warn"], self.p["fail"], higher_is_worse=False)
        where = f"; the product crosses the {', '.join(sorted(set(crossing)))} edge" if crossing else ""
        if verdict == "pass":
            reason = (
                f"background is white ({share:.0%} of the background along the frame is near-white{where})"
            )
        else:
            band = border_band(nw.shape, float(self.p["band"]))
            mean = img.rgb[band & ~nw].reshape(-1, 3).mean(axis=0)
            colour = "rgb({:.0f},{:.0f},{:.0f})".format(*mean)
            reason = (
                f"background is not white: only {share:.0%} of the background along the frame is near-white "
                f"(mostly {colour}){where}"
            )
        return CheckResult(
            "background",
            share,
            self.unit,
            verdict,
            reason,
            details={"product_at_edge": sorted(set(crossing))},
        )


def _side(pos: int, w: int, h: int) -> str:
    """The side of the frame of a perimeter position (see :func:`_perimeter`)."""
    for name, length in (("top", w), ("right", h), ("bottom", w), ("left", h)):
        if pos < length:
            return name
        pos -= length
    return "left"


@register_check("framing")
class FramingCheck(Check):
    """Score: product fill of the frame (0..1, see module doc). Fails/warns under ``min_fill_*``; warns
    (or fails with ``touching: fail``) when the product touches more than ``max_touch_sides`` sides.
    ``region`` says where the product comes from: ``near_white`` (the non-white pixels; skipped, pass,
    when the background is not mostly white), ``detector`` (the packaged product detector's mask, on any
    background) or ``auto`` (near-white on a white-background shot, the detector otherwise)."""

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
        "region": "auto",
    }
    choices = {"region": REGIONS}

    def setup(self) -> None:
        if self.p["region"] != "near_white":
            load_detector()

    def run(self, img: QCImage) -> CheckResult:
        mode = str(self.p["region"])
        nw = img.near_white
        band = border_band(nw.shape, 0.04)
        white_shot = float(nw[band].mean()) >= float(self.p["min_white_border"])
        if mode == "near_white" or (mode == "auto" and white_shot):
            if not white_shot:
                return CheckResult(
                    "framing", None, self.unit, "pass", "not a white-background shot: framing not measured"
                )
            fg, source = img.foreground, "near-white"
        else:
            mask = img.product_mask
            if mask is None:
                return CheckResult(
                    "framing", None, self.unit, "pass", "no product detected: framing not measured"
                )
            fg, source = mask, "detector"
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
            details={"touching": touching, "box": region, "product_from": source},
        )
