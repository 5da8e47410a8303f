"""Reading text for the quality checks, with the packaged RapidOCR (ONNX models inside the wheel, offline).

OCR runs once per image (cached on the :class:`QCImage`) on a contrast-enhanced copy (CLAHE on
luma, resized so that its long side is ``OCR_SIDE`` px) so that faint, semi-transparent text is found
too. The detector is capped at the same long side (RapidOCR's default instead scales the SHORT side
up to 736 px, about 2.4x more pixels for a 3:4 photo and as much slower); text a shopper can read
on a product photo (>= ~2% of its height) stays >= ~13 px tall at 640 px. The watermark check's
second look reads other views of the same copy (:data:`MARK_VIEWS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from catalens.quality.context import QCImage

OCR_SIDE = 640

# intra-op threads per OCR call: the QC runner already checks one image per worker thread, and two
# 2-thread calls on two cores ran slower than two 1-thread calls (bench/quality_speed.py)
OCR_THREADS = 1


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
