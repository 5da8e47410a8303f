"""Brand tagging: OCR'd text matched against a brand list, combined with a learned logo classifier.

* Brand labels come from titles: the words before the gender word ("Nike Women As Trophy Swo White
  T-Shirts" -> "Nike"); :func:`brand_from_title`. Brands are compared case-insensitively and
  without punctuation (``brand_key``): "ADIDAS" and "Adidas" are one brand.
* OCR (:func:`ocr_texts`) reads text with the packaged RapidOCR on a CLAHE-enhanced copy whose
  short side is ``OCR_SIDE`` px (small catalog photos are upscaled so that label text is
  detectable), once per image: results are cached in ``classify_image_cache`` (kind ``ocr-v1``).
* :func:`match_brand` fuzzy-matches OCR tokens (single tokens and adjacent pairs, letters and
  digits only) against the brand list (``difflib`` ratio >= ``min_ratio``, tokens of 3+ chars).
* :class:`BrandTagger` combines them: a confident OCR match wins; otherwise the learned classifier
  (a calibrated linear head on the image embedding over the brands with at least ``min_examples``
  examples) answers, and ``unknown`` below its abstain threshold (set on held-out rows where
  other brands count as errors).
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from catalens.catalog_base import CatalogParts

GENDER_WORDS = {
    "men",
    "mens",
    "men's",
    "women",
    "womens",
    "women's",
    "boys",
    "boy's",
    "girls",
    "girl's",
    "unisex",
    "kids",
    "kid's",
}
UNKNOWN = "unknown"
OCR_KIND = "ocr-v1"
OCR_SIDE = 480
_TOKEN = re.compile(r"[^a-z0-9]+")


def brand_key(name: str) -> str:
    """Case- and punctuation-insensitive key of a brand name ("U.S. Polo" -> "uspolo")."""
    return _TOKEN.sub("", name.lower())


def brand_from_title(title: str | None, max_words: int = 4) -> str | None:
    """The leading words of a title before its gender word, or None when there is no gender word
    within the first ``max_words + 1`` words."""
    if not title:
        return None
    words = title.split()
    for i, w in enumerate(words[: max_words + 1]):
        if w.lower().strip(".,") in GENDER_WORDS:
            return " ".join(words[:i]) if i else None
    return None


def brand_labels(titles: Sequence[str | None]) -> list[str | None]:
    """Canonical brand per title: the most frequent spelling among titles sharing a :func:`brand_key`."""
    raw = [brand_from_title(t) for t in titles]
    spellings: dict[str, Counter[str]] = {}
    for b in raw:
        if b:
            spellings.setdefault(brand_key(b), Counter())[b] += 1
    canon = {k: c.most_common(1)[0][0] for k, c in spellings.items()}
    return [canon[brand_key(b)] if b else None for b in raw]


# ---------------------------------------------------------------- OCR


def ocr_engine() -> Any:
    """RapidOCR without the angle classifier, 1 ONNX Runtime thread per op (cheap on 2 cores)."""
    from catalens.ocr import ocr_engine as shared

    return shared(limit_type="min", side=OCR_SIDE, threads=1)


def ocr_image(img: Any) -> list[tuple[str, float]]:
    """(text, confidence) of every text line found in a PIL image."""
    import cv2

    rgb = np.asarray(img.convert("RGB"))
    h, w = rgb.shape[:2]
    f = min(1.0, 2 * OCR_SIDE / max(h, w))  # no need for more than this to read labels
    if f < 1:
        rgb = cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    enhanced = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(gray)
    res = ocr_engine()(cv2.cvtColor(enhanced, cv2.COLOR_GRAY2BGR))
    txts = getattr(res, "txts", None) or ()
    scores = getattr(res, "scores", None) or ()
    return [(str(t), float(s)) for t, s in zip(txts, scores, strict=False)]


def ocr_texts(
    cat: CatalogParts, shas: Sequence[str], progress: Any = None
) -> dict[str, list[tuple[str, float]]]:
    """OCR of stored images, computed once per image sha (cached in the catalog)."""
    from catalens.classify.cache import cached, decode_json, encode_json
    from catalens.errors import LabelsError
    from catalens.imageio import open_image

    def compute(sha: str) -> bytes:
        rec = cat.db.image(sha)
        if rec is None:
            raise LabelsError(f"image {sha} is not in the catalog")
        return encode_json(ocr_image(open_image(rec.stored_path or rec.source).image))

    raw = cached(cat.db, OCR_KIND, shas, compute, batch=16, progress=progress)
    return {h: [(t, s) for t, s in decode_json(raw[h])] for h in shas}


# ---------------------------------------------------------------- matching


def _candidates(texts: Sequence[tuple[str, float]], min_conf: float) -> list[str]:
    tokens: list[str] = []
    for t, c in texts:
        if c < min_conf:
            continue
        words = [brand_key(w) for w in t.split()]
        words = [w for w in words if w]
        tokens.extend(words)
        tokens.extend(a + b for a, b in zip(words, words[1:], strict=False))
        if len(words) > 1:
            tokens.append("".join(words))
    return [t for t in dict.fromkeys(tokens) if len(t) >= 3 and not t.isdigit()]


def match_brand(
    texts: Sequence[tuple[str, float]],
    brands: Sequence[str],
    *,
    min_ratio: float = 0.84,
    min_conf: float = 0.6,
) -> tuple[str | None, float]:
    """Best fuzzy match of OCR text against ``brands``: (brand, similarity) or (None, best similarity)."""
    keys = {brand_key(b): b for b in brands if len(brand_key(b)) >= 3}
    best, best_r = None, 0.0
    for tok in _candidates(texts, min_conf):
        if tok in keys:
            return keys[tok], 1.0
        for k, b in keys.items():
            if abs(len(k) - len(tok)) > max(2, len(k) // 3):
                continue
            r = difflib.SequenceMatcher(None, tok, k).ratio()
            if r > best_r:
                best, best_r = b, r
    return (best, best_r) if best_r >= min_ratio else (None, best_r)


# ---------------------------------------------------------------- combined tagger


@dataclass
class BrandTagger:
    """Brand list, logo head (linear on image embeddings over the known brands) and its calibration."""

    brands: list[str]  # brands with a learned class (>= min_examples)
    all_brands: list[str]  # every brand seen in titles (OCR may match any of them)
    W: np.ndarray
    b: np.ndarray
    temperature: float = 1.0
    threshold: float = 0.5
    info: dict[str, Any] = field(default_factory=dict)

    def proba(self, X: np.ndarray) -> np.ndarray:
        from catalens.classify.classifier import softmax

        return softmax((np.asarray(X, np.float32) @ self.W.T + self.b) / self.temperature)

    def predict(
        self,
        X: np.ndarray,
        texts: Sequence[Sequence[tuple[str, float]]] | None = None,
        *,
        threshold: float | None = None,
    ) -> list[dict[str, Any]]:
        """Per row: brand (or ``unknown``), probability, and the source (``ocr`` or ``logo``).

        A brand read by OCR wins; otherwise the logo head's top brand, or ``unknown`` when its
        calibrated probability is below the abstain threshold (``threshold`` overrides it).
        """
        thr = self.threshold if threshold is None else threshold
        P = self.proba(X)
        out = []
        for i in range(len(P)):
            if texts is not None:
                m, r = match_brand(texts[i], self.all_brands)
                if m is not None:
                    out.append({"brand": m, "prob": float(r), "source": "ocr"})
                    continue
            j = int(P[i].argmax())
            prob = float(P[i, j])
            out.append({"brand": self.brands[j] if prob >= thr else UNKNOWN, "prob": prob, "source": "logo"})
        return out


def train_brand_tagger(
    X: np.ndarray,
    titles: Sequence[str | None],
    *,
    min_examples: int = 10,
    calib_frac: float = 0.15,
    target_precision: float = 0.8,
    seed: int = 0,
    C: float = 0.5,
    labels: Sequence[str | None] | None = None,
) -> BrandTagger:
    """Learn the logo/brand head from image embeddings and title-derived brand labels (or the
    given ``labels``, e.g. a brand column of the catalog; None or empty = no brand).

    The head covers the brands with at least ``min_examples`` examples. On a seeded held-out
    part (all rows, rows of other brands counting as errors) it gets its temperature and the
    abstain threshold at which answered rows reach ``target_precision``; below it the answer is
    ``unknown``.
    """
    from catalens.classify.heads import abstain_threshold, fit_linear, fit_temperature
    from catalens.classify.train import _softmax
    from catalens.errors import LabelsError

    if labels is None:
        labels = brand_labels(titles)
    else:
        labels = [str(b).strip() or None if b is not None else None for b in labels]
    counts = Counter(b for b in labels if b)
    brands = sorted(b for b, n in counts.items() if n >= min_examples)
    if len(brands) < 2:
        raise LabelsError(
            f"fewer than 2 brands have {min_examples} or more examples (brands seen: {len(counts)})"
        )
    col = {b: j for j, b in enumerate(brands)}
    y = np.array([col.get(b, -1) if b else -1 for b in labels], np.int64)
    X = np.asarray(X, np.float32)
    rng = np.random.default_rng(seed)
    va = np.sort(rng.permutation(len(y))[: int(round(calib_frac * len(y)))])
    tr = np.setdiff1d(np.arange(len(y)), va)
    tr_k = tr[y[tr] >= 0]
    temperature, threshold, init = 1.0, 0.5, None
    va_k = va[y[va] >= 0]
    if len(va_k) >= 20 and len(np.unique(y[tr_k])) >= 2:
        init = fit_linear(X[tr_k], y[tr_k], len(brands), C=C)
        logits = X[va] @ init[0].T + init[1]
        temperature = fit_temperature(logits[y[va] >= 0], y[va_k])
        threshold = abstain_threshold(_softmax(logits / temperature), y[va], target_precision)
    known = y >= 0
    W, b = fit_linear(X[known], y[known], len(brands), C=C, init=init)
    return BrandTagger(
        brands=brands,
        all_brands=sorted(counts),
        W=W,
        b=b,
        temperature=temperature,
        threshold=threshold,
        info={"min_examples": min_examples, "n": len(y), "brand_counts": {k: counts[k] for k in brands}},
    )
