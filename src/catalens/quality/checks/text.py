"""Text and watermarks, read with the packaged RapidOCR (ONNX models inside the wheel, offline).

OCR runs once per image (cached on the :class:`QCImage`) on a contrast-enhanced copy (CLAHE on
luma, resized so that its long side is ``OCR_SIDE`` px) so that faint, semi-transparent text is found
too. The detector is capped at the same long side (RapidOCR's default instead scales the SHORT side
up to 736 px, about 2.4x more pixels for a 3:4 photo and as much slower); text a shopper can read
on a product photo (>= ~2% of its height) stays >= ~13 px tall at 640 px.

* ``text``: score = share of the image covered by text boxes; the text read and any promotional
  words (``promo_words``) are in ``details``; boxes are returned as ``regions``.
* ``watermark``: tiled text (pieces of the same words repeat across 3+ lines, or within one
  run-together line), watermark words (``watermark_words``: copyright sign, URL, "sample",
  "proof"...), or - when ``max_contrast`` is set - large faint text (strokes differ from their
  surroundings by less than ``max_contrast`` luma levels over >= ``min_faint_area`` of the image;
  off by default: low-contrast print on products looks the same). Score = area share of such text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from catalens.quality.context import QCImage
from catalens.quality.registry import Check, register_check
from catalens.quality.result import CheckResult, grade

OCR_SIDE = 640
# Promotional vocabulary. Single words are matched per OCR token with a small edit tolerance (OCR
# misreads such as "OFEER", "FREF"); phrases with a number or % are matched as regular expressions.
PROMO_WORDS = [
    "sale",
    "free",
    "shipping",
    "delivery",
    "discount",
    "offer",
    "offers",
    "deal",
    "deals",
    "clearance",
    "limited",
    "bogo",
    "bestseller",
    "cashback",
    "coupon",
    "promo",
    "arrival",
    "lowest",
    "price",
]
PROMO_PATTERNS = [r"\d+\s*%", r"\bbuy\s*\d", r"\bget\s*\d", r"\b\d+\s*off\b", r"% ?off", r"\bflat\s*\d"]


def ocr_engine() -> Any:
    """The shared RapidOCR engine (loaded once; 2 ONNX Runtime threads)."""
    from catalens.ocr import ocr_engine as shared

    return shared(limit_type="max", side=OCR_SIDE, threads=2)


@dataclass
class TextBox:
    box: list[float]  # x0, y0, x1, y1 in full-resolution px
    text: str
    confidence: float
    contrast: float  # stroke vs surrounding luma difference in the original
    area: float  # share of the image


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


def read_text(img: QCImage) -> list[TextBox]:
    """OCR the image once (cached): boxes with text, confidence, stroke contrast and area share."""

    def compute() -> list[TextBox]:
        import cv2

        assert img.decoded is not None
        rgb = np.asarray(img.decoded.image)
        h, w = rgb.shape[:2]
        f = OCR_SIDE / max(h, w)
        if f != 1:
            interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC  # small photos: upscale the text
            rgb = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=interp)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        enhanced = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(gray)
        out = ocr_engine()(cv2.cvtColor(enhanced, cv2.COLOR_GRAY2BGR))
        boxes: list[TextBox] = []
        if out is None or getattr(out, "boxes", None) is None:
            return boxes
        to_full = (img.width or w) / gray.shape[1]
        for quad, text, conf in zip(out.boxes, out.txts, out.scores, strict=False):
            q = np.asarray(quad, np.float32)
            x0, y0 = np.clip(q.min(axis=0), 0, None)
            x1, y1 = q.max(axis=0)
            x1, y1 = min(x1, gray.shape[1]), min(y1, gray.shape[0])
            patch = gray[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))]
            area = float((x1 - x0) * (y1 - y0)) / gray.size
            boxes.append(
                TextBox(
                    box=[round(float(v) * to_full, 1) for v in (x0, y0, x1, y1)],
                    text=str(text),
                    confidence=float(conf),
                    contrast=_stroke_contrast(patch),
                    area=area,
                )
            )
        return boxes

    return img.memo("ocr", compute)


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
# Words that open a promotional compound when OCR drops the space ("HOTDEAL", "BIGSALE", "MEGAOFFER").
PROMO_MODIFIERS = ["hot", "big", "mega", "super", "flash", "best", "great", "top", "special", "free", "new"]


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


@register_check("text")
class TextCheck(Check):
    """Score: share of the image covered by confident text (0..1); with ``exclude_print`` the text
    printed on the product itself (see :func:`is_print`) is left out of the share (it is listed in
    ``details``). Fails on promotional words (wherever they are) or text over ``fail``; warns over
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
    }

    def setup(self) -> None:
        ocr_engine()

    def run(self, img: QCImage) -> CheckResult:
        boxes = [
            b
            for b in read_text(img)
            if b.confidence >= float(self.p["min_confidence"])
            and b.area >= float(self.p["min_box"])
            and len(b.text.strip()) >= 2
        ]
        printed = [b for b in boxes if self.p["exclude_print"] and is_print(img, b.box)]
        area = float(sum(b.area for b in boxes if b not in printed))
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
            },
        )


WATERMARK_WORDS = [
    "©",
    "(c)",
    "copyright",
    "watermark",
    "sample",
    "proof",
    "preview",
    "www",
    ".com",
    "photo",
    "studio",
    "stock",
]


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


def watermark_boxes(
    boxes: list[TextBox],
    *,
    words: list[str],
    repeat_chars: int = 4,
    min_repeats: int = 3,
    max_contrast: float | None = None,
    min_faint_area: float = 0.0,
) -> list[tuple[TextBox, str]]:
    """The boxes that look like a watermark, each with why: ``tiled`` (a run-together token repeats a
    ``repeat_chars + 1``-character piece of itself, ``min_repeats``+ boxes share a
    ``repeat_chars``-character piece, or one more box than that shares a piece one character shorter -
    OCR rarely reads every tile identically, so pieces are compared, not whole strings; a pair of
    shoes showing the same brand twice is not enough), ``words`` (copyright sign, URL, "sample",
    "proof"..., tolerant to OCR misreads on uncertain reads, see :func:`_has_mark_word`), or
    ``faint`` (stroke contrast under ``max_contrast`` over >= ``min_faint_area`` of the image)."""
    norm = [re.sub(r"[^a-z0-9]", "", b.text.lower()) for b in boxes]
    fragments = _fragment_groups(norm, repeat_chars - 1, min_repeats + 1)
    out: list[tuple[TextBox, str]] = []
    for i, (b, t) in enumerate(zip(boxes, norm, strict=True)):
        why = ""
        if len(t) >= repeat_chars:
            shared = sum(_shared(t, u) >= repeat_chars for j, u in enumerate(norm) if j != i)
            if shared + 1 >= min_repeats or (
                len(t) >= 2 * repeat_chars + 2 and _self_repeats(t, repeat_chars + 1)
            ):
                why = "tiled"
        if not why and i in fragments:
            why = "tiled"
        low = b.text.lower()
        if not why and _has_mark_word(low, words, fuzzy=b.confidence < FUZZY_BELOW):
            why = "words"
        if not why and max_contrast is not None and b.contrast < max_contrast and b.area >= min_faint_area:
            why = "faint"
        if why:
            out.append((b, why))
    return out


@register_check("watermark")
class WatermarkCheck(Check):
    """Score: share of the image covered by watermark-like text (0..1): tiled / repeated text,
    watermark words, or (when ``max_contrast`` is set) large see-through text; see
    :func:`watermark_boxes`."""

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
        "warn": 0.0005,
        "fail": 0.003,
    }

    def setup(self) -> None:
        ocr_engine()

    def run(self, img: QCImage) -> CheckResult:
        boxes = [
            b
            for b in read_text(img)
            if b.confidence >= float(self.p["min_confidence"])
            and b.area >= float(self.p["min_box"])
            and len(b.text.strip()) >= 2
        ]
        mc = self.p["max_contrast"]
        marks = watermark_boxes(
            boxes,
            words=list(self.p["watermark_words"] or []),
            repeat_chars=int(self.p["repeat_chars"]),
            min_repeats=int(self.p["min_repeats"]),
            max_contrast=None if mc is None else float(mc),
            min_faint_area=float(self.p["min_faint_area"]),
        )
        area = float(sum(b.area for b, _ in marks))
        verdict = grade(area, self.p["warn"], self.p["fail"], higher_is_worse=True)
        if not marks:
            reason = "no watermark"
        else:
            kinds = sorted({why for _, why in marks})
            reason = f"watermark-like text ({', '.join(kinds)}): " + ", ".join(
                repr(b.text) for b, _ in marks[:4]
            )
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
            },
        )
