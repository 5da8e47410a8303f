"""Small packaged pixel CNNs for quality checks, run as ONNX graphs.

Some defects are read from the pixels better than from hand-made features or OCR. Each such model
is the packaged EfficientNet-Lite0's stem and first ``frozen_stages`` stages (ImageNet weights,
frozen) followed by a small trained head that ends in the average and the maximum over the map (so
one large defect and a pattern spread over the photo both count) and one logit. The front and head
are exported together (``quality/data/NAME.onnx``, Lite0 weights Apache-2.0) with ``NAME.json``:
the version (a model of another version refuses to load), the threshold chosen on held-out data and
how it was trained. They run on ONNX Runtime; torch is needed only to train and export them
(:mod:`catalens.quality.training.cnn_fit`).

* ``overlay`` - a see-through overlay (watermark) on the photo; front to stage 4 (112 channels,
  stride 16), trained by :mod:`catalens.quality.training.overlay_cnn`; the ``watermark_visual`` check.
* ``exposure`` - an over-exposed photo; front to stage 2 (40 channels, stride 8: early layers still
  see absolute tones), trained by :mod:`catalens.quality.training.exposure_cnn`; averaged (in logits)
  with the tonal tree model by the ``overexposed`` check.

Input: the QC working copy resized to 288x384 (portrait or square) or 384x288 (landscape), RGB
scaled to [-1, 1]; 10-20 ms a photo on two cores.
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
from catalens.quality.context import QCImage

PORTRAIT, LANDSCAPE = (288, 384), (384, 288)  # (width, height) of the input


@dataclass(frozen=True)
class NetSpec:
    """One packaged pixel CNN: its file name, version, frozen Lite0 stages and head layout."""

    name: str
    version: str
    frozen_stages: int
    head_stride: int  # 2: one more stride-2 convolution in the head (fine stride-8 maps)
    trainer: str


NETS = {
    "overlay": NetSpec("overlay", "overlay-v1", 5, 1, "catalens.quality.training.overlay_cnn"),
    "exposure": NetSpec("exposure", "exposure-cnn-v1", 3, 2, "catalens.quality.training.exposure_cnn"),
}
HEAD_WIDTH = 64

_lock = threading.Lock()
_sessions: dict[str, tuple[Any, dict[str, Any]]] = {}


def data_dir() -> Path:
    return Path(str(resources.files("catalens.quality") / "data"))


def input_size(width: int, height: int) -> tuple[int, int]:
    """The input size (width, height) for a photo of this size."""
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


def load_net(name: str, folder: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """The ONNX Runtime session and metadata of the packaged net ``name`` (loaded once per folder)."""
    spec = NETS[name]
    base = folder or data_dir()
    key = f"{base}:{name}"
    got = _sessions.get(key)
    if got is not None:
        return got
    with _lock:
        got = _sessions.get(key)
        if got is None:
            onnx_path, meta_path = base / f"{name}.onnx", base / f"{name}.json"
            if not onnx_path.is_file() or not meta_path.is_file():
                raise ConfigError(
                    f"quality model {name!r} not found in {base} (need {name}.onnx and {name}.json; "
                    f"python -m {spec.trainer} makes them)"
                )
            meta = json.loads(meta_path.read_text())
            if meta.get("version") != spec.version:
                raise ConfigError(
                    f"quality model {name!r} in {base} is {meta.get('version')!r}, this code expects "
                    f"{spec.version!r}: retrain it (python -m {spec.trainer})"
                )
            import onnxruntime as ort

            opts = ort.SessionOptions()
            # one thread per call: the QC runner already runs one image per worker thread, and two
            # sessions' thread pools spinning on two cores cost ~1.4x
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
            got = _sessions[key] = (session, meta)
    return got


def probability(img: QCImage, name: str, folder: Path | None = None) -> float:
    """The net's positive-class probability (0..1) for ``img`` (cached on the image)."""

    def compute() -> float:
        assert img.decoded is not None
        session, _ = load_net(name, folder)
        # the decoded image, as in training (the 512-px working copy ``img.rgb`` would save a
        # resize, but it moved the over-exposure test F1 from 0.964 to 0.943: retrain first)
        x = prepare(np.asarray(img.decoded.image.convert("RGB")))
        logit = float(np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0]).ravel()[0])
        return float(1.0 / (1.0 + np.exp(-logit)))

    return img.memo(f"{name}:{folder or ''}", compute)


def overlay_probability(img: QCImage, folder: Path | None = None) -> float:
    """Probability (0..1) that a see-through overlay (a watermark) lies on ``img``."""
    return probability(img, "overlay", folder)


# ---- torch side (training and export only) ------------------------------------------------------


def build_head(spec: NetSpec, channels: int) -> Any:
    """The trainable head: frozen-front maps -> one logit."""
    import torch
    from torch import nn

    width = HEAD_WIDTH
    layers: list[nn.Module] = [nn.Conv2d(channels, width, 1), nn.BatchNorm2d(width), nn.ReLU()]
    if spec.head_stride == 2:
        layers += [nn.Conv2d(width, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU()]
    layers += [nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(*layers)
            self.fc = nn.Linear(2 * width, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.body(x)
            return self.fc(torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1))[:, 0]

    return Head()


def build_front(spec: NetSpec) -> Any:
    """The frozen part: the packaged Lite0's stem and ``blocks[:frozen_stages]`` (eval mode)."""
    from torch import nn

    from catalens.models.loader import build_backbone
    from catalens.models.registry import get_spec

    backbone, _ = build_backbone(get_spec("efficientnet-lite0"))

    class Front(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv_stem, self.bn1 = backbone.conv_stem, backbone.bn1
            self.blocks = backbone.blocks[: spec.frozen_stages]

        def forward(self, x: Any) -> Any:
            return self.blocks(self.bn1(self.conv_stem(x)))

        def embed(self, x: Any) -> Any:  # what export.freeze_same_padding runs to record sizes
            return self.forward(x)

    return Front().eval()
