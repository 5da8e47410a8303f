"""Full-detail copy verification: keypoints, a fitted warp and a pixel comparison of two photos.

The coarse descriptors of :mod:`catalens.search.copy_descriptor` (40x40 gray, 16x16 Lab) cannot tell a
re-encoded copy from another product shot on the same studio template (two black wallets, one model
in two shirts): at that size they are the same picture. This stage looks at the photos themselves,
for the pairs the coarse stage could not settle:

1. *View*: each photo is decoded and scaled so its longest side is :data:`SIDE` pixels (small photos
   are scaled up, so a thumbnail and its full-size original meet at one scale); ORB keypoints.
2. *Warp*: keypoint matches (Lowe ratio test) and an affine warp fitted by RANSAC. A copy
   (resized, cropped, bordered, re-encoded, pasted over) keeps hundreds of consistent matches;
   another product rarely keeps a few dozen. Warps with shear, rotation-like skew or extreme
   scale are refused.
3. *Pixels*: the second photo is warped onto the first; per pixel CIELAB distance after a blur
   scaled to the coarser of the two originals (a 90 px copy is compared at its own detail).
   Disagreeing pixels (> :data:`BAD_LAB`) are merged into regions; the (up to three) largest
   regions are the pasted-over *damage* (a label, sticker, price tag, logo or a line of text).
   Outside them, on the product's pixels, a copy agrees everywhere (``bad_out`` ~ 0, median
   distance ~ 1), while a recolour or another product does not.

*Thumbnails*: a photo under :data:`FRAME_MAX_NATIVE` pixels has too little detail for keypoints
(scaled up to :data:`SIDE`, ORB finds corners of the interpolation, and a 30 px copy of a 60 px
thumbnail keeps a handful of matches). Where keypoints do not register such a pair and the two
frames have one aspect ratio (a resized or re-encoded copy), the warp is the frame itself, one photo
scaled onto the other (``method`` ``"frame"``), and the pixel step compares them at the smaller
photo's own detail.

:func:`compare` returns :class:`DetailScores`; :class:`catalens.search.dedup.DedupOptions` holds the
thresholds that turn them into a verdict.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

SIDE = 320  # working size (longest side) of a view
BAD_LAB = 20.0  # a pixel whose CIELAB distance exceeds this disagrees
MIN_MATCHES = 8
FRAME_MAX_NATIVE = 128  # below this longest side, a frame-to-frame warp is tried (see above)
ORB_FEATURES = 800  # keypoints per view
_local = threading.local()


@dataclass(frozen=True)
class DetailView:
    """One photo prepared for :func:`compare`."""

    rgb: np.ndarray  # (h, w, 3) uint8, longest side SIDE
    native: int  # longest side of the photo as stored
    points: np.ndarray  # (k, 2) float32 keypoint positions
    descriptors: np.ndarray | None  # (k, 32) uint8 ORB descriptors
    fg: np.ndarray  # (h, w) bool: the product's pixels (see copy_descriptor.foreground)

    @property
    def keypoints(self) -> int:
        return len(self.points)


def _orb() -> Any:
    import cv2

    orb = getattr(_local, "orb", None)
    if orb is None:  # one detector per thread: cv2 objects are not thread-safe
        orb = cv2.ORB_create(
            nfeatures=ORB_FEATURES,
            scaleFactor=1.2,
            nlevels=6,
            edgeThreshold=15,
            patchSize=15,
            fastThreshold=10,
        )
        _local.orb = orb
    return orb


def view_of(img: Image.Image, native: int | None = None) -> DetailView:
    """The :class:`DetailView` of a decoded image (any mode); ``native``: its stored longest side
    when ``img`` was decoded at a reduced size."""
    import cv2

    from catalens.search.copy_descriptor import foreground

    rgb = img.convert("RGB")
    w, h = rgb.size
    f = SIDE / max(w, h)
    size = (max(8, round(w * f)), max(8, round(h * f)))
    arr = np.ascontiguousarray(np.asarray(rgb.resize(size, Image.Resampling.BILINEAR)))
    kp, des = _orb().detectAndCompute(cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY), None)
    pts = np.array([k.pt for k in kp], dtype=np.float32).reshape(-1, 2)
    return DetailView(arr, native or max(w, h), pts, des, foreground(arr))


def load_view(
    path: str,
    *,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
    max_side: int | None = None,
) -> DetailView | None:
    """The :class:`DetailView` of the image file at ``path``; None when it cannot be read or decoded."""
    from catalens.config import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS
    from catalens.errors import ImageError
    from catalens.imageio import DEFAULT_MAX_SIDE, decode_image, read_bytes

    try:
        data = read_bytes(path, max_bytes=max_bytes or DEFAULT_MAX_FILE_BYTES)
        dec = decode_image(
            data,
            path,
            max_pixels=max_pixels or DEFAULT_MAX_PIXELS,
            max_side=max_side or DEFAULT_MAX_SIDE,
            draft_to=SIDE,
        )
    except ImageError:
        return None
    return view_of(dec.image, native=max(dec.width, dec.height))


@dataclass
class DetailScores:
    """What :func:`compare` measured; ``aligned`` False means the photos could not be registered."""

    keypoints: int  # the smaller keypoint count of the two views
    native: int = 0  # the smaller stored size (longest side) of the two photos
    matches: int = 0  # keypoint matches passing the ratio test
    inliers: int = 0  # matches consistent with the fitted warp
    aligned: bool = False
    method: str = ""  # how the warp was found: "keypoints", "frame" (thumbnails) or "" (none)
    covered: float = 0.0  # share of the first view covered by the warped second
    damage: float = 1.0  # share of the covered frame in the largest disagreeing regions
    damage_product: float = 1.0  # share of the product (pixels that are product in both photos) in them
    bad_out: float = 1.0  # share of the product's pixels outside those regions that disagree
    diff_median: float = 999.0  # median CIELAB distance there
    diff_p95: float = 999.0  # 95th percentile there

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _sane(m: np.ndarray) -> bool:
    """A resize/crop/border warp: scale per axis in [0.5, 2], aspect kept within 35%, no shear."""
    sx, sy = float(np.hypot(m[0, 0], m[1, 0])), float(np.hypot(m[0, 1], m[1, 1]))
    if not (0.5 <= sx <= 2.0 and 0.5 <= sy <= 2.0) or abs(sx / sy - 1.0) > 0.35:
        return False
    shear = abs(float(m[0, 0] * m[0, 1] + m[1, 0] * m[1, 1])) / (sx * sy)
    return shear <= 0.1 and abs(float(m[1, 0])) / sx <= 0.1  # no rotation beyond ~6 degrees


def _fit(a: DetailView, b: DetailView) -> tuple[np.ndarray | None, int, int]:
    """(warp of b onto a or None, matches, inliers)."""
    import cv2

    if a.descriptors is None or b.descriptors is None:
        return None, 0, 0
    if len(a.descriptors) < MIN_MATCHES or len(b.descriptors) < MIN_MATCHES:
        return None, 0, 0
    knn = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(b.descriptors, a.descriptors, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    if len(good) < MIN_MATCHES:
        return None, len(good), 0
    src = b.points[[g.queryIdx for g in good]]
    dst = a.points[[g.trainIdx for g in good]]
    m, inl = cv2.estimateAffine2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=3.0, maxIters=1000, confidence=0.995
    )
    if m is None or inl is None:
        return None, len(good), 0
    n_in = int(inl.sum())
    return (m if _sane(m) else None), len(good), n_in


def _frame_warp(a: DetailView, b: DetailView) -> np.ndarray | None:
    """The warp scaling ``b``'s frame onto ``a``'s, when both frames have one aspect ratio (up to the
    rounding of the smaller photo's pixels: a 0.4 resize of 45x60 is 18x24)."""
    (ha, wa), (hb, wb) = a.rgb.shape[:2], b.rgb.shape[:2]
    ra, rb = wa / ha, wb / hb
    short = min(a.native * min(ha, wa) / max(ha, wa), b.native * min(hb, wb) / max(hb, wb))
    if abs(ra / rb - 1.0) > 0.01 + 1.5 / max(1.0, short):
        return None
    sx, sy = wa / wb, ha / hb  # pixel centres onto pixel centres
    return np.array([[sx, 0.0, 0.5 * (sx - 1.0)], [0.0, sy, 0.5 * (sy - 1.0)]], dtype=np.float64)


def compare(a: DetailView, b: DetailView, min_inliers: int = 0, min_ratio: float = 0.0) -> DetailScores:
    """Register ``b`` onto ``a`` and compare their pixels (see the module docstring).

    The pixel comparison is skipped (``aligned`` False) when fewer than ``min_inliers`` matches, or
    less than ``min_ratio`` of them, fit the warp: such a pair is no copy whatever its pixels say,
    unless one photo is a thumbnail (under :data:`FRAME_MAX_NATIVE`) and the frames share an aspect
    ratio: then the frame warp is used (``method`` ``"frame"``)."""
    import cv2

    out = DetailScores(keypoints=min(a.keypoints, b.keypoints), native=min(a.native, b.native))
    m, out.matches, out.inliers = _fit(a, b)
    if m is None or out.inliers < min_inliers or out.inliers < min_ratio * max(1, out.matches):
        m = _frame_warp(a, b) if out.native < FRAME_MAX_NATIVE else None
        if m is None:
            return out
        out.method = "frame"
    else:
        out.method = "keypoints"
    h, w = a.rgb.shape[:2]
    warped = cv2.warpAffine(b.rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    cover = cv2.warpAffine(np.ones(b.rgb.shape[:2], np.uint8), m, (w, h), flags=cv2.INTER_NEAREST)
    valid = cv2.erode(cover, np.ones((5, 5), np.uint8)) > 0
    out.covered = float(valid.mean())
    if out.covered < 0.5:
        return out
    out.aligned = True
    sigma = 1.2 * max(1.0, SIDE / max(1, min(a.native, b.native)))  # compare at the coarser photo's detail
    la = cv2.GaussianBlur(cv2.cvtColor(a.rgb, cv2.COLOR_RGB2LAB).astype(np.float32), (0, 0), sigma)
    lb = cv2.GaussianBlur(cv2.cvtColor(warped, cv2.COLOR_RGB2LAB).astype(np.float32), (0, 0), sigma)
    d = la - lb
    d[..., 0] *= 100.0 / 255.0  # OpenCV's 8-bit L is 0..255; a and b are already in Lab units
    dist = np.sqrt(np.einsum("ijk,ijk->ij", d, d))
    fg_b = cv2.warpAffine(b.fg.astype(np.uint8), m, (w, h), flags=cv2.INTER_NEAREST) > 0
    both = a.fg & fg_b & valid  # product in both photos: a paste (in one only) is left out
    fg = both if both.sum() >= 50 else valid
    bad = ((dist > BAD_LAB) & valid).astype(np.uint8)
    bad = cv2.morphologyEx(bad, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # edge slivers
    merged = cv2.morphologyEx(bad, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))  # letters into words
    n, labels, stats, _ = cv2.connectedComponentsWithStats(merged, connectivity=8)
    blob = np.zeros(bad.shape, dtype=bool)
    if n > 1:
        largest = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:3]
        blob = np.isin(labels, largest)
    out.damage = float(blob.sum()) / max(1, int(valid.sum()))
    out.damage_product = float((blob & both).sum()) / max(1, int(both.sum()))
    near = cv2.dilate(blob.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    rest = fg & ~near
    if rest.sum() >= 50:
        out.bad_out = float(bad[rest].mean())
        out.diff_median = float(np.median(dist[rest]))
        out.diff_p95 = float(np.percentile(dist[rest], 95))
    return out
