"""The ``text`` and ``watermark`` checks. They share one OCR read per image (:mod:`text_ocr`), match
words against packaged lists (:mod:`text_words`) and tell the product's own print from overlays
(:mod:`text_print`).

* ``text``: score = share of the image covered by text boxes (overlays only, when the product's own
  print is told apart: ``exclude_print``, ``print_rule``); the text read, any promotional words
  (``promo_words``), the print and overlay areas are in ``details``; boxes are returned as ``regions``.
* ``watermark``: tiled text (pieces of the same words repeat across 3+ lines, or within one
  run-together line, and - on a white-backdrop photo - not all of it inside the product: a monogram
  or a logo printed over a bag or a pair of shoes repeats on the product only, a tiled mark repeats
  over the backdrop and the product alike), watermark words (``watermark_words``: copyright sign, URL, "sample",
  "proof"...), or - when ``max_contrast`` is set - large faint text (strokes differ from their
  surroundings by less than ``max_contrast`` luma levels over >= ``min_faint_area`` of the image;
  off by default: low-contrast print on products looks the same). Score = area share of such text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from catalens.errors import ConfigError
from catalens.quality.checks.text_ocr import (
    MARK_VIEWS,
    SECOND_LOOK,
    TextBox,
    mark_engine,
    ocr_engine,
    read_mark_view,
    read_text,
)
from catalens.quality.checks.text_print import is_print, text_on_product
from catalens.quality.checks.text_words import (
    PROMO_WORDS,
    WATERMARK_WORDS,
    _fragment_groups,
    _has_mark_word,
    _promo,
    _self_repeats,
    _shared,
)
from catalens.quality.context import QCImage
from catalens.quality.registry import Check, register_check
from catalens.quality.result import CheckResult, grade

PRINT_RULES = ("silhouette", "product")  # how the text check tells print on the product from overlays


def _usable(b: TextBox, min_conf: float, min_box: float) -> bool:
    """A real line of text: confident, not tiny, 2+ letters/digits, and not a box spanning most of the
    image (CLAHE can make the detector outline a whole textured photo)."""
    chars = sum(ch.isalnum() for ch in b.text)
    return b.confidence >= min_conf and min_box <= b.area <= 0.5 and chars >= 2


@register_check("text")
class TextCheck(Check):
    """Score: share of the image covered by confident overlaid text (0..1); with ``exclude_print`` the
    text printed on the product itself is left out of the share (listed in ``details``, with
    ``print_area`` and ``overlay_area``). ``print_rule`` says what is print: ``silhouette`` (inside the
    white-backdrop product silhouette, :func:`is_print`; off white nothing is print) or ``product``
    (inside the product on any background and not on a band or badge, :func:`text_on_product`). Fails on promotional words (wherever they are) or text over ``fail``; warns over
    ``warn``."""

    unit = "text area share (0..1)"
    scope = "model"
    params = {
        "min_confidence": 0.7,
        "min_box": 0.0005,
        "warn": 0.003,
        "fail": 0.02,
        "promo_words": PROMO_WORDS,
        "promo_verdict": "fail",
        "exclude_print": False,
        "print_rule": "silhouette",
    }
    choices = {"print_rule": PRINT_RULES}

    def setup(self) -> None:
        ocr_engine()
        if self.p["exclude_print"] and self.p["print_rule"] == "product":
            from catalens.detect.detector import default_detector

            default_detector()

    def _is_print(self, img: QCImage, box: list[float]) -> bool:
        if not self.p["exclude_print"]:
            return False
        if self.p["print_rule"] == "product":
            return text_on_product(img, box)
        return is_print(img, box)

    def run(self, img: QCImage) -> CheckResult:
        boxes = [
            b
            for b in read_text(img)
            if b.confidence >= float(self.p["min_confidence"])
            and b.area >= float(self.p["min_box"])
            and len(b.text.strip()) >= 2
        ]
        printed = [b for b in boxes if self._is_print(img, b.box)]
        area = float(sum(b.area for b in boxes if b not in printed))
        print_area = float(sum(b.area for b in printed))
        texts = [b.text for b in boxes]
        promo = _promo(texts, list(self.p["promo_words"] or []))
        verdict = grade(area, self.p["warn"], self.p["fail"], higher_is_worse=True)
        if promo and self.p["promo_verdict"]:
            verdict = "fail" if self.p["promo_verdict"] == "fail" or verdict == "fail" else "warn"
        if not boxes:
            reason = "no text"
        else:
            shown = ", ".join(repr(t) for t in texts[:4]) + (" ..." if len(texts) > 4 else "")
            reason = f"text covers {area:.1%} of the image: {shown}"
            if printed:
                reason += f" ({len(printed)} printed on the product, not counted)"
            if promo:
                reason += f"; promotional words: {', '.join(promo)}"
        return CheckResult(
            "text",
            area,
            self.unit,
            verdict,
            reason,
            regions=[b.box for b in boxes],
            details={
                "text": texts,
                "promo": promo,
                "confidence": [round(b.confidence, 3) for b in boxes],
                "print": [b.text for b in printed],
                "overlay_area": round(area, 6),
                "print_area": round(print_area, 6),
            },
        )


FUZZY_BELOW = 0.95  # OCR confidence under which a watermark word may be matched with a misread


def _texture_read(text: str) -> bool:
    """A read of 4+ letters/digits that is one character repeated ("wwwwww", "IIII"): what OCR makes of
    a periodic texture (knit, mesh, stripes), not text."""
    chars = [c for c in text.lower() if c.isalnum()]
    return len(chars) >= 4 and len(set(chars)) == 1


def _oblique_lines(
    boxes: list[TextBox],
    short_side: float,
    *,
    min_span: float,
    angles: tuple[float, float],
    min_chars: int = 5,
    min_confidence: float = 0.8,
) -> list[TextBox]:
    """Boxes on a slanted line of text (``angles`` degrees off the horizontal, either way) that runs
    over ``min_span``+ of the image's short side and holds ``min_chars``+ letters/digits, counting the
    pieces OCR splits one line into (boxes at the same slant on the same line). A diagonal band of text
    across the photo is how a mark is laid so that it cannot be cropped away; print on a product stays
    level, mildly tilted (up to ~20 degrees on a garment laid down or worn) or short (a logo on a tilted
    shoe covers a sixth of the frame, not half; a 4-letter brand is not enough text either way). Only
    confident reads (``min_confidence``) count."""
    segs = []
    for b in boxes:
        if b.quad is None or sum(c.isalnum() for c in b.text) < 3 or b.confidence < min_confidence:
            continue  # an uncertain read of a slanted box is often two lines joined, not one line
        q = np.asarray(b.quad, np.float64)
        along, across = q[1] - q[0], q[3] - q[0]
        length, height = float(np.hypot(*along)), float(np.hypot(*across))
        if length <= max(height, 1e-6):
            continue  # not a line (or vertical text)
        angle = float(np.degrees(np.arctan2(-along[1], along[0])))
        if angles[0] <= abs(angle) <= angles[1]:
            segs.append((angle, q.mean(axis=0), along / length, length, height, b))
    out: list[TextBox] = []
    for angle, centre, d, length, height, b in segs:
        lo, hi, chars = -length / 2, length / 2, 0
        normal = np.array([-d[1], d[0]])
        for angle2, centre2, _, length2, height2, b2 in segs:
            off = centre2 - centre
            if abs(angle - angle2) <= 6 and abs(float(off @ normal)) < 0.5 * max(height, height2):
                lo, hi = min(lo, float(off @ d) - length2 / 2), max(hi, float(off @ d) + length2 / 2)
                chars += sum(c.isalnum() for c in b2.text)  # (b itself included: offset 0)
        if (hi - lo) >= min_span * short_side and chars >= min_chars:
            out.append(b)
    return out


def watermark_boxes(
    boxes: list[TextBox],
    *,
    words: list[str],
    repeat_chars: int = 4,
    min_repeats: int = 3,
    max_contrast: float | None = None,
    min_faint_area: float = 0.0,
    short_side: float | None = None,
    oblique_span: float | None = 0.4,
    oblique_angles: tuple[float, float] = (20.0, 70.0),
    on_product: Callable[[TextBox], bool] | None = None,
) -> list[tuple[TextBox, str]]:
    """The boxes that look like a watermark, each with why: ``tiled`` (a run-together token repeats a
    ``repeat_chars + 1``-character piece of itself, ``min_repeats``+ boxes share a
    ``repeat_chars``-character piece, or one more box than that shares a piece one character shorter -
    OCR rarely reads every tile identically, so pieces are compared, not whole strings; a pair of
    shoes showing the same brand twice is not enough), ``words`` (copyright sign, URL, "sample",
    "proof"..., tolerant to OCR misreads on uncertain reads, see :func:`_has_mark_word`), ``oblique``
    (a slanted line of text over ``oblique_span``+ of the ``short_side``, see :func:`_oblique_lines`;
    needs the boxes' quads) or ``faint`` (stroke contrast under ``max_contrast`` over >=
    ``min_faint_area`` of the image). Reads of one repeated character are texture and are ignored.

    ``on_product(box)`` (True when a box lies inside the product's silhouette, see :func:`is_print`)
    restricts ``tiled``: repeated text of which every piece lies on the product is the product's own
    print (a monogram all over a bag, one brand on each of a pair of shoes, a logo on a dial and its
    strap), since a tiled mark is laid over the whole photo, backdrop and product alike. Such boxes may
    still be a mark for another reason (words, a slanted line, faintness)."""
    boxes = [b for b in boxes if not _texture_read(b.text)]
    norm = [re.sub(r"[^a-z0-9]", "", b.text.lower()) for b in boxes]
    fragments = _fragment_groups(norm, repeat_chars - 1, min_repeats + 1)
    oblique = (
        {id(b) for b in _oblique_lines(boxes, short_side, min_span=oblique_span, angles=oblique_angles)}
        if short_side and oblique_span
        else set()
    )
    tiled: set[int] = set(fragments)
    for i, t in enumerate(norm):
        if len(t) >= repeat_chars:
            shared = sum(_shared(t, u) >= repeat_chars for j, u in enumerate(norm) if j != i)
            if shared + 1 >= min_repeats or (
                len(t) >= 2 * repeat_chars + 2 and _self_repeats(t, repeat_chars + 1)
            ):
                tiled.add(i)
    if on_product is not None and tiled and all(on_product(boxes[i]) for i in tiled):
        tiled = set()  # the repetition never leaves the product: its print, not a tiled mark
    out: list[tuple[TextBox, str]] = []
    for i, b in enumerate(boxes):
        why = "tiled" if i in tiled else ""
        low = b.text.lower()
        if not why and _has_mark_word(low, words, fuzzy=b.confidence < FUZZY_BELOW):
            why = "words"
        if not why and id(b) in oblique:
            why = "oblique"
        if not why and max_contrast is not None and b.contrast < max_contrast and b.area >= min_faint_area:
            why = "faint"
        if why:
            out.append((b, why))
    return out


@register_check("watermark")
class WatermarkCheck(Check):
    """Score: share of the image covered by watermark-like text (0..1): tiled / repeated text,
    watermark words, a slanted line of text across the photo, or (when ``max_contrast`` is set) large
    see-through text; see :func:`watermark_boxes` (with ``print_not_tiled``, repeated text that stays
    inside the product of a white-backdrop photo is its print, not tiled, unless the overlay detector
    gives the photo a see-through mark probability of ``print_overlay_max`` or more). When the shared OCR read
    finds none of it, the ``second_look`` views (:data:`MARK_VIEWS`, in order, until one scores) are
    read too; the score is
    the best view's. With ``second_look_gate`` set, the second look is taken only on photos whose
    see-through overlay probability (the ``watermark_visual`` detector, ~20 ms) reaches it: the extra
    OCR reads cost about as much as the first, and a clean photo rarely needs them."""

    unit = "watermark area share (0..1)"
    scope = "model"
    params = {
        "min_confidence": 0.5,
        "max_contrast": None,
        "min_faint_area": 0.01,
        "min_box": 0.0005,
        "repeat_chars": 4,
        "min_repeats": 3,
        "watermark_words": WATERMARK_WORDS,
        "oblique_span": 0.4,
        "second_look": SECOND_LOOK,
        "second_look_gate": None,
        "print_not_tiled": True,
        "print_overlay_max": 0.9,
        "warn": 0.0005,
        "fail": 0.003,
    }

    def __init__(self, **overrides: Any) -> None:
        super().__init__(**overrides)
        unknown = [v for v in self.p["second_look"] or [] if v not in MARK_VIEWS]
        if unknown:
            raise ConfigError(
                f"check 'watermark': unknown second_look view(s) {', '.join(map(str, unknown))}; "
                f"known: {', '.join(MARK_VIEWS)}"
            )

    def setup(self) -> None:
        ocr_engine()
        for view in self.p["second_look"] or []:
            mark_engine(MARK_VIEWS[view].det_side)
        if (self.p["second_look_gate"] is not None and self.p["second_look"]) or (
            self.p["print_not_tiled"] and self.p["print_overlay_max"] is not None
        ):
            from catalens.quality.cnn_models import load_net

            load_net("overlay")

    def _marks(self, img: QCImage, boxes: list[TextBox]) -> list[tuple[TextBox, str]]:
        usable = [
            b
            for b in boxes
            if b.confidence >= float(self.p["min_confidence"])
            and b.area >= float(self.p["min_box"])
            and len(b.text.strip()) >= 2
        ]
        mc, span = self.p["max_contrast"], self.p["oblique_span"]
        return watermark_boxes(
            usable,
            words=list(self.p["watermark_words"] or []),
            repeat_chars=int(self.p["repeat_chars"]),
            min_repeats=int(self.p["min_repeats"]),
            max_contrast=None if mc is None else float(mc),
            min_faint_area=float(self.p["min_faint_area"]),
            short_side=float(min(img.width or 0, img.height or 0)) or None,
            oblique_span=None if span is None else float(span),
            on_product=self._print_test(img),
        )

    def _print_test(self, img: QCImage) -> Callable[[TextBox], bool] | None:
        """``on_product`` for :func:`watermark_boxes`: the box is inside the product's silhouette and the
        see-through overlay detector does not see a mark on the photo (a white mark tiled over a
        white-backdrop photo shows on the product only, where it reads like a monogram print; the
        overlay detector tells see-through from opaque). None when ``print_not_tiled`` is off."""
        if not self.p["print_not_tiled"]:
            return None
        limit = self.p["print_overlay_max"]

        def on_product(b: TextBox) -> bool:
            if not is_print(img, b.box):
                return False
            if limit is None:
                return True
            from catalens.quality.cnn_models import overlay_probability

            return overlay_probability(img) < float(limit)

        return on_product

    def run(self, img: QCImage) -> CheckResult:
        marks = self._marks(img, read_text(img))
        area = float(sum(b.area for b, _ in marks))
        view = "ocr"
        views = list(self.p["second_look"] or [])
        gate = self.p["second_look_gate"]
        gated = False
        if views and gate is not None and not marks:
            from catalens.quality.cnn_models import overlay_probability

            gated = overlay_probability(img) < float(gate)
        for name in [] if gated else views:
            if grade(area, self.p["warn"], self.p["fail"], higher_is_worse=True) != "pass":
                break
            more = self._marks(img, read_mark_view(img, str(name)))
            more_area = float(sum(b.area for b, _ in more))
            if more_area > area:
                marks, area, view = more, more_area, str(name)
        verdict = grade(area, self.p["warn"], self.p["fail"], higher_is_worse=True)
        if not marks:
            reason = "no watermark"
        else:
            kinds = sorted({why for _, why in marks})
            reason = f"watermark-like text ({', '.join(kinds)}): " + ", ".join(
                repr(b.text) for b, _ in marks[:4]
            )
            if view != "ocr":
                reason += f" (read on the {view.replace('_', ' ')} view)"
        return CheckResult(
            "watermark",
            area,
            self.unit,
            verdict,
            reason,
            regions=[b.box for b, _ in marks],
            details={
                "text": [b.text for b, _ in marks],
                "why": [why for _, why in marks],
                "contrast": [round(b.contrast) for b, _ in marks],
                "view": view,
                **({"second_look": "skipped: overlay probability below the gate"} if gated else {}),
            },
        )
