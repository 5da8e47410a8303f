"""Copy-verification descriptors: tell a re-encoded/cropped/bordered copy from a similar product.

Per image (computed once, 2,352 bytes, stored in ``search_dedup_features``):

1. *Trim*: strip near-uniform margins of any colour from each side (an added border, and the
   white studio background around the product), at most 45% per side. Copies that were
   resized, re-compressed, bordered or cropped only into background end up framed alike.
2. ``gray``: the trimmed image as a 40x40 grayscale thumbnail (uint8) - structure.
3. ``colour``: the trimmed image as a 4x4 grid of mean CIELAB values (uint8) - colour layout.

Pair verification (:func:`compare`):

* ``structure``: the best normalised cross-correlation between one thumbnail and windows of
  the other (scales 1, 0.9, 0.8, 0.7 at 5x5 offsets, both directions) - robust to crops of
  10% of a side and to overlays that shift the trimmed frame, low for another shot (other pose, framing, garment).
* ``colour``: the mean absolute Lab difference over the 4x4 grid, ignoring the worst quarter of
  cells (an overlay, a crop edge); 0 = same colours. A copy stays within a few units, the same
  model in another colour does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

FEATURE_VERSION = 1
THUMB = 40
GRID = 4
_WIN = 24
_SCALES = (1.0, 0.9, 0.8, 0.7)
_OFFSETS = (0.0, 0.25, 0.5, 0.75, 1.0)
FEATURE_BYTES = THUMB * THUMB + GRID * GRID * 3


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
    colour = cv2.resize(_lab(crop), (GRID, GRID), interpolation=cv2.INTER_AREA)
    return gray.astype(np.uint8).tobytes() + colour.astype(np.uint8).tobytes()


@dataclass
class Descriptors:
    """Many descriptors decoded for fast pairwise checks: ``windows[i]`` (n_win, _WIN**2) z-scored."""

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
        offs = sorted({int(round(f * (THUMB - size))) for f in _OFFSETS})
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
    # per grid cell Lab difference; the worst quarter of cells is ignored (an overlay or a crop
    # edge changes a few cells, a recoloured product changes them all)
    cells = np.abs(d.colour[a] - d.colour[b]).reshape(len(a), GRID * GRID, 3).mean(axis=2)
    keep = GRID * GRID - GRID * GRID // 4
    colour = np.sort(cells, axis=1)[:, :keep].mean(axis=1)
    return structure.astype(np.float32), colour.astype(np.float32)
