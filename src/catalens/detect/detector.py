"""Run the packaged product detector on a photo: boxes, masks, scores and coarse categories.

The model (``detect/data/detector.onnx`` + ``detector.json``, made by :mod:`catalens.detect.train`)
runs on ONNX Runtime. A photo is scaled so its long side is ``INPUT_LONG`` pixels and both sides are
multiples of 32 (a slight stretch at most), the centre heatmap's local maxima above the threshold
are the products, overlapping boxes of any category are merged (the higher score wins), and each
product's mask is the product-pixel map inside its box, at the photo's own resolution.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from catalens.errors import ConfigError

VERSION = "detector-v1"
INPUT_LONG = 384
STRIDE = 8
MAX_PEAKS = 50
NMS_IOU = 0.6
TRAINER = "catalens.detect.train"

_lock = threading.Lock()
_loaded: dict[str, tuple[Any, dict[str, Any]]] = {}


@dataclass(frozen=True)
class Detection:
    """One product found in a photo (coordinates in the photo's pixels)."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float
    category: str
    mask: np.ndarray | None = None  # bool (photo height, photo width), None when not asked for

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "box": [round(v, 1) for v in self.box],
            "score": round(self.score, 4),
            "category": self.category,
        }
        if self.mask is not None:
            out["mask_area"] = round(float(self.mask.mean()), 4)
        return out


def data_dir() -> Path:
    return Path(str(resources.files("catalens.detect") / "data"))


def load(folder: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """The ONNX Runtime session and metadata of the detector in ``folder`` (packaged by default)."""
    base = Path(folder) if folder else data_dir()
    key = str(base)
    got = _loaded.get(key)
    if got is not None:
        return got
    with _lock:
        got = _loaded.get(key)
        if got is None:
            onnx_path, meta_path = base / "detector.onnx", base / "detector.json"
            if not onnx_path.is_file() or not meta_path.is_file():
                raise ConfigError(
                    f"product detector not found in {base} (need detector.onnx and detector.json; "
                    f"python -m {TRAINER} makes them)"
                )
            meta = json.loads(meta_path.read_text())
            if meta.get("version") != VERSION:
                raise ConfigError(
                    f"product detector in {base} is {meta.get('version')!r}, this code expects {VERSION!r}: "
                    f"retrain it (python -m {TRAINER})"
                )
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 0
            session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
            got = _loaded[key] = (session, meta)
    return got


def input_size(width: int, height: int, long_side: int = INPUT_LONG) -> tuple[int, int]:
    """(width, height) of the network input for a photo: long side ``long_side``, both multiples of 32."""
    k = long_side / max(width, height)
    return (
        max(64, int(round(width * k / 32)) * 32),
        max(64, int(round(height * k / 32)) * 32),
    )


def prepare(rgb: np.ndarray, long_side: int = INPUT_LONG) -> np.ndarray:
    """(1, 3, H, W) float32 in [-1, 1] for a uint8 RGB photo."""
    import cv2

    h, w = rgb.shape[:2]
    size = input_size(w, h, long_side)
    interp = cv2.INTER_AREA if max(w, h) > long_side else cv2.INTER_LINEAR
    small = cv2.resize(np.ascontiguousarray(rgb[..., :3]), size, interpolation=interp)
    x = small.astype(np.float32) * (1.0 / 127.5) - 1.0
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box ``a`` (4,) against boxes ``b`` (n, 4), x0 y0 x1 y1."""
    x0, y0 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    x1, y1 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda r: np.clip(r[..., 2] - r[..., 0], 0, None) * np.clip(r[..., 3] - r[..., 1], 0, None)  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def decode(
    heat: np.ndarray,
    box: np.ndarray,
    *,
    threshold: float,
    max_peaks: int = MAX_PEAKS,
    nms_iou: float = NMS_IOU,
) -> list[tuple[np.ndarray, float, int]]:
    """Peaks of one image's outputs -> [(box in input pixels, score, category index)], best first.

    ``heat`` (C, h, w) logits, ``box`` (4, h, w). A peak is a cell that is the maximum of its 3x3
    neighbourhood over all categories; boxes of any category overlapping a better one by more than
    ``nms_iou`` are dropped.
    """
    import cv2

    prob = _sigmoid(heat)
    best = prob.max(axis=0)
    cat = prob.argmax(axis=0)
    peak = best >= cv2.dilate(best.astype(np.float32), np.ones((3, 3), np.uint8))
    cand = np.flatnonzero((peak & (best >= threshold)).ravel())
    if cand.size == 0:
        return []
    cand = cand[np.argsort(-best.ravel()[cand])][:max_peaks]
    h, w = best.shape
    ys, xs = np.divmod(cand, w)
    bw = np.exp(np.clip(box[0].ravel()[cand], -4, 6)) * STRIDE
    bh = np.exp(np.clip(box[1].ravel()[cand], -4, 6)) * STRIDE
    cx = (xs + np.clip(box[2].ravel()[cand], 0, 1)) * STRIDE
    cy = (ys + np.clip(box[3].ravel()[cand], 0, 1)) * STRIDE
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    boxes = np.clip(boxes, 0, [w * STRIDE, h * STRIDE, w * STRIDE, h * STRIDE])
    scores = best.ravel()[cand]
    cats = cat.ravel()[cand]
    keep: list[int] = []
    for i in range(len(cand)):
        if keep and (iou(boxes[i], boxes[keep]) > nms_iou).any():
            continue
        keep.append(i)
    return [(boxes[i], float(scores[i]), int(cats[i])) for i in keep]


class Detector:
    """The packaged (or a given folder's) product detector."""

    def __init__(self, folder: Path | None = None, *, threshold: float | None = None) -> None:
        self.session, self.meta = load(folder)
        self.categories: list[str] = list(self.meta["categories"])
        self.threshold = float(self.meta["threshold"] if threshold is None else threshold)
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"detection threshold must be between 0 and 1, got {self.threshold}")
        self.long_side = int(self.meta.get("input_long_side", INPUT_LONG))

    def raw(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The network's (heat, box, mask) for one photo (batch axis removed)."""
        x = prepare(rgb, self.long_side)
        heat, box, mask = self.session.run(None, {"pixels": x})
        return heat[0], box[0], mask[0, 0]

    def detect(
        self, rgb: np.ndarray, *, masks: bool = True, threshold: float | None = None
    ) -> list[Detection]:
        """The products in ``rgb`` (uint8 RGB, any size), best score first."""
        return self.detect_with_mask(rgb, masks=masks, threshold=threshold)[0]

    def product_pixels(self, rgb: np.ndarray) -> np.ndarray:
        """bool (photo height, photo width): every pixel the network calls product, whether or not a box
        clears the detection threshold (the explanation weighting uses it)."""
        import cv2

        h, w = rgb.shape[:2]
        mask_logit = self.raw(rgb)[2]
        return cv2.resize(_sigmoid(mask_logit).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) >= 0.5

    def detect_with_mask(
        self, rgb: np.ndarray, *, masks: bool = True, threshold: float | None = None
    ) -> tuple[list[Detection], np.ndarray | None]:
        """The products in ``rgb`` and the photo's whole product-pixel mask (bool, the photo's size:
        every pixel the network calls product, not clipped to the boxes; None when nothing is found or
        ``masks`` is off). Each detection's own mask is that mask inside its box."""
        import cv2

        if rgb.ndim != 3 or rgb.shape[2] < 3 or min(rgb.shape[:2]) < 8:
            raise ValueError(f"expected an RGB photo of at least 8x8 pixels, got shape {rgb.shape}")
        h, w = rgb.shape[:2]
        heat, box, mask_logit = self.raw(rgb)
        in_h, in_w = heat.shape[1] * STRIDE, heat.shape[2] * STRIDE
        sx, sy = w / in_w, h / in_h
        found = decode(heat, box, threshold=self.threshold if threshold is None else threshold)
        full = None
        if masks and found:
            full = (
                cv2.resize(_sigmoid(mask_logit).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
                >= 0.5
            )
        out = []
        for b, score, c in found:
            x0, y0, x1, y1 = float(b[0] * sx), float(b[1] * sy), float(b[2] * sx), float(b[3] * sy)
            mask = None
            if full is not None:
                mask = np.zeros((h, w), bool)
                ys, xs = slice(int(y0), int(np.ceil(y1))), slice(int(x0), int(np.ceil(x1)))
                mask[ys, xs] = full[ys, xs]
            out.append(Detection((x0, y0, x1, y1), score, self.categories[c], mask))
        return out, full


_default: Detector | None = None


def photo_product_mask(
    image: Any, *, boxed: bool = True, max_side: int | None = None, min_share: float = 0.0
) -> np.ndarray | None:
    """The packaged detector's product-pixel mask of a PIL image (of the image as given, or shrunk to
    ``max_side`` px first). ``boxed``: only when a product clears the detection threshold
    (:meth:`Detector.detect_with_mask`); else every pixel the network calls product
    (:meth:`Detector.product_pixels`). None for a photo under 8 px, when nothing is found, or when the
    mask covers under ``min_share`` of the photo."""
    im = image.convert("RGB")
    if max_side is not None:
        im.thumbnail((max_side, max_side))
    rgb = np.asarray(im)
    if min(rgb.shape[:2]) < 8:
        return None
    det = default_detector()
    mask = det.detect_with_mask(rgb)[1] if boxed else det.product_pixels(rgb)
    if mask is None or not mask.any() or mask.mean() < min_share:
        return None
    return mask


def default_detector() -> Detector:
    """The packaged detector, loaded once."""
    global _default
    if _default is None:
        _default = Detector()
    return _default
