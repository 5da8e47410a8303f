"""The see-through overlay (watermark) detector: a small CNN shipped as an ONNX graph.

OCR finds a watermark only when its detector boxes the text, and a large mark at 25-45% opacity
over a busy product often gives no box at all, or a fragment. This detector looks at the pixels:
the packaged EfficientNet-Lite0's stem and first five stages (ImageNet weights, frozen) followed by
a small trained head (1x1 and 3x3 convolutions, then the average and the maximum over the map, so
one large mark and a tiled pattern both count) that outputs the probability that a
semi-transparent overlay lies on the photo. It was trained by
:mod:`catalens.quality.train_overlay` on catalogue and user photos with synthetic marks
(:mod:`catalens.quality.synth_marks`) against the untouched photos and opaque prints.

The graph (``quality/data/overlay.onnx``, Lite0 weights Apache-2.0) takes the photo resized to
288x384 (portrait or square) or 384x288 (landscape), scaled to [-1, 1]; ``overlay.json`` records
how it was trained and its held-out figures. It runs on ONNX Runtime (about 15-25 ms a photo on
two cores); torch is only needed to train and export it.
"""

from __future__ import annotations

import json
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from catalens.errors import ConfigError
from catalens.quality.context import QCImage

MODEL_NAME = "overlay"
VERSION = "overlay-v1"
PORTRAIT, LANDSCAPE = (288, 384), (384, 288)  # (width, height) of the detector's input
FROZEN_STAGES = 5  # Lite0 blocks[0:5]: stem to the 112-channel stage, stride 16
HEAD_WIDTH = 64

_lock = threading.Lock()
_sessions: dict[str, tuple[Any, dict[str, Any]]] = {}


def data_dir() -> Path:
    return Path(str(resources.files("catalens.quality") / "data"))


def input_size(width: int, height: int) -> tuple[int, int]:
    """The detector's input size (width, height) for a photo of this size."""
    return LANDSCAPE if width > 1.1 * height else PORTRAIT


def prepare(rgb: np.ndarray) -> np.ndarray:
    """(1, 3, H, W) float32 in [-1, 1]: ``rgb`` (uint8 HxWx3) resized to :func:`input_size`."""
    import cv2

    h, w = rgb.shape[:2]
    size = input_size(w, h)
    interp = cv2.INTER_AREA if w > size[0] else cv2.INTER_CUBIC
    small = cv2.resize(np.ascontiguousarray(rgb[..., :3]), size, interpolation=interp)
    x = small.astype(np.float32) * (1.0 / 127.5) - 1.0
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def load_detector(folder: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """The ONNX Runtime session and metadata of the packaged detector (loaded once per folder)."""
    base = folder or data_dir()
    key = str(base)
    got = _sessions.get(key)
    if got is not None:
        return got
    with _lock:
        got = _sessions.get(key)
        if got is None:
            onnx_path, meta_path = base / f"{MODEL_NAME}.onnx", base / f"{MODEL_NAME}.json"
            if not onnx_path.is_file() or not meta_path.is_file():
                raise ConfigError(
                    f"overlay detector not found in {base} (need {MODEL_NAME}.onnx and {MODEL_NAME}.json; "
                    "python -m catalens.quality.train_overlay makes them)"
                )
            meta = json.loads(meta_path.read_text())
            if meta.get("version") != VERSION:
                raise ConfigError(
                    f"overlay detector in {base} is {meta.get('version')!r}, this code expects {VERSION!r}: "
                    "retrain it (python -m catalens.quality.train_overlay)"
                )
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 2
            opts.inter_op_num_threads = 1
            session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
            got = _sessions[key] = (session, meta)
    return got


def overlay_probability(img: QCImage, folder: Path | None = None) -> float:
    """Probability (0..1) that a see-through overlay lies on ``img`` (cached on the image)."""

    def compute() -> float:
        assert img.decoded is not None
        session, _ = load_detector(folder)
        x = prepare(np.asarray(img.decoded.image.convert("RGB")))
        logit = float(np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0]).ravel()[0])
        return float(1.0 / (1.0 + np.exp(-logit)))

    return img.memo(f"overlay:{folder or ''}", compute)


# ---- torch side (training and export only) ------------------------------------------------------


def build_head(channels: int = 112, width: int = HEAD_WIDTH) -> Any:
    """The trainable head: maps of the frozen stages -> one logit."""
    import torch
    from torch import nn

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(channels, width, 1),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            )
            self.fc = nn.Linear(2 * width, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.body(x)
            return self.fc(torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1))[:, 0]

    return Head()


def build_front() -> Any:
    """The frozen part: the packaged Lite0's stem and ``blocks[:FROZEN_STAGES]`` (eval mode)."""
    from torch import nn

    from catalens.models.loader import build_backbone
    from catalens.models.registry import get_spec

    backbone, _ = build_backbone(get_spec("efficientnet-lite0"))

    class Front(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv_stem, self.bn1 = backbone.conv_stem, backbone.bn1
            self.blocks = backbone.blocks[:FROZEN_STAGES]

        def forward(self, x: Any) -> Any:
            return self.blocks(self.bn1(self.conv_stem(x)))

        def embed(self, x: Any) -> Any:  # what export.freeze_same_padding runs to record sizes
            return self.forward(x)

    return Front().eval()
