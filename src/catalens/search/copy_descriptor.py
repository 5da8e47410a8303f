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

FEATURE_VERSION = 6
THUMB = 40
CTHUMB = 16  # colour thumbnail side (Lab)
COARSE = 8  # coarse gray window side
COARSE_C = 4  # coarse colour window side
VIEW_BYTES = THUMB * THUMB + CTHUMB * CTHUMB * 3 + CTHUMB * CTHUMB
FEATURE_BYTES = 2 * VIEW_BYTES  # the trimmed view, then the whole image
BAD_COLOUR = 18.0  # a cell whose aligned Lab distance exceeds this disagrees ("damage")
BAD_GRAY = 0.9  # ... or whose z-scored gray difference exceeds this
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

    small = img.convert("RGB")
    if max(small.size) > 320:
        small = small.copy()
        small.thumbnail((320, 320), Image.Resampling.BILINEAR)
    arr = np.asarray(small)
    fg_px = foreground(arr)
    top, bottom, left, right = trim_box(arr)
    return _view(arr[top:bottom, left:right], fg_px[top:bottom, left:right]) + _view(arr, fg_px)


def _view(crop: np.ndarray, fg_px: np.ndarray) -> bytes:
    """gray 40x40 + Lab 16x16 + foreground share 16x16 of one view (trimmed or whole) of the image."""
    import cv2

    crop = np.ascontiguousarray(crop)
    gray = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    mid = cv2.resize(crop, (4 * CTHUMB, 4 * CTHUMB), interpolation=cv2.INTER_AREA)  # Lab of a 64x64 copy
    colour = cv2.resize(_lab(mid), (CTHUMB, CTHUMB), interpolation=cv2.INTER_AREA)
    fg = cv2.resize(fg_px.astype(np.float32), (CTHUMB, CTHUMB), interpolation=cv2.INTER_AREA)
    fg8 = np.clip(np.round(fg * 255), 0, 255).astype(np.uint8)
    return gray.astype(np.uint8).tobytes() + colour.astype(np.uint8).tobytes() + fg8.tobytes()


def foreground(arr: np.ndarray, tol: float = 24.0, min_uniform: float = 0.6) -> np.ndarray:
    """Boolean mask of the product's pixels: those that differ from the background colour.

    The background colour is the median of the image's outer frame; when less than ``min_uniform``
    of the frame is within ``tol`` of it (a busy or graded background: user photos), the whole image
    counts as foreground. Small specks are closed over and small holes filled by a 5x5 closing.
    """
    import cv2

    a = cv2.GaussianBlur(np.ascontiguousarray(arr, dtype=np.uint8), (3, 3), 0).astype(np.int16)
    frame = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    ref = np.median(frame, axis=0)
    if (np.abs(frame - ref).max(axis=1) <= tol).mean() < min_uniform:
        return np.ones(arr.shape[:2], dtype=bool)
    # |a - ref| per channel in float32 (ref is a whole or half grey level: exact), max over channels
    d = cv2.absdiff(a.astype(np.float32), tuple(float(v) for v in ref) + (0.0,))
    fg = (np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2]) > tol).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    if fg.mean() < 0.01:  # nothing stands out: compare the whole image
        return np.ones(arr.shape[:2], dtype=bool)
    return fg.astype(bool)


# ---- decoded descriptors ------------------------------------------------------------------------
@dataclass
class Thumbs:
    """Descriptors decoded for pair checks."""

    gray: np.ndarray  # (n, THUMB, THUMB) uint8
    lab: np.ndarray  # (n, CTHUMB, CTHUMB, 3) uint8
    fg: np.ndarray  # (n, CTHUMB, CTHUMB) uint8: share of product pixels per cell (255 = all)
    full: Thumbs | None = None  # the same of the whole (untrimmed) images

    def __len__(self) -> int:
        return len(self.gray)


def _parse_view(buf: np.ndarray) -> Thumbs:
    n = len(buf)
    g_end, c_end = THUMB * THUMB, THUMB * THUMB + CTHUMB * CTHUMB * 3
    gray = buf[:, :g_end].reshape(n, THUMB, THUMB)
    lab = buf[:, g_end:c_end].reshape(n, CTHUMB, CTHUMB, 3)
    fg = buf[:, c_end:VIEW_BYTES].reshape(n, CTHUMB, CTHUMB)
    return Thumbs(gray, lab, fg)


def parse(blobs: Sequence[bytes]) -> Thumbs:
    """Decode stored descriptors (one blob per row): the trimmed view, with ``full`` the whole images."""
    buf = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), FEATURE_BYTES)
    t = _parse_view(buf[:, :VIEW_BYTES])
    t.full = _parse_view(buf[:, VIEW_BYTES:])
    return t


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


def _colour_warp(w: np.ndarray) -> np.ndarray:
    """The 40x40-grid warp ``w`` on the 16x16 colour grid (pixel centres: x16 = (x40 + 0.5) f - 0.5)."""
    f = CTHUMB / THUMB
    lin = w[:, :2].astype(np.float32)
    shift = f * w[:, 2] + lin @ np.full(2, 0.5 * (1 - f), np.float32) + (0.5 * f - 0.5)
    return np.concatenate([lin, shift[:, None].astype(np.float32)], axis=1)


def _warp(img: np.ndarray, w: np.ndarray, side: int) -> np.ndarray:
    import cv2

    return cv2.warpAffine(
        img, w, (side, side), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) if x.size else 0.0


def _ncc(u: np.ndarray, v: np.ndarray) -> float:
    u, v = u - u.mean(), v - v.mean()
    den = float(np.linalg.norm(u) * np.linalg.norm(v))
    return float(u @ v / den) if den > 1e-3 * max(1, u.size) else 0.0


@dataclass
class PairScores:
    """What :func:`compare` measures on one aligned pair (see :mod:`catalens.search.dedup`)."""

    structure: float  # ECC correlation of the whole thumbnails at the alignment
    colour: float  # 75th percentile of the cell Lab distance, all cells
    colour_p90: float  # 90th percentile, all cells
    fg_colour: float  # 75th percentile of the Lab distance over the product's cells (foreground of either)
    fg_colour_p90: float  # 90th percentile over the product's cells
    damage: float  # share of the cells that disagree (Lab > BAD_COLOUR or gray > BAD_GRAY), largest blob
    structure_out: float  # gray correlation outside the damaged blob (dilated one cell)
    colour_out: float  # 90th percentile of the Lab distance over the product's cells outside the blob
    inside: float  # gray correlation inside the blob: high = same shapes recoloured, low = pasted over

    def as_tuple(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.__dict__.values())


SCORE_FIELDS = tuple(PairScores.__dataclass_fields__)


def _scores(t: Thumbs, mov: int, tpl: int, w: np.ndarray, cc: float) -> PairScores:
    import cv2

    wc = _colour_warp(w)
    lab_m = _warp(t.lab[mov].astype(np.float32), wc, CTHUMB)
    da = cv2.GaussianBlur(lab_m, (3, 3), 0) - cv2.GaussianBlur(t.lab[tpl].astype(np.float32), (3, 3), 0)
    dist = np.sqrt(np.einsum("ijk,ijk->ij", da, da))
    fg = np.maximum(_warp(t.fg[mov].astype(np.float32), wc, CTHUMB), t.fg[tpl].astype(np.float32)) >= 128
    if fg.sum() < 8:
        fg = np.ones_like(fg)
    gm = _warp(t.gray[mov].astype(np.float32), w, THUMB)
    gt = t.gray[tpl].astype(np.float32)
    zm = (gm - gm.mean()) / max(float(gm.std()), 1.0)
    zt = (gt - gt.mean()) / max(float(gt.std()), 1.0)
    gdiff = cv2.resize(np.abs(zm - zt), (CTHUMB, CTHUMB), interpolation=cv2.INTER_AREA)
    bad = ((dist > BAD_COLOUR) | (gdiff > BAD_GRAY)).astype(np.uint8)
    n_lab, labels, stats, _ = cv2.connectedComponentsWithStats(bad, connectivity=8)
    blob = np.zeros_like(bad)
    if n_lab > 1:
        biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        blob = (labels == biggest).astype(np.uint8)
    damage = float(bad.sum()) / bad.size if n_lab <= 1 else float(blob.sum()) / bad.size
    # the blob's bounding box, dilated by a cell, is left out of the outside measures
    out16 = np.ones_like(bad, dtype=bool)
    inside = 1.0
    if blob.any():
        ys, xs = np.nonzero(blob)
        y0, y1, x0, x1 = max(0, ys.min() - 1), ys.max() + 2, max(0, xs.min() - 1), xs.max() + 2
        out16[y0:y1, x0:x1] = False
        blob40 = cv2.resize(blob, (THUMB, THUMB), interpolation=cv2.INTER_NEAREST).astype(bool)
        inside = _ncc(gm[blob40], gt[blob40])
    keep40 = cv2.resize(out16.astype(np.uint8), (THUMB, THUMB), interpolation=cv2.INTER_NEAREST).astype(bool)
    structure_out = _ncc(gm[keep40], gt[keep40]) if keep40.mean() >= 0.5 else cc
    all_d = dist.ravel()
    return PairScores(
        structure=cc,
        colour=_pct(all_d, 75),
        colour_p90=_pct(all_d, 90),
        fg_colour=_pct(dist[fg], 75),
        fg_colour_p90=_pct(dist[fg], 90),
        damage=damage,
        structure_out=structure_out,
        colour_out=_pct(dist[fg & out16], 90) if (fg & out16).sum() >= 8 else _pct(dist[fg], 90),
        inside=inside,
    )


def compare(
    t: Thumbs, i: int, j: int, window: int, i_in_j: bool, good: float = 0.95, retry_from: float = 0.8
) -> PairScores:
    """:class:`PairScores` of one pair after ECC alignment (see the module docstring).

    ``window``/``i_in_j`` come from :func:`coarse`: the window of image ``i`` (when ``i_in_j``)
    or of ``j`` that best matched the other whole thumbnail - the starting alignment. Restarts
    happen while the correlation is in [``retry_from``, ``good``). When the trimmed views do not
    align well (a label pasted on the background stops the trim of one copy, so the two frames
    differ), the whole images are aligned too, from the identity, and the better result is kept.
    """
    res = _compare_view(t, i, j, window, i_in_j, good, retry_from)
    if t.full is not None and (res.structure_out < 0.95 or res.damage > 0.2):
        alt = _compare_view(t.full, i, j, 0, True, good, retry_from)
        if (alt.structure_out, -alt.damage) > (res.structure_out, -res.damage):
            return alt
    return res


def _compare_view(
    t: Thumbs, i: int, j: int, window: int, i_in_j: bool, good: float, retry_from: float
) -> PairScores:
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
    return _scores(t, mov, tpl, w, cc)


def align(
    t: Thumbs, i: int, j: int, window: int, i_in_j: bool, good: float = 0.95, retry_from: float = 0.8
) -> tuple[float, float, float]:
    """(structure, colour, colour_p90) of one pair after ECC alignment: the first three :func:`compare` scores."""
    s = compare(t, i, j, window, i_in_j, good, retry_from)
    return s.structure, s.colour, s.colour_p90


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
