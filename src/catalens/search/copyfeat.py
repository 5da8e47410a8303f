"""Copy-verification descriptors: tell a re-encoded/cropped/bordered copy from a similar product.

Per image (computed once, 2,368 bytes, stored in ``search_dedup_features``):

1. *Trim*: strip near-uniform margins of any colour from each side (an added border, and the
   white studio background around the product), at most 45% per side. Copies that were
   resized, re-compressed, bordered or cropped only into background end up framed alike.
2. ``gray``: the trimmed image as a 40x40 grayscale thumbnail (uint8) - structure.
3. ``colour``: the trimmed image as a 16x16 CIELAB thumbnail (uint8) - colour layout.

Pair verification (:func:`compare`):

* ``structure``: the best normalised cross-correlation between one thumbnail and windows of
  the other (scales 1, 0.9, 0.8, 0.7 at 5x5 offsets, both directions) - robust to crops of
  10% of a side and to overlays that shift the trimmed frame, low for another shot (other pose, framing, garment).
* ``colour``: at the best structural alignment, the 90th percentile over an 8x8 grid of the
  largest CIELAB channel difference; a copy stays low, the same model in another colour does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

FEATURE_VERSION = 2
THUMB = 40
CTHUMB = 16  # colour thumbnail side (Lab)
GRID = 8  # colour cells compared after alignment
_WIN = 24
_SCALES = (1.0, 0.9, 0.8, 0.7)
_OFFSETS = (0.0, 0.25, 0.5, 0.75, 1.0)
FEATURE_BYTES = THUMB * THUMB + CTHUMB * CTHUMB * 3


def trim_box(arr: np.ndarray, tol: float = 20.0, max_frac: float = 0.45) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) after stripping near-uniform margins from each side.

    Sides are peeled repeatedly (an added border, then the background inside it) on a lightly
    blurred copy, so JPEG ringing next to the product does not stop the trim.
    """
    import cv2

    h, w = arr.shape[:2]
    a = cv2.GaussianBlur(arr, (3, 3), 0).astype(np.int16)

    def dev(line: np.ndarray, ref: np.ndarray) -> float:
        return float(np.percentile(np.abs(line - ref).max(axis=-1), 90))

    top, bottom, left, right = 0, h, 0, w
    lim_t, lim_b, lim_l, lim_r = (
        int(h * max_frac),
        h - int(h * max_frac),
        int(w * max_frac),
        w - int(w * max_frac),
    )
    for _ in range(3):  # frames of different colours: an added border, then the background
        frame = np.concatenate(
            [a[top, left:right], a[bottom - 1, left:right], a[top:bottom, left], a[top:bottom, right - 1]]
        )
        ref = np.median(frame, axis=0)
        if dev(frame, ref) > tol:
            break  # the current frame is not a uniform margin all around
        before = (top, bottom, left, right)
        while top < lim_t and dev(a[top, left:right], ref) <= tol:
            top += 1
        while bottom > lim_b and dev(a[bottom - 1, left:right], ref) <= tol:
            bottom -= 1
        while left < lim_l and dev(a[top:bottom, left], ref) <= tol:
            left += 1
        while right > lim_r and dev(a[top:bottom, right - 1], ref) <= tol:
            right -= 1
        if (top, bottom, left, right) == before:
            break
        # step over the blurred transition line between two margin colours
        top, bottom = top + (top != before[0]), bottom - (bottom != before[1])
        left, right = left + (left != before[2]), right - (right != before[3])
    if bottom - top < 8 or right - left < 8:
        return 0, h, 0, w
    return top, bottom, left, right


def _lab(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb.astype(np.uint8), cv2.COLOR_RGB2LAB)


def describe(img: Image.Image) -> bytes:
    """The descriptor of a decoded RGB image (see module docstring)."""
    import cv2

    small = img.convert("RGB")
    if max(small.size) > 320:
        small = small.copy()
        small.thumbnail((320, 320), Image.Resampling.BILINEAR)
    arr = np.asarray(small)
    top, bottom, left, right = trim_box(arr)
    crop = np.ascontiguousarray(arr[top:bottom, left:right])
    gray = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    colour = cv2.resize(_lab(crop), (CTHUMB, CTHUMB), interpolation=cv2.INTER_AREA)
    return gray.astype(np.uint8).tobytes() + colour.astype(np.uint8).tobytes()


@dataclass
class Descriptors:
    """Many descriptors decoded for fast pairwise checks (windows z-scored, colour per window)."""

    full: np.ndarray  # (n, _WIN*_WIN) z-scored full gray thumbnails
    windows: np.ndarray  # (n, n_win, _WIN*_WIN) z-scored gray windows
    colour_full: np.ndarray  # (n, GRID*GRID, 3) Lab of the whole trimmed image
    colour_windows: np.ndarray  # (n, n_win, GRID*GRID, 3) Lab of the same windows


def _zscore(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    x = x - x.mean(axis=-1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


def _window_boxes(side: int) -> list[tuple[int, int, int]]:
    """(y, x, size) of every window, as fractions applied to a thumbnail of ``side`` pixels."""
    out = []
    for s in _SCALES:
        size = int(round(side * s))
        offs = [0] if s == 1.0 else [int(round(f * (side - size))) for f in _OFFSETS]
        out.extend((y, x, size) for y in offs for x in offs)
    return out


@lru_cache(maxsize=64)
def _area_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) box-filter weights: output pixel i averages input span [i*src/dst, (i+1)*src/dst)."""
    m = np.zeros((dst, src), dtype=np.float32)
    step = src / dst
    for i in range(dst):
        lo, hi = i * step, (i + 1) * step
        for j in range(int(np.floor(lo)), min(src, int(np.ceil(hi)))):
            m[i, j] = max(0.0, min(hi, j + 1) - max(lo, j)) / step
    return m


def _windows_batch(imgs: np.ndarray, out_side: int) -> np.ndarray:
    """Every window of ``imgs`` (n, side, side, c) area-resized to ``out_side``: (n, n_win, out_side**2, c).

    Each window position is one pair of batched matrix products (box-filter weights).
    """
    n, side, _, c = imgs.shape
    boxes = _window_boxes(side)
    x = np.ascontiguousarray(imgs.astype(np.float32).transpose(0, 3, 1, 2))  # (n, c, side, side)
    out = np.empty((n, len(boxes), out_side * out_side, c), dtype=np.float32)
    for wi, (y, x0, size) in enumerate(boxes):
        r = _area_matrix(size, out_side)
        win = x[:, :, y : y + size, x0 : x0 + size]  # (n, c, size, size)
        res = np.matmul(np.matmul(r, win), r.T)  # (n, c, out, out), batched small GEMMs
        out[:, wi] = res.reshape(n, c, out_side * out_side).transpose(0, 2, 1)
    return out


def decode(blobs: Sequence[bytes]) -> Descriptors:
    n = len(blobs)
    if n == 0:
        z = np.zeros((0, 1), dtype=np.float32)
        return Descriptors(z, z[:, None], z[:, None], z[:, None, None])
    grays = np.stack(
        [np.frombuffer(b[: THUMB * THUMB], dtype=np.uint8).reshape(THUMB, THUMB, 1) for b in blobs]
    )
    labs = np.stack(
        [np.frombuffer(b[THUMB * THUMB :], dtype=np.uint8).reshape(CTHUMB, CTHUMB, 3) for b in blobs]
    )
    gw = _windows_batch(grays, _WIN)[..., 0]  # window 0 is the whole thumbnail
    cw = _windows_batch(labs, GRID)
    return Descriptors(_zscore(gw[:, 0]), _zscore(gw), cw[:, 0], cw)


def compare(d: Descriptors, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(structure, colour) scores of pairs ``(a[i], b[i])`` of rows of ``d``.

    ``colour`` is measured at the best structural alignment: the 90th percentile over 8x8 cells
    of the largest Lab channel difference (an overlay covering a few cells does not count; a
    product in another colour changes every cell it covers).
    """
    if len(a) == 0:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32)
    s_ab = np.einsum("pwd,pd->pw", d.windows[a], d.full[b])
    s_ba = np.einsum("pwd,pd->pw", d.windows[b], d.full[a])
    w_ab, w_ba = s_ab.argmax(axis=1), s_ba.argmax(axis=1)
    best_ab, best_ba = s_ab.max(axis=1), s_ba.max(axis=1)
    use_ab = best_ab >= best_ba
    rows = np.arange(len(a))
    ca = np.where(use_ab[:, None, None], d.colour_windows[a, w_ab], d.colour_full[a])
    cb = np.where(use_ab[:, None, None], d.colour_full[b], d.colour_windows[b, w_ba])
    del rows
    cells = np.abs(ca - cb).max(axis=2)
    colour = np.percentile(cells, 90, axis=1)
    return np.maximum(best_ab, best_ba).astype(np.float32), colour.astype(np.float32)
