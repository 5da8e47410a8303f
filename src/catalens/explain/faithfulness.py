"""Faithfulness of a saliency map: deletion and insertion curves and their AUC (Petsiuk et al. 2018).

* Deletion: remove the input's pixels in order of decreasing saliency (replace them by the
  ``0`` input, i.e. the normalisation mean: mid-grey for the packaged models) and record the
  explained class's probability after each step. A faithful map makes it drop fast: low AUC.
* Insertion: start from a heavily blurred input and put the original pixels back in the same
  order. A faithful map makes the probability rise fast: high AUC.

AUC is the mean of the trapezoids over the fraction of pixels changed (0..1). Compare a map's
AUCs with those of random maps (:func:`random_map`) on the same images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from catalens.explain.maps import upsample

ScoreFn = Callable[[torch.Tensor], torch.Tensor]  # (N, 3, H, W) -> probabilities (N, C)


def gaussian_blur(x: torch.Tensor, sigma: float = 5.0, kernel: int = 11) -> torch.Tensor:
    """Separable Gaussian blur of an ``(N, C, H, W)`` batch (reflect padding)."""
    r = kernel // 2
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    out = F.pad(x, (r, r, 0, 0), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = F.pad(out, (0, 0, r, r), mode="reflect")
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def pixel_order(saliency: np.ndarray, seed: int = 0) -> np.ndarray:
    """Flat pixel indices, most salient first (ties broken at random, reproducibly)."""
    s = np.asarray(saliency, dtype=np.float64).ravel()
    jitter = np.random.default_rng(seed).random(s.size) * 1e-9 * max(1e-12, float(np.ptp(s)) or 1.0)
    return np.argsort(-(s + jitter), kind="stable")


def random_map(shape: tuple[int, int], size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random map with the smoothness of a CAM: uniform noise on a ``shape`` grid, upsampled to ``size``.
    ``shape == size`` gives per-pixel noise."""
    return upsample(rng.random(shape).astype(np.float32), size)


@torch.no_grad()
def curve(
    score_fn: ScoreFn,
    x: torch.Tensor,
    saliency: np.ndarray,
    index: int,
    *,
    mode: str = "deletion",
    steps: int = 16,
    batch: int = 32,
    seed: int = 0,
) -> np.ndarray:
    """Probability of class ``index`` after each of ``steps`` equal steps (``steps + 1`` values).

    ``x`` is one ``(1, 3, H, W)`` input; ``saliency`` an ``(H, W)`` map at the input resolution.
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', not {mode!r}")
    _, c, h, w = x.shape
    if saliency.shape != (h, w):
        raise ValueError(f"saliency {saliency.shape} does not match the input {(h, w)}")
    order = torch.from_numpy(pixel_order(saliency, seed)).to(x.device)
    n = h * w
    counts = [round(n * k / steps) for k in range(steps + 1)]
    if mode == "deletion":
        start, finish = x[0], torch.zeros_like(x[0])
    else:
        start, finish = gaussian_blur(x)[0], x[0]
    rank = torch.empty(n, dtype=torch.long, device=x.device)
    rank[order] = torch.arange(n, device=x.device)
    rank = rank.view(1, h, w)
    scores: list[np.ndarray] = []
    for i in range(0, len(counts), batch):
        chunk = counts[i : i + batch]
        masks = torch.stack([(rank < k) for k in chunk]).to(x.dtype)  # 1 = changed
        imgs = start[None] * (1 - masks) + finish[None] * masks
        probs = score_fn(imgs)
        scores.append(probs[:, index].float().cpu().numpy())
    return np.concatenate(scores)


def auc(values: np.ndarray) -> float:
    """Area under a curve sampled at equal steps over [0, 1] (trapezoids)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return float(v.mean()) if v.size else 0.0
    return float(((v[:-1] + v[1:]) / 2).mean())


@dataclass
class Faithfulness:
    """Deletion and insertion AUC of one map on one input."""

    deletion: float
    insertion: float


def faithfulness(
    score_fn: ScoreFn, x: torch.Tensor, saliency: np.ndarray, index: int, *, steps: int = 16, seed: int = 0
) -> Faithfulness:
    """Deletion and insertion AUC of ``saliency`` for class ``index``."""
    d = curve(score_fn, x, saliency, index, mode="deletion", steps=steps, seed=seed)
    i = curve(score_fn, x, saliency, index, mode="insertion", steps=steps, seed=seed)
    return Faithfulness(auc(d), auc(i))
