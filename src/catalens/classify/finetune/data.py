"""Data side of fine-tuning: images as uint8 tensors, batched augmentations, splits, sampling.

Images are preprocessed once exactly as the embedding pipeline does (the model's
:class:`~catalens.models.preprocess.Preprocessor`: resize + centre crop) and kept as ``uint8``
``(N, 3, H, W)``; augmentation runs on batches of tensors, on whatever device trains (CPU or
GPU), so that no per-image Python work happens per epoch:

* ``crop``: a mild random resized crop (70-100 % of the area, aspect 3/4-4/3) of the network
  input, resampled back to full size (one ``affine_grid``/``grid_sample`` per batch);
* ``flip``: horizontal flip with probability 1/2;
* ``jitter``: light brightness / contrast / saturation changes (+-20 %). Colour jitter teaches
  the model to ignore colour, so it is applied per view with a flag: colour fields (``baseColour``
  ...) never learn from jittered views (see :func:`is_colour_field`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

COLOUR_WORDS = ("colour", "color")


def is_colour_field(name: str) -> bool:
    """Fields whose labels are colours must not be trained on colour-jittered views."""
    low = name.lower()
    return any(w in low for w in COLOUR_WORDS)


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths (``crop_scale``: smallest kept area fraction; ``jitter``: +- factor)."""

    crop: bool = True
    crop_scale: float = 0.7
    flip: bool = True
    jitter: float = 0.2

    def to_dict(self) -> dict[str, Any]:
        return {"crop": self.crop, "crop_scale": self.crop_scale, "flip": self.flip, "jitter": self.jitter}


def load_uint8(images: Sequence[Any], spec: Any) -> np.ndarray:
    """PIL images -> ``uint8 (N, 3, H, W)`` after the model's resize + centre crop."""
    from catalens.models.preprocess import Preprocessor

    pre = Preprocessor(spec)
    out = np.empty((len(images), 3, pre.height, pre.width), np.uint8)
    for i, im in enumerate(images):
        out[i] = np.asarray(pre.resize_crop(im)).transpose(2, 0, 1)
    return out


def to_input(x_uint8: Any) -> Any:
    """``uint8`` batch tensor -> float ``[0, 1]`` (normalisation happens after augmentation)."""
    return x_uint8.float().div_(255.0)


def normalise(x01: Any, mean: Sequence[float], std: Sequence[float]) -> Any:
    import torch

    m = torch.tensor(mean, dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
    return (x01 - m) / s


def augment(x01: Any, cfg: AugmentConfig, *, jitter: bool, generator: Any | None = None) -> Any:
    """Augment a float ``[0, 1]`` batch ``(N, 3, H, W)`` (see the module docstring)."""
    import torch
    import torch.nn.functional as F

    n = x01.shape[0]
    dev = x01.device

    def rand(*shape: int) -> Any:
        return torch.rand(*shape, generator=generator, device="cpu").to(dev)

    if cfg.crop or cfg.flip:
        if cfg.crop:
            area = cfg.crop_scale + (1.0 - cfg.crop_scale) * rand(n)
            logr = (rand(n) * 2 - 1) * math.log(4 / 3)
            sx = torch.sqrt(area * torch.exp(logr)).clamp(max=1.0)
            sy = torch.sqrt(area / torch.exp(logr)).clamp(max=1.0)
            tx = (rand(n) * 2 - 1) * (1 - sx)
            ty = (rand(n) * 2 - 1) * (1 - sy)
        else:
            sx = sy = torch.ones(n, device=dev)
            tx = ty = torch.zeros(n, device=dev)
        if cfg.flip:
            sx = torch.where(rand(n) < 0.5, -sx, sx)
        theta = torch.zeros(n, 2, 3, device=dev, dtype=x01.dtype)
        theta[:, 0, 0], theta[:, 0, 2] = sx, tx
        theta[:, 1, 1], theta[:, 1, 2] = sy, ty
        grid = F.affine_grid(theta, list(x01.shape), align_corners=False)
        x01 = F.grid_sample(x01, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if jitter and cfg.jitter > 0:
        j = cfg.jitter

        def factor() -> Any:
            return (1.0 + (rand(n) * 2 - 1) * j).view(n, 1, 1, 1).to(x01.dtype)

        x01 = x01 * factor()  # brightness
        gray = (0.299 * x01[:, 0] + 0.587 * x01[:, 1] + 0.114 * x01[:, 2]).unsqueeze(1)
        mean = gray.mean(dim=(2, 3), keepdim=True)
        x01 = (x01 - mean) * factor() + mean  # contrast
        gray = (0.299 * x01[:, 0] + 0.587 * x01[:, 1] + 0.114 * x01[:, 2]).unsqueeze(1)
        x01 = (x01 - gray) * factor() + gray  # saturation
        x01 = x01.clamp(0.0, 1.0)
    return x01


def grouped_split(
    n: int, groups: Sequence[str | None], frac: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) indices; rows sharing a group key (e.g. a title) stay together."""
    keys = [g if g else f"#row{i}" for i, g in enumerate(groups)]
    members: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        members.setdefault(k, []).append(i)
    order = sorted(members)
    rng = np.random.default_rng(seed)
    rng.shuffle(order)
    val: list[int] = []
    target = int(round(frac * n))
    for k in order:
        if len(val) >= target:
            break
        val.extend(members[k])
    vs = set(val)
    return np.array([i for i in range(n) if i not in vs], np.int64), np.array(sorted(vs), np.int64)


def balanced_weights(y: np.ndarray, power: float = 0.5) -> np.ndarray:
    """Sampling weight per row ``~ count(class) ** -power`` (0: uniform, 0.5: square-root balance,
    1: every class equally often). Rows with no label (``-1``) get the mean weight."""
    y = np.asarray(y)
    counts = Counter(y[y >= 0].tolist())
    w = np.array([counts[v] ** -power if v >= 0 else np.nan for v in y.tolist()], np.float64)
    fill = np.nanmean(w) if np.isfinite(w).any() else 1.0
    w = np.where(np.isfinite(w), w, fill)
    return w / w.sum()


def encode_targets(values: Sequence[str | None], classes: list[str]) -> np.ndarray:
    """Class index per row (``-1``: unlabelled or not a known class)."""
    col = {c: j for j, c in enumerate(classes)}
    return np.array([col.get(v, -1) if v is not None else -1 for v in values], np.int64)
