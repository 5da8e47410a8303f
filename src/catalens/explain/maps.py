"""Heatmap geometry: feature-grid map -> network-input map -> source-image map, and regions.

The network sees a resized, centre-cropped copy of the image (the model's preprocessing, see
:class:`~catalens.models.preprocess.Preprocessor`). ``crop_box`` is the part of the source image
that copy covers, in source pixels. Maps live at the network input resolution; they are pasted
into the crop box to get a source-resolution map (zero outside the crop), and region boxes are
reported in source pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

Box = tuple[float, float, float, float]


def upsample(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to ``(height, width)`` (half-pixel centres, like cv2/Pillow)."""
    arr = np.asarray(grid, dtype=np.float32)
    if arr.shape == tuple(size):
        return arr.copy()
    t = torch.from_numpy(np.ascontiguousarray(arr))[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def smooth(arr: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of a 2-D map, ``sigma`` in pixels (``scipy.ndimage.gaussian_filter``,
    reflected edges); ``sigma <= 0`` returns a copy. Applied to an upsampled CAM it rounds off the
    bilinear interpolation's ridges between feature cells."""
    a = np.asarray(arr, dtype=np.float32)
    if sigma <= 0:
        return a.copy()
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(a, sigma).astype(np.float32, copy=False)


def normalise(arr: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1] (all zeros when the map is flat)."""
    a = np.asarray(arr, dtype=np.float32)
    lo, hi = float(np.min(a)), float(np.max(a))
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo < 1e-12:
        return np.zeros_like(a)
    return (a - lo) / (hi - lo)


def to_source(input_map: np.ndarray, crop_box: Box, source_size: tuple[int, int]) -> np.ndarray:
    """Paste an input-resolution map into the crop box of a ``(width, height)`` source image."""
    width, height = source_size
    x0, y0, x1, y1 = crop_box
    out = np.zeros((height, width), dtype=np.float32)
    ix0, iy0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    ix1, iy1 = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
    if ix1 <= ix0 or iy1 <= iy0:
        return out
    # sample the input map at the centres of the covered source pixels (bilinear)
    h_in, w_in = input_map.shape
    xs = ((np.arange(ix0, ix1) + 0.5 - x0) / max(x1 - x0, 1e-9)) * 2 - 1
    ys = ((np.arange(iy0, iy1) + 0.5 - y0) / max(y1 - y0, 1e-9)) * 2 - 1
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    grid = torch.from_numpy(np.stack([gx, gy], axis=-1).astype(np.float32))[None]
    src = torch.from_numpy(np.ascontiguousarray(input_map, dtype=np.float32))[None, None]
    sampled = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out[iy0:iy1, ix0:ix1] = sampled[0, 0].numpy()
    return out


def input_box_to_source(box: Box, input_size: tuple[int, int], crop_box: Box) -> Box:
    """A box in network-input pixels (``input_size`` = (height, width)) -> source pixels."""
    h_in, w_in = input_size
    x0, y0, x1, y1 = crop_box
    sx, sy = (x1 - x0) / w_in, (y1 - y0) / h_in
    return (x0 + box[0] * sx, y0 + box[1] * sy, x0 + box[2] * sx, y0 + box[3] * sy)


@dataclass
class Region:
    """A connected area where the map is strong. ``box`` is ``[x0, y0, x1, y1]`` in source pixels;
    ``peak`` and ``mean`` are map values (0..1), ``share`` the fraction of the whole map's mass."""

    box: list[float]
    peak: float
    mean: float
    share: float

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["box"] = [round(v, 1) for v in self.box]
        for k in ("peak", "mean", "share"):
            d[k] = round(float(d[k]), 4)
        return d


def regions(
    input_map: np.ndarray,
    crop_box: Box,
    *,
    threshold: float = 0.5,
    top_k: int = 5,
    min_share: float = 0.01,
) -> list[Region]:
    """The strongest regions of a [0, 1] map: cells >= ``threshold`` grouped into 8-connected
    components (``scipy.ndimage.label``), each as a source-pixel box; at most ``top_k``,
    strongest mass first, components under ``min_share`` of the total mass dropped."""
    from scipy import ndimage

    m = np.asarray(input_map, dtype=np.float32)
    total = float(m.sum())
    if total <= 0:
        return []
    mask = m >= threshold
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return []
    index = np.arange(1, count + 1)
    mass = ndimage.sum(m, labels, index)
    peak = ndimage.maximum(m, labels, index)
    mean = ndimage.mean(m, labels, index)
    slices = ndimage.find_objects(labels)
    found: list[Region] = []
    for i in np.argsort(-np.asarray(mass)):
        share = float(mass[i]) / total
        if share < min_share:
            continue
        sl = slices[i]
        if sl is None:
            continue
        box_in = (float(sl[1].start), float(sl[0].start), float(sl[1].stop), float(sl[0].stop))
        box = input_box_to_source(box_in, m.shape, crop_box)
        found.append(Region(list(box), float(peak[i]), float(mean[i]), share))
        if len(found) >= top_k:
            break
    return found
