"""Copy-verification descriptors: tell a re-encoded/cropped/bordered copy from a similar product.

Per image (computed once, 2,368 bytes, stored in ``search_dedup_features``):

1. *Trim*: strip near-uniform margins of any colour from each side (an added border, and the
   white studio background around the product), at most 45% per side. Copies that were
   resized, re-compressed, bordered or cropped only into background end up framed alike.
2. ``gray``: the trimmed image as a 40x40 grayscale thumbnail (uint8) - structure.
3. ``colour``: the trimmed image as a 16x16 CIELAB thumbnail (uint8) - colour layout.

Pair verification has two stages:

* :func:`coarse` (vectorised over many pairs, a few microseconds each): the best normalised
  cross-correlation between 8x8 versions of 31 windows of one thumbnail (scales 1, 0.9 and
  0.8, isotropic at 9 positions and one-sided in x or in y) and the other whole thumbnail, both
  directions; and the median CIELAB distance of 4x4 cells at that window. It is the cheap gate.
* :func:`align` (one pair at a time, about a millisecond): an affine ECC alignment
  (``cv2.findTransformECC``) of the 40x40 thumbnails, started from the coarse window and, when
  that lands in [0.8, 0.95), restarted in the other direction from the identity and a centred
  0.9 window. A crop changes both the scale (on each
  axis separately) and the offset; ECC recovers both. ``structure`` is the ECC correlation at
  the alignment (a copy scores about 0.99, another shot of the same item or a look-alike
  product rarely above 0.9); warps with shear or extreme scale are refused. ``colour`` is the
  75th percentile over the 16x16 cells of the CIELAB distance (lightly blurred) between the
  aligned colour thumbnails: a copy stays low, the same model in another colour does not;
  ``colour_p90`` (90th percentile) catches a recolour of a part of the photo (the garment of a
  model shot, a third of the frame) that the 75th percentile can miss, while a small logo or
  text overlay (a few percent of the cells) stays below it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

FEATURE_VERSION = 4
THUMB = 40
CTHUMB = 16  # colour thumbnail side (Lab)
COARSE = 8  # coarse gray window side
COARSE_C = 4  # coarse colour window side
FEATURE_BYTES = THUMB * THUMB + CTHUMB * CTHUMB * 3
_ECC_CRITERIA = (3, 50, 1e-4)  # cv2.TERM_CRITERIA_EPS | COUNT, iterations, eps


def _windows() -> list[tuple[float, float, float, float]]:
    """(y0, y1, x0, x1) fractions of the coarse windows; window 0 is the whole thumbnail."""
    out = [(0.0, 1.0, 0.0, 1.0)]
    for s in (0.9, 0.8):
        for oy in (0.0, 0.5, 1.0):
            for ox in (0.0, 0.5, 1.0):
                y0, x0 = oy * (1 - s), ox * (1 - s)
                out.append((y0, y0 + s, x0, x0 + s))
    for s in (0.9, 0.8):
        for o in (0.0, 0.5, 1.0):
            out.append((o * (1 - s), o * (1 - s) + s, 0.0, 1.0))
            out.append((0.0, 1.0, o * (1 - s), o * (1 - s) + s))
    return out


WINDOWS = _windows()


def trim_box(arr: np.ndarray, tol: float = 20.0, max_frac: float = 0.45) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) after stripping near-uniform margins from each side.

    A line belongs to the margin when at most 10% of its pixels differ from the margin colour
    by more than ``tol`` (largest channel difference). Sides are peeled repeatedly (an added
    border, then the background inside it) on a lightly blurred copy, so JPEG ringing next to
    the product does not stop the trim. Each line test is O(1) with prefix sums.
    """
    import cv2

    h, w = arr.shape[:2]
    a = cv2.GaussianBlur(np.ascontiguousarray(arr, dtype=np.uint8), (3, 3), 0)
    top, bottom, left, right = 0, h, 0, w
    lim_t, lim_b = int(h * max_frac), h - int(h * max_frac)
    lim_l, lim_r = int(w * max_frac), w - int(w * max_frac)
    for _ in range(3):  # frames of different colours: an added border, then the background
        frame = np.concatenate(
            [a[top, left:right], a[bottom - 1, left:right], a[top:bottom, left], a[top:bottom, right - 1]]
        )
        ref = np.median(frame, axis=0)
        diff = cv2.absdiff(a, tuple(float(v) for v in np.round(ref)) + (0.0,))
        bad = np.maximum(np.maximum(diff[..., 0], diff[..., 1]), diff[..., 2]) > tol
        # the current frame must itself be a uniform margin all around
        fb = np.concatenate(
            [
                bad[top, left:right],
                bad[bottom - 1, left:right],
                bad[top:bottom, left],
                bad[top:bottom, right - 1],
            ]
        )
        if fb.sum() > 0.1 * len(fb):
            break
        rows = np.zeros((h, w + 1), dtype=np.int32)
        np.cumsum(bad, axis=1, dtype=np.int32, out=rows[:, 1:])
        cols = np.zeros((h + 1, w), dtype=np.int32)
        np.cumsum(bad, axis=0, dtype=np.int32, out=cols[1:])

        def row_ok(y: int, l0: int, r0: int, rows: np.ndarray = rows) -> bool:
            return rows[y, r0] - rows[y, l0] <= 0.1 * (r0 - l0)

        def col_ok(x: int, t0: int, b0: int, cols: np.ndarray = cols) -> bool:
            return cols[b0, x] - cols[t0, x] <= 0.1 * (b0 - t0)

        before = (top, bottom, left, right)
        while top < lim_t and row_ok(top, left, right):
            top += 1
        while bottom > lim_b and row_ok(bottom - 1, left, right):
            bottom -= 1
        while left < lim_l and col_ok(left, top, bottom):
            left += 1
        while right > lim_r and col_ok(right - 1, top, bottom):
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
    mid = cv2.resize(crop, (4 * CTHUMB, 4 * CTHUMB), interpolation=cv2.INTER_AREA)  # Lab of a 64x64 copy
    colour = cv2.resize(_lab(mid), (CTHUMB, CTHUMB), interpolation=cv2.INTER_AREA)
    return gray.astype(np.uint8).tobytes() + colour.astype(np.uint8).tobytes()


# ---- decoded descriptors ------------------------------------------------------------------------
@dataclass
class Thumbs:
    """Descriptors decoded for pair checks."""

    gray: np.ndarray  # (n, THUMB, THUMB) uint8
    lab: np.ndarray  # (n, CTHUMB, CTHUMB, 3) uint8

    def __len__(self) -> int:
        return len(self.gray)


def parse(blobs: Sequence[bytes]) -> Thumbs:
    """Decode stored descriptors (one blob per row)."""
    n = len(blobs)
    if n == 0:
        return Thumbs(np.zeros((0, THUMB, THUMB), np.uint8), np.zeros((0, CTHUMB, CTHUMB, 3), np.uint8))
    buf = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(n, FEATURE_BYTES)
    gray = buf[:, : THUMB * THUMB].reshape(n, THUMB, THUMB)
    lab = buf[:, THUMB * THUMB :].reshape(n, CTHUMB, CTHUMB, 3)
    return Thumbs(gray, lab)


@lru_cache(maxsize=256)
def _area_matrix(src: int, lo: float, hi: float, dst: int) -> np.ndarray:
    """(dst, src) box-filter weights resampling the span [lo, hi) (pixels) of a line to ``dst`` cells."""
    m = np.zeros((dst, src), dtype=np.float32)
    step = (hi - lo) / dst
    for i in range(dst):
        a, b = lo + i * step, lo + (i + 1) * step
        for j in range(int(np.floor(a)), min(src, int(np.ceil(b)))):
            m[i, j] = max(0.0, min(b, j + 1) - max(a, j)) / step
    return m


def _window_stack(imgs: np.ndarray, out: int) -> np.ndarray:
    """All :data:`WINDOWS` of ``imgs`` (n, s, s, c) area-resampled to ``out``: (n, n_win, out*out, c)."""
    n, side, _, c = imgs.shape
    x = imgs.astype(np.float32).transpose(0, 3, 1, 2)  # (n, c, s, s)
    res = np.empty((n, len(WINDOWS), out * out, c), dtype=np.float32)
    for wi, (y0, y1, x0, x1) in enumerate(WINDOWS):
        ry = _area_matrix(side, y0 * side, y1 * side, out)
        rx = _area_matrix(side, x0 * side, x1 * side, out)
        r = np.matmul(np.matmul(ry, x), rx.T)  # (n, c, out, out)
        res[:, wi] = r.reshape(n, c, out * out).transpose(0, 2, 1)
    return res


def _zscore(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


@dataclass
class Coarse:
    """Per-pair results of :func:`coarse`."""

    structure: np.ndarray  # best window correlation (8x8)
    colour: np.ndarray  # median Lab distance of 4x4 cells at that window
    window: np.ndarray  # index into WINDOWS
    a_in_b: np.ndarray  # True: the window is of a (a shows more than b); False: of b


def coarse(t: Thumbs, a: np.ndarray, b: np.ndarray, chunk: int = 8000) -> Coarse:
    """Cheap vectorised check of pairs ``(a[i], b[i])`` (rows of ``t``); see the module docstring."""
    n = len(a)
    st = np.zeros(n, np.float32)
    col = np.zeros(n, np.float32)
    win = np.zeros(n, np.int64)
    a_in_b = np.zeros(n, bool)
    for s in range(0, n, chunk):
        pa, pb = a[s : s + chunk], b[s : s + chunk]
        rows, inv = np.unique(np.concatenate([pa, pb]), return_inverse=True)
        ia, ib = inv[: len(pa)], inv[len(pa) :]
        g = _zscore(_window_stack(t.gray[rows][..., None], COARSE)[..., 0])  # (m, W, 64)
        lab = _window_stack(t.lab[rows], COARSE_C)  # (m, W, 16, 3)
        s_ab = np.einsum("pwd,pd->pw", g[ia], g[ib, 0])  # windows of a vs whole b
        s_ba = np.einsum("pwd,pd->pw", g[ib], g[ia, 0])
        w_ab, w_ba = s_ab.argmax(axis=1), s_ba.argmax(axis=1)
        m_ab, m_ba = s_ab.max(axis=1), s_ba.max(axis=1)
        use_ab = m_ab >= m_ba
        ca = np.where(use_ab[:, None, None], lab[ia, w_ab], lab[ia, 0])
        cb = np.where(use_ab[:, None, None], lab[ib, 0], lab[ib, w_ba])
        st[s : s + chunk] = np.maximum(m_ab, m_ba)
        col[s : s + chunk] = np.median(np.linalg.norm(ca - cb, axis=2), axis=1)
        win[s : s + chunk] = np.where(use_ab, w_ab, w_ba)
        a_in_b[s : s + chunk] = use_ab
    return Coarse(st, col, win, a_in_b)


def _sane(w: np.ndarray) -> bool:
    """A crop/border/resize warp: no shear or rotation, scale per axis in [0.4, 2.5]."""
    sx, sy = float(w[0, 0]), float(w[1, 1])
    return 0.4 <= sx <= 2.5 and 0.4 <= sy <= 2.5 and abs(float(w[0, 1])) + abs(float(w[1, 0])) <= 0.15


def _ecc(template: np.ndarray, moving: np.ndarray, init: np.ndarray) -> tuple[float, np.ndarray]:
    import cv2

    try:
        cc, w = cv2.findTransformECC(template, moving, init.copy(), cv2.MOTION_AFFINE, _ECC_CRITERIA, None, 1)
    except cv2.error:  # no convergence / degenerate images
        return -1.0, init
    if not np.isfinite(cc) or not _sane(w):
        return -1.0, init
    return float(cc), w


def _aligned_colour(lab_moving: np.ndarray, lab_template: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """75th and 90th percentiles of the blurred Lab distance after warping ``lab_moving`` onto the template."""
    import cv2

    f = CTHUMB / THUMB
    lin = w[:, :2].astype(np.float32)
    # the same warp on the colour grid (pixel centres: x16 = (x40 + 0.5) f - 0.5)
    shift = f * w[:, 2] + lin @ np.full(2, 0.5 * (1 - f), np.float32) + (0.5 * f - 0.5)
    wc = np.concatenate([lin, shift[:, None].astype(np.float32)], axis=1)
    warped = cv2.warpAffine(
        lab_moving,
        wc,
        (CTHUMB, CTHUMB),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    da = cv2.GaussianBlur(warped, (3, 3), 0) - cv2.GaussianBlur(lab_template, (3, 3), 0)
    dist = np.sort(np.sqrt(np.einsum("ijk,ijk->ij", da, da)).ravel())
    n = len(dist) - 1
    return float(np.interp(0.75 * n, np.arange(n + 1), dist)), float(
        np.interp(0.9 * n, np.arange(n + 1), dist)
    )


def align(
    t: Thumbs, i: int, j: int, window: int, i_in_j: bool, good: float = 0.95, retry_from: float = 0.8
) -> tuple[float, float, float]:
    """(structure, colour, colour_p90) of one pair after ECC alignment (see the module docstring).

    ``window``/``i_in_j`` come from :func:`coarse`: the window of image ``i`` (when ``i_in_j``)
    or of ``j`` that best matched the other whole thumbnail - the starting alignment. Restarts
    happen while the correlation is in [``retry_from``, ``good``).
    """
    y0, y1, x0, x1 = WINDOWS[int(window)]
    init = np.array([[x1 - x0, 0, x0 * THUMB], [0, y1 - y0, y0 * THUMB]], np.float32)
    mov, tpl = (i, j) if i_in_j else (j, i)
    gray = {i: t.gray[i].astype(np.float32), j: t.gray[j].astype(np.float32)}
    cc, w = _ecc(gray[tpl], gray[mov], init)
    # ECC is local: when the coarse start falls short, restart from the identity and from a
    # centred 0.9 window, in the other direction (the one the coarse check did not pick)
    first_mov, first_tpl = mov, tpl
    for scale in (1.0, 0.9):
        if cc >= good or cc < retry_from:  # settled, or too far from a copy to be worth a restart
            break
        off = (1 - scale) * THUMB / 2
        start = np.array([[scale, 0, off], [0, scale, off]], np.float32)
        cc2, w2 = _ecc(gray[first_mov], gray[first_tpl], start)  # template and moving swapped
        if cc2 > cc:
            cc, w, mov, tpl = cc2, w2, first_tpl, first_mov
    if cc < 0:  # ECC failed both ways (e.g. a nearly flat image): score the starting alignment
        mov, tpl = (i, j) if i_in_j else (j, i)
        w = init
        cc = _ncc_at(gray[tpl], gray[mov], w)
    c75, c90 = _aligned_colour(t.lab[mov].astype(np.float32), t.lab[tpl].astype(np.float32), w)
    return cc, c75, c90


def _ncc_at(template: np.ndarray, moving: np.ndarray, w: np.ndarray) -> float:
    """Normalised cross-correlation of ``template`` and ``moving`` warped by ``w`` onto it."""
    import cv2

    warped = cv2.warpAffine(
        moving,
        w,
        template.shape[::-1],
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    u, v = warped.ravel() - warped.mean(), template.ravel() - template.mean()
    den = float(np.linalg.norm(u) * np.linalg.norm(v))
    return float(u @ v / den) if den > 1e-6 else (1.0 if np.abs(warped - template).max() < 8 else 0.0)
