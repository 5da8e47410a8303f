"""Tonal features of one photo, the input of the learned over-exposure model.

Over-exposure by 2-3 stops clips every tone above mid-grey to white and lifts the blacks: the
product's light parts merge with a white studio background, dark garments turn mid-grey. A single
rule on any one of these cues also fires on correctly exposed pale or vivid products, so the check
combines them in a small gradient-boosted model (``catalens.quality.tree_models``) trained on
synthetic exposure changes of catalog photos (``catalens.quality.training.exposure_trees``).

Every feature but two is a share or a percentile of the shared working copy, so it hardly depends
on the photo's size; the two log-gradient features do (a smaller photo has steeper steps per pixel),
which is why the training photos are rescaled at random. ``FEATURE_VERSION`` changes whenever a feature changes: a packaged
model names the version it was trained on and refuses other versions.
"""

from __future__ import annotations

import numpy as np

from catalens.quality.context import QCImage

FEATURE_VERSION = "exposure-f3"
_DARK = (20, 35, 50, 70, 90)
_CONTENT_P = (0.5, 2, 10, 25, 50, 75, 90, 98)
_GLOBAL_P = (0.1, 1, 5, 50, 95)

FEATURE_NAMES: tuple[str, ...] = (
    *(f"luma_hist32_{i}" for i in range(32)),
    "one_channel_clipped",
    "two_channels_clipped",
    "all_channels_clipped",
    "content_share",
    *(f"luma_below_{t}" for t in _DARK),
    *(f"content_hist16_{i}" for i in range(16)),
    *(f"content_luma_p{p:g}" for p in _CONTENT_P),
    "content_saturation_mean",
    "content_saturation_p90",
    "content_partly_clipped",
    "content_log_grad_mean",
    "content_log_grad_p90",
    "content_bright_share",
    "content_bright_flat_share",
    "enclosed_white_share",
    "near_white_share",
    *(f"luma_p{p:g}" for p in _GLOBAL_P),
    "content_dark_chroma",
    "content_bright_chroma",
    "skin_share",
    "skin_light_share",
    "skin_luma_p50",
)


def _percentiles(hist: np.ndarray, ps: tuple[float, ...]) -> list[float]:
    """Percentiles (0..1 of the 0..255 scale) from a 256-bin histogram."""
    cum = hist.cumsum()
    total = cum[-1]
    return [float(np.searchsorted(cum, total * p / 100.0)) / 255.0 for p in ps]


def _enclosed_white(near_white: np.ndarray) -> float:
    """Share of the image in near-white regions that do not touch the image border: blown
    highlights inside the product rather than the background around it."""
    import cv2

    n, _, stats, _ = cv2.connectedComponentsWithStats(near_white.astype(np.uint8), connectivity=4)
    if n <= 1:
        return 0.0
    h, w = near_white.shape
    x, y, bw, bh, area = (stats[1:, i] for i in range(5))
    inside = (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h)
    return float(area[inside].sum()) / near_white.size


def _colour_cues(rgb: np.ndarray, g: np.ndarray, spread: np.ndarray) -> list[float]:
    """Colour of the extremes: lifted blacks keep their hue (a navy garment at +3 EV is a saturated
    mid-blue, a real shadow is near-neutral), blown highlights lose it; over-exposed skin turns pale.
    ``rgb``, ``g`` and ``spread`` (channel max - min) are the content pixels."""
    from catalens.classify.colour.features import skin_mask

    dark = g <= np.percentile(g, 5)
    bright = g >= 200
    skin = skin_mask(rgb)
    ns = int(skin.sum())
    return [
        float(spread[dark].mean()) / 255.0,
        float(spread[bright].mean()) / 255.0 if bright.any() else 0.0,
        ns / g.size,
        float((g[skin] >= 200).mean()) if ns else 0.0,
        float(np.median(g[skin])) / 255.0 if ns else 1.0,
    ]


def _clipped_channels(rgb: np.ndarray) -> np.ndarray:
    """Per pixel, how many of R, G, B are clipped (>= 253): uint8 0..3."""
    import cv2

    r, g, b = (cv2.threshold(c, 252, 1, cv2.THRESH_BINARY)[1] for c in cv2.split(rgb))
    return cv2.add(cv2.add(r, g), b)


def exposure_features(img: QCImage) -> np.ndarray:
    """The feature vector (float32, ``len(FEATURE_NAMES)``) of a decoded :class:`QCImage`.

    The whole-photo luma histogram is read on the working copy; every per-pixel statistic of the
    content on every other pixel in each direction (a quarter of the pixels: the same statistics,
    4x cheaper)."""

    def compute() -> np.ndarray:
        full = img.gray
        ghist = np.bincount(full.ravel(), minlength=256).astype(np.float64)
        n_full = full.size
        f: list[float] = list(ghist.reshape(32, 8).sum(1) / n_full)
        g = np.ascontiguousarray(full[::2, ::2])
        n = g.size
        rgb = np.ascontiguousarray(img.rgb[::2, ::2])
        lo, hi = (np.ascontiguousarray(a[::2, ::2]) for a in img.channel_range)
        near_white = img.near_white[::2, ::2]
        content = ~near_white
        clipped = _clipped_channels(rgb)
        counts = np.bincount(clipped.ravel(), minlength=4) / n
        f += [float(counts[1]), float(counts[2]), float(counts[3])]
        idx = np.flatnonzero(content)
        cs = int(idx.size)
        f.append(cs / n)
        cum = ghist.cumsum()
        f += [float(cum[t - 1]) / n_full for t in _DARK]
        colour = [0.0, 0.0, 0.0, 0.0, 1.0]
        if cs > 50:
            gc = g.ravel()[idx]
            chist = np.bincount(gc, minlength=256).astype(np.float64)
            f += list(chist.reshape(16, 16).sum(1) / cs)
            f += _percentiles(chist, _CONTENT_P)
            hic = hi.ravel()[idx]
            spread = hic - lo.ravel()[idx]  # uint8, hi >= lo
            sat = spread.astype(np.float32) / np.maximum(hic, 1).astype(np.float32)
            f += [float(sat.mean()), float(np.percentile(sat, 90))]
            kc = clipped.ravel()[idx]
            f.append(float(np.count_nonzero((kc == 1) | (kc == 2))) / cs)
            gr = np.ascontiguousarray(img.grad[::2, ::2]).ravel()[idx]
            f += [float(np.log1p(gr.mean())), float(np.log1p(np.percentile(gr, 90)))]
            bright = gc >= 200
            nb = int(np.count_nonzero(bright))
            f += [nb / cs, float(np.count_nonzero(gr[bright] < 8)) / nb if nb else 0.0]
            colour = _colour_cues(rgb.reshape(-1, 3)[idx], gc, spread)
        else:  # (almost) nothing but near-white
            f += [0.0] * 16 + [1.0] * len(_CONTENT_P) + [0.0] * 5 + [1.0, 1.0]
        f += [_enclosed_white(near_white), float(near_white.mean())]
        f += _percentiles(ghist, _GLOBAL_P)
        f += colour
        return np.asarray(f, np.float32)

    return img.memo(FEATURE_VERSION, compute)  # type: ignore[no-any-return]
