"""Text and watermarks, read with the packaged RapidOCR (ONNX models inside the wheel, offline).

OCR runs once per image (cached on the :class:`QCImage`) on a contrast-enhanced copy (CLAHE on
luma, resized so that its long side is ``OCR_SIDE`` px) so that faint, semi-transparent text is found
too. The detector is capped at the same long side (RapidOCR's default instead scales the SHORT side
up to 736 px, about 2.4x more pixels for a 3:4 photo and as much slower); text a shopper can read
on a product photo (>= ~2% of its height) stays >= ~13 px tall at 640 px.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from catalens.errors import ConfigError
from catalens.quality.context import QCImage
from catalens.quality.registry import Check, register_check
from catalens.quality.result import CheckResult, grade

OCR_SIDE = 640
# intra-op threads per OCR call: the QC runner already checks one image per worker thread, and two
# 2-thread calls on two cores ran slower than two 1-thread calls (bench/quality_speed.py)
OCR_THREADS = 1
PRINT_RULES = ("silhouette", "product")  # how the text check tells print on the product from overlays
WORDS_FILE = "text_words.yaml"  # in catalens/quality/data: the word lists and where they come from


def load_word_lists(path: Path | None = None) -> dict[str, list[str]]:
    """The text checks' word lists (``promo_words``, ``promo_patterns``, ``promo_modifiers``,
    ``watermark_words``) from the packaged YAML file, or ``path``."""
    import yaml

    from catalens.quality.tree_models import data_dir

    src = path or data_dir() / WORDS_FILE
    try:
        data = yaml.safe_load(src.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{src}: cannot read the text checks' word lists: {exc}") from exc
    keys = ("promo_words", "promo_patterns", "promo_modifiers", "watermark_words")
    if not isinstance(data, dict) or any(not isinstance(data.get(k), list) for k in keys):
        raise ConfigError(f"{src}: needs the lists {', '.join(keys)}")
    for pattern in data["promo_patterns"]:
        try:
            re.compile(str(pattern))
        except re.error as exc:
            raise ConfigError(f"{src}: promo pattern {pattern!r} is not a regular expression: {exc}") from exc
    return {k: [str(w) for w in data[k]] for k in keys}


_WORDS = load_word_lists()
PROMO_WORDS = _WORDS["promo_words"]
PROMO_PATTERNS = _WORDS["promo_patterns"]


def ocr_engine() -> Any:
    """The shared RapidOCR engine (loaded once; :data:`OCR_THREADS` threads per call)."""
    from catalens.ocr import ocr_engine as shared

    return shared(limit_type="max", side=OCR_SIDE, threads=OCR_THREADS)


@dataclass
class TextBox:
    box: list[float]  # x0, y0, x1, y1 in full-resolution px
    text: str
    confidence: float
    contrast: float  # stroke vs surrounding luma difference in the original
    area: float  # share of the image
    quad: list[list[float]] | None = None  # the detector's 4 corners, full-resolution px (angle, length)


def _stroke_contrast(gray: np.ndarray) -> float:
    """Luma difference between the two Otsu classes of a patch (text strokes vs what is around)."""
    import cv2

    if gray.size < 16:
        return 0.0
    t, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    lo, hi = gray[gray <= t], gray[gray > t]
    if lo.size == 0 or hi.size == 0:
        return 0.0
    return float(np.median(hi) - np.median(lo))


def ocr_copy(img: QCImage) -> np.ndarray:
    """The RGB copy that OCR reads (cached): long side ``OCR_SIDE`` px (small photos upscaled)."""

    def compute() -> np.ndarray:
        import cv2

        assert img.decoded is not None
        rgb = np.asarray(img.decoded.image)
        h, w = rgb.shape[:2]
        f = OCR_SIDE / max(h, w)
        if f != 1:
            interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC  # small photos: upscale the text
            rgb = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=interp)
        return np.ascontiguousarray(rgb)

    return img.memo("ocr_rgb", compute)


def _boxes(out: Any, gray: np.ndarray, to_full: float, back: np.ndarray | None = None) -> list[TextBox]:
    """RapidOCR output as :class:`TextBox` es. ``gray`` is the OCR copy's luma (contrast, area); ``back``
    (2x3 affine) maps the coordinates of a rotated view back onto it."""
    boxes: list[TextBox] = []
    if out is None or getattr(out, "boxes", None) is None:
        return boxes
    for quad, text, conf in zip(out.boxes, out.txts, out.scores, strict=False):
        q = np.asarray(quad, np.float32)
        if back is not None:
            q = q @ back[:, :2].T + back[:, 2]
        x0, y0 = np.clip(q.min(axis=0), 0, None)
        x1, y1 = q.max(axis=0)
        x1, y1 = min(x1, gray.shape[1]), min(y1, gray.shape[0])
        patch = gray[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))]
        area = float(max(0.0, x1 - x0) * max(0.0, y1 - y0)) / gray.size
        boxes.append(
            TextBox(
                box=[round(float(v) * to_full, 1) for v in (x0, y0, x1, y1)],
                text=str(text),
                confidence=float(conf),
                contrast=_stroke_contrast(patch),
                area=area,
                quad=[[round(float(x) * to_full, 1), round(float(y) * to_full, 1)] for x, y in q],
            )
        )
    return boxes


def _clahe(gray: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(gray)


def read_text(img: QCImage) -> list[TextBox]:
    """OCR the image once (cached): boxes with text, confidence, stroke contrast and area share."""

    def compute() -> list[TextBox]:
        import cv2

        rgb = ocr_copy(img)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        out = ocr_engine()(cv2.cvtColor(_clahe(gray), cv2.COLOR_GRAY2BGR))
        return _boxes(out, gray, (img.width or gray.shape[1]) / gray.shape[1])

    return img.memo("ocr", compute)


# ---- a second look for see-through marks (the watermark check only) ----------------------------------
# A semi-transparent overlay of colour c with opacity a turns a pixel I into (1 - a) I + a c: it moves
# every channel the same way, by an amount that depends on the pixel, so over a busy or saturated
# product the step can all but vanish in CLAHE-enhanced luma (the OCR copy above). These views bring
# such a mark out; the watermark check reads them, in order, only while no mark has been found.


def _gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _highpass(gray: np.ndarray) -> np.ndarray:
    """Luma minus its median over ~5% of the long side, x3 around mid-grey: the product's own shading
    and large flat areas go, the thin strokes of an overlay stay."""
    import cv2

    k = max(3, int(0.05 * max(gray.shape)) | 1)
    d = gray.astype(np.float32) - cv2.medianBlur(gray, k).astype(np.float32)
    return np.clip(128.0 + 3.0 * d, 0, 255).astype(np.uint8)


def _rotate(gray: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """``gray`` rotated by ``angle`` degrees counter-clockwise about its centre on a canvas of the same
    size (edges replicated; the corners cut off are not where a mark meant to be seen is laid, and a
    canvas grown to fit would cost the detector ~40% more), and the 2x3 affine that maps it back."""
    import cv2

    h, w = gray.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    out = cv2.warpAffine(gray, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    return out, cv2.invertAffineTransform(m)


@dataclass(frozen=True)
class MarkView:
    """One way of looking at the OCR copy: ``make(rgb) -> (gray view, 2x3 affine back or None)``, read
    with the detector capped at ``det_side`` px (a mark meant to be seen is large text: 480 px, less
    than the shared read's ``OCR_SIDE``, finds it at about 60% of the cost)."""

    make: Any
    det_side: int
    doc: str


MARK_VIEWS: dict[str, MarkView] = {
    "max_channel": MarkView(
        lambda rgb: (_clahe(np.ascontiguousarray(rgb.max(axis=2))), None),
        480,
        "CLAHE on the brightest channel: a dark mark scales every channel down, and over a saturated "
        "product the brightest channel (2-3x the luma) keeps 2-3x the step",
    ),
    "highpass_level30": MarkView(
        lambda rgb: _rotate(_highpass(_gray(rgb)), -30.0),
        480,
        "the luma high-pass turned 30 degrees clockwise: a rising diagonal mark reads level (the "
        "detector finds level text far more readily than slanted) and the product's shading is gone",
    ),
    "min_channel": MarkView(
        lambda rgb: (_clahe(np.ascontiguousarray(rgb.min(axis=2))), None),
        480,
        "CLAHE on the darkest channel: a light mark raises every channel (not on by default: on the dev "
        "half it found nothing the other views missed)",
    ),
    "highpass": MarkView(
        lambda rgb: (_highpass(_gray(rgb)), None),
        480,
        "the level luma high-pass: a mark over shading or a patterned backdrop (not on by default)",
    ),
}
SECOND_LOOK = ["max_channel", "highpass_level30"]  # the watermark check's default views, in order


def mark_engine(side: int) -> Any:
    """The shared RapidOCR engine of the second look (detector capped at ``side`` px)."""
    from catalens.ocr import ocr_engine as shared

    return shared(limit_type="max", side=int(side), threads=OCR_THREADS)


def read_mark_view(img: QCImage, view: str) -> list[TextBox]:
    """OCR one :data:`MARK_VIEWS` view of the OCR copy (cached per view); boxes in image coordinates."""
    if view not in MARK_VIEWS:
        raise ValueError(f"unknown watermark view {view!r}; known: {', '.join(MARK_VIEWS)}")

    def compute() -> list[TextBox]:
        import cv2

        rgb = ocr_copy(img)
        gray = _gray(rgb)
        spec = MARK_VIEWS[view]
        shown, back = spec.make(rgb)
        out = mark_engine(spec.det_side)(cv2.cvtColor(shown, cv2.COLOR_GRAY2BGR))
        return _boxes(out, gray, (img.width or gray.shape[1]) / gray.shape[1], back)

    return img.memo(f"ocr_mark:{view}", compute)


def _similar(a: str, b: str) -> bool:
    """Equal, or one edit apart for words of 4+ letters (two for 7+); words under 6 letters only by a
    substitution (an OCR misread), so that "ideal" is not "deal"."""
    if a == b:
        return True
    if len(b) < 4 or abs(len(a) - len(b)) > 2 or (len(b) < 6 and len(a) != len(b)):
        return False
    return _edit_distance(a, b) <= (2 if len(b) >= 7 else 1)


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions) of two short strings."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


SUBSTRING_MIN = 5  # promo words this long also match inside a longer token ("BESTPRICE", "FREESHIPPING")
PROMO_MODIFIERS = _WORDS["promo_modifiers"]  # open a compound when OCR drops the space ("HOTDEAL")


def _compound(token: str, words: list[str]) -> str | None:
    """The promo word in a run-together ``token`` made of two words where OCR dropped the space, one of
    them a promo word and the other a promo word or a modifier ("HOTDEAL", "FREESHIPPNG" - each part
    typo-tolerant), else None. Ordinary words that merely contain a short promo word ("freedom",
    "ideal") are not split into two known words, so they do not match."""
    if len(token) < 6:
        return None
    for cut in range(3, len(token) - 2):
        head, tail = token[:cut], token[cut:]
        for a, b in ((head, tail), (tail, head)):
            hit = next((w for w in words if _similar(a, w)), None)
            if hit and (any(_similar(b, w) for w in words) or b in PROMO_MODIFIERS):
                return hit
    return None


def _promo(texts: list[str], words: list[str]) -> list[str]:
    """Promotional words/patterns found in ``texts`` (OCR output, so matching is typo-tolerant, words
    of ``SUBSTRING_MIN``+ letters are also found inside tokens where OCR dropped a space, and two-word
    compounds such as "HOTDEAL" are split, see :func:`_compound`)."""
    joined = " ".join(texts).lower()
    tokens = re.findall(r"[a-z]+", joined)
    single = [w.lower() for w in words if w.isalpha()]
    compounds = {c for t in tokens if (c := _compound(t, single))}
    found: list[str] = []
    for word in words:
        w = word.lower()
        if " " in w or not w.isalpha():
            if w in joined:
                found.append(word)
        elif (
            any(_similar(t, w) for t in tokens)
            or (len(w) >= SUBSTRING_MIN and any(w in t and len(t) > len(w) for t in tokens))
            or w in compounds
        ):
            found.append(word)
    found += [p for p in PROMO_PATTERNS if re.search(p, joined)]
    return found


def _usable(b: TextBox, min_conf: float, min_box: float) -> bool:
    """A real line of text: confident, not tiny, 2+ letters/digits, and not a box spanning most of the
    image (CLAHE can make the detector outline a whole textured photo)."""
    chars = sum(ch.isalnum() for ch in b.text)
    return b.confidence >= min_conf and min_box <= b.area <= 0.5 and chars >= 2


def product_silhouette(img: QCImage, min_backdrop: float = 0.6) -> np.ndarray | None:
    """bool mask (working copy) of the main product of a white-backdrop photo: the largest connected
    region that is not backdrop (near-white 4-connected to the image border), so white print inside
    the product belongs to it. None when the photo's border is not mostly near-white (< ``min_backdrop``):
    no backdrop, no silhouette to tell print from overlay."""
    import cv2

    def compute() -> np.ndarray | None:
        nw = img.near_white
        h, w = nw.shape
        b = max(1, int(0.04 * min(h, w)))
        border = np.concatenate([nw[:b].ravel(), nw[-b:].ravel(), nw[:, :b].ravel(), nw[:, -b:].ravel()])
        if float(border.mean()) < min_backdrop:
            return None
        _, labels = cv2.connectedComponents(nw.astype(np.uint8), connectivity=4)
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        backdrop = np.isin(labels, edge[edge > 0])
        n, comp, stats, _ = cv2.connectedComponentsWithStats((~backdrop).astype(np.uint8), connectivity=8)
        if n <= 1:
            return None
        return comp == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))

    return img.memo("product_silhouette", compute)


def is_print(img: QCImage, box: list[float], *, min_inside: float = 0.9) -> bool:
    """True when a text box (full-resolution px) is print on the product of a white-backdrop photo: at
    least ``min_inside`` of the box lies inside the product's silhouette (see
    :func:`product_silhouette`). Text on the white margin, across the product's outline, or on its own
    banner apart from the product is not print. Photos without a white backdrop give no such
    evidence: their text is never called print."""
    sil = product_silhouette(img)
    if sil is None:
        return False
    h, w = sil.shape
    x0, y0, x1, y1 = (v / img.to_full for v in box)
    ys = slice(max(0, int(y0)), min(h, int(np.ceil(y1))))
    xs = slice(max(0, int(x0)), min(w, int(np.ceil(x1))))
    inside = sil[ys, xs]
    return inside.size > 0 and float(inside.mean()) >= min_inside


def product_region(img: QCImage) -> np.ndarray | None:
    """The product's pixels (working copy): on a white-backdrop photo its silhouette, joined with the
    packaged product detector's mask (:attr:`QCImage.product_mask`) when the silhouette holds under
    70% of that mask (a white garment on white, which the silhouette misses); elsewhere the detector's
    mask. None when neither finds a product."""
    sil, mask = product_silhouette(img), img.product_mask
    if sil is None or mask is None:
        return sil if mask is None else mask
    return sil | mask if (sil & mask).sum() < 0.7 * mask.sum() else sil


def _ground(img: QCImage, box: list[float]) -> tuple[slice, slice, np.ndarray] | None:
    """The working-copy slices of a text box (full-resolution px) and the mask of its ground: the
    majority (Otsu) luma class inside the box, i.e. what is around and between the strokes."""
    import cv2

    h, w = img.gray.shape
    x0, y0, x1, y1 = (v / img.to_full for v in box)
    ys = slice(max(0, int(y0)), min(h, int(np.ceil(y1))))
    xs = slice(max(0, int(x0)), min(w, int(np.ceil(x1))))
    gray = img.gray[ys, xs]
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return None
    _, cls = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    fg = cls.astype(bool)
    return ys, xs, (fg if fg.mean() >= 0.5 else ~fg)


def on_plate(
    img: QCImage, box: list[float], *, delta_e: float = 15.0, reach: float = 3.0, min_fill: float = 0.9
) -> bool:
    """True when a text box (full-resolution px) sits on a plate of its own - a band, badge or box
    drawn behind the text. The plate's colour is the majority (Otsu) class inside the box; the plate
    is the connected region of that colour (within ``delta_e`` CIELAB units) that holds those pixels.
    It is a plate when it ends within ``reach`` box heights above and below the box (a band may run
    to the frame's sides; a badge ends on all sides or at the frame's edge) and fills at least
    ``min_fill`` of its bounding box (a rectangle or rounded box: drawn plates fill 0.94-1.0 of it
    after JPEG, the printed patches of garments on the dev half of bench/quality_text_print.py mostly
    0.4-0.8). Print on a garment has the garment's own fabric around it, which runs on past the text
    or is not a rectangle."""
    import cv2

    lab = img.memo("lab", lambda: cv2.cvtColor(img.rgb, cv2.COLOR_RGB2LAB).astype(np.float32))
    h = lab.shape[0]
    cut = _ground(img, box)
    if cut is None:
        return False
    ys, xs, ground = cut
    by0, by1, bx0, bx1 = ys.start, ys.stop, xs.start, xs.stop
    plate = np.median(lab[by0:by1, bx0:bx1][ground], axis=0)
    th = by1 - by0
    wy0, wy1 = max(0, int(by0 - reach * th)), min(h, int(by1 + reach * th))
    window = lab[wy0:wy1]  # the full width: a band may cross the photo
    similar = (np.linalg.norm(window - plate, axis=2) <= delta_e).astype(np.uint8)
    _, labels = cv2.connectedComponents(similar, connectivity=4)
    seeds = labels[by0 - wy0 : by1 - wy0, bx0:bx1][ground]
    seeds = seeds[seeds > 0]
    if seeds.size == 0:
        return False
    comp = labels == np.bincount(seeds).argmax()
    rows, cols = np.flatnonzero(comp.any(axis=1)), np.flatnonzero(comp.any(axis=0))
    top, bottom = int(rows[0]) + wy0, int(rows[-1]) + wy0 + 1
    if (top == wy0 and wy0 > 0) or (bottom == wy1 and wy1 < h):
        return False  # runs on past the window above or below: the garment, the backdrop
    left, right = int(cols[0]), int(cols[-1]) + 1
    filled = comp.copy()
    filled[by0 - wy0 : by1 - wy0, bx0:bx1] = True  # the strokes' holes
    area = filled[top - wy0 : bottom - wy0, left:right]
    return float(area.mean()) >= min_fill


def text_on_product(
    img: QCImage, box: list[float], *, min_ground: float = 0.9, min_box: float = 0.75
) -> bool:
    """True when a text box is the product's own print on any background: at least ``min_ground`` of
    its ground (the pixels around and between the strokes, :func:`_ground`) and ``min_box`` of the
    whole box lie inside the product (:func:`product_region`), and the text is not on a plate of its
    own (:func:`on_plate`). The ground alone can mislead (an overlay's strokes join the silhouette;
    across a dark garment's edge the garment is the majority), the box alone too (print running to a
    seam): both must agree. Text on the background, across the product's edge, or in a band or box
    is an overlay."""
    region = product_region(img)
    cut = _ground(img, box)
    if region is None or cut is None:
        return False
    ys, xs, ground = cut
    inside = region[ys, xs]
    if float(inside[ground].mean()) < min_ground or float(inside.mean()) < min_box:
        return False
    return not on_plate(img, box)


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


WATERMARK_WORDS = _WORDS["watermark_words"]


def _self_repeats(token: str, k: int) -> bool:
    """True when some ``k``-character piece of ``token`` occurs twice without overlap: tiled text
    that OCR reads as one run-together line ("PHOTO STUDIOPHOTO STU")."""
    return any(token.find(token[i : i + k], i + k) >= 0 for i in range(len(token) - 2 * k + 1))


def _shared(a: str, b: str) -> int:
    """Length of the longest common substring of two OCR tokens."""
    from difflib import SequenceMatcher

    return SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b)).size


def _has_mark_word(text: str, words: list[str], *, fuzzy: bool = False) -> bool:
    """A watermark word in ``text`` (lower case): as a substring; for alphabetic words of 6+ letters
    also a token that is the word with its first or last letter lost (the ends of faint, see-through
    strokes are what OCR drops: "AMPLE" for "SAMPLE"); with ``fuzzy`` (an uncertain read) also one
    OCR misread away from a word of 5+ letters or from such a truncation ("PROOP", "AMPLC")."""
    if any(w.lower() in text for w in words):
        return True
    tokens = re.findall(r"[a-z]+", text)
    for w in (w.lower() for w in words if w.isalpha() and len(w) >= 5):
        forms = [w] + ([w[1:], w[:-1]] if len(w) >= 6 else [])
        for t in tokens:
            if t in forms[1:] or (fuzzy and any(_similar(t, f) for f in forms)):
                return True
    return False


def _fragment_groups(norm: list[str], k: int, min_size: int) -> set[int]:
    """Indices of the tokens in groups of ``min_size``+ linked by shared ``k``-character pieces
    (transitively: "ROO" - "ROOF" - "OOF"): the tiles of a faint watermark that OCR reads only in
    fragments."""
    parent = list(range(len(norm)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(norm):
        for j in range(i + 1, len(norm)):
            if len(a) >= k and len(norm[j]) >= k and _shared(a, norm[j]) >= k:
                parent[root(i)] = root(j)
    sizes: dict[int, int] = {}
    for i in range(len(norm)):
        sizes[root(i)] = sizes.get(root(i), 0) + 1
    return {i for i in range(len(norm)) if sizes[root(i)] >= min_size}


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
