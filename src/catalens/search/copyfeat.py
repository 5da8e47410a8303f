"""Copy-verification descriptors: tell a re-encoded/cropped/bordered copy from a similar product.

Per image (computed once, 2,352 bytes, stored in ``search_dedup_features``):

1. *Trim*: strip near-uniform margins of any colour from each side (an added border, and the
   white studio background around the product), at most 45% per side. Copies that were
   resized, re-compressed, bordered or cropped only into background end up framed alike.
2. ``gray``: the trimmed image as a 40x40 grayscale thumbnail (uint8) - structure.
3. ``colour``: the trimmed image as a 4x4 grid of mean CIELAB values (uint8) - colour layout.

Pair verification (:func:`compare`):

* ``structure``: the best normalised cross-correlation between one thumbnail and windows of
  the other (scales 1, 0.9, 0.8 at 9 offsets, both directions) - robust to crops up to about
  10% of a side and to small overlays, low for another shot (other pose, framing, garment).
* ``colour``: the mean absolute Lab difference over the 4x4 grid (0 = same colours); a copy
  stays within a few units, the same model in another colour does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

FEATURE_VERSION = 1
THUMB = 40
GRID = 4
_WIN = 32
_SCALES = (1.0, 0.9, 0.8)
FEATURE_BYTES = THUMB * THUMB + GRID * GRID * 3


def trim_box(arr: np.ndarray, tol: float = 14.0, max_frac: float = 0.45) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) after stripping near-uniform margins from each side."""
    h, w = arr.shape[:2]
    a = arr.astype(np.int16)

    def uniform(line: np.ndarray, ref: np.ndarray) -> bool:
        return bool(np.percentile(np.abs(line - ref).max(axis=-1), 98) <= tol)

    top, bottom, left, right = 0, h, 0, w
    ref = a[0, 0]
    while top < int(h * max_frac) and uniform(a[top, left:right], a[top, left]):
        top += 1
    while bottom - 1 > h - int(h * max_frac) and uniform(a[bottom - 1, left:right], a[bottom - 1, left]):
        bottom -= 1
    while left < int(w * max_frac) and uniform(a[top:bottom, left], a[top, left]):
        left += 1
    while right - 1 > w - int(w * max_frac) and uniform(a[top:bottom, right - 1], a[top, right - 1]):
        right -= 1
    del ref
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
    colour = cv2.resize(_lab(crop), (GRID, GRID), interpolation=cv2.INTER_AREA)
    return gray.astype(np.uint8).tobytes() + colour.astype(np.uint8).tobytes()


@dataclass
class Descriptors:
    """Many descriptors decoded for fast pairwise checks: ``windows[i]`` (n_win, 1024) z-scored."""

    full: np.ndarray  # (n, _WIN*_WIN) z-scored full thumbnails
    windows: np.ndarray  # (n, n_win, _WIN*_WIN) z-scored windows
    colour: np.ndarray  # (n, GRID*GRID*3) float32 Lab


def _zscore(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    x = x - x.mean(axis=-1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


def _windows(gray: np.ndarray) -> np.ndarray:
    import cv2

    out = []
    for s in _SCALES:
        size = int(round(THUMB * s))
        offs = sorted({0, (THUMB - size) // 2, THUMB - size})
        for y in offs:
            for x in offs:
                w = gray[y : y + size, x : x + size]
                out.append(cv2.resize(w, (_WIN, _WIN), interpolation=cv2.INTER_AREA).reshape(-1))
    return np.stack(out)


def decode(blobs: Sequence[bytes]) -> Descriptors:
    import cv2

    n = len(blobs)
    grays = [np.frombuffer(b[: THUMB * THUMB], dtype=np.uint8).reshape(THUMB, THUMB) for b in blobs]
    colour = np.array(
        [np.frombuffer(b[THUMB * THUMB :], dtype=np.uint8) for b in blobs], dtype=np.float32
    ).reshape(n, -1)
    full = (
        np.stack([cv2.resize(g, (_WIN, _WIN), interpolation=cv2.INTER_AREA).reshape(-1) for g in grays])
        if n
        else np.zeros((0, _WIN * _WIN))
    )
    wins = np.stack([_windows(g) for g in grays]) if n else np.zeros((0, 1, _WIN * _WIN))
    return Descriptors(_zscore(full), _zscore(wins), colour)


def compare(d: Descriptors, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(structure, colour) scores of pairs ``(a[i], b[i])`` of rows of ``d``."""
    if len(a) == 0:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32)
    s_ab = np.einsum("pwd,pd->pw", d.windows[a], d.full[b]).max(axis=1)
    s_ba = np.einsum("pwd,pd->pw", d.windows[b], d.full[a]).max(axis=1)
    structure = np.maximum(s_ab, s_ba)
    colour = np.abs(d.colour[a] - d.colour[b]).mean(axis=1)
    return structure.astype(np.float32), colour.astype(np.float32)
