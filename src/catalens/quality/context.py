"""``QCImage``: one image prepared once and shared by every check.

The file is read and decoded once (JPEG draft mode, so a 1200 px JPEG decodes at about 600 px),
then reduced to a working copy whose long side is at most ``WORK_SIDE`` px. Derived arrays (gray,
LAB, near-white mask, foreground mask, gradients, the packaged product detector's boxes and mask) are
computed lazily on first use and cached, so checks that need the same array share its cost. The true file size (``width``/``height``) is kept
for the resolution check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from catalens.errors import ImageError
from catalens.imageio import DecodedImage, decode_image, read_bytes, sha256_bytes

WORK_SIDE = 512  # long side of the working copy (pixel checks)
DRAFT_SHORT_SIDE = 384  # JPEG draft keeps the short side >= this (also the OCR/NSFW copy)
NEAR_WHITE_MIN = 235  # every channel >= this ...
NEAR_WHITE_SPREAD = 14  # ... and max - min channel <= this: "near-white"


@dataclass
class QCImage:
    """A decoded image (or the error that stopped it) plus cached working arrays."""

    source: str
    data: bytes | None = None
    decoded: DecodedImage | None = None
    error: ImageError | None = None
    sha256: str | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    # ---- construction ---------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        max_bytes: int,
        max_pixels: int,
        max_side: int,
        source: str | None = None,
    ) -> QCImage:
        """Read and decode ``path``; never raises an :class:`ImageError` (it is kept in ``error``)."""
        src = source or str(path)
        try:
            data = read_bytes(path, max_bytes=max_bytes)
        except ImageError as exc:
            return cls(source=src, error=exc)
        return cls.from_bytes(data, src, max_pixels=max_pixels, max_side=max_side)

    @classmethod
    def from_bytes(
        cls, data: bytes, source: str, *, max_pixels: int = 89_478_485, max_side: int = 50_000
    ) -> QCImage:
        sha = sha256_bytes(data)
        try:
            dec = decode_image(
                data, source, max_pixels=max_pixels, max_side=max_side, draft_to=DRAFT_SHORT_SIDE
            )
        except ImageError as exc:
            return cls(source=source, data=data, error=exc, sha256=sha)
        return cls(source=source, data=data, decoded=dec, sha256=sha)

    @classmethod
    def from_pil(cls, image: Any, source: str = "<memory>") -> QCImage:
        """Wrap an in-memory PIL image (tests, API callers)."""
        rgb = image.convert("RGB")
        dec = DecodedImage(image=rgb, width=rgb.width, height=rgb.height, format="RAW", mode=image.mode)
        return cls(source=source, decoded=dec)

    # ---- facts --------------------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        return self.decoded is not None

    @property
    def width(self) -> int | None:
        return self.decoded.width if self.decoded else None

    @property
    def height(self) -> int | None:
        return self.decoded.height if self.decoded else None

    @property
    def format(self) -> str | None:
        return self.decoded.format if self.decoded else None

    # ---- derived arrays (cached) --------------------------------------------------------------
    @cached_property
    def rgb(self) -> np.ndarray:
        """Working copy, uint8 HxWx3, long side <= WORK_SIDE (never upscaled)."""
        import cv2

        assert self.decoded is not None, "no pixels: the image did not decode"
        arr = np.asarray(self.decoded.image)
        h, w = arr.shape[:2]
        f = WORK_SIDE / max(h, w)
        if f < 1:
            arr = cv2.resize(arr, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(arr)

    @property
    def to_full(self) -> float:
        """Multiply working-copy coordinates by this to get full-resolution coordinates."""
        return (self.width or 1) / self.rgb.shape[1]

    @cached_property
    def gray(self) -> np.ndarray:
        """uint8 luma (BT.601) of the working copy."""
        import cv2

        return cv2.cvtColor(self.rgb, cv2.COLOR_RGB2GRAY)

    @cached_property
    def channel_range(self) -> tuple[np.ndarray, np.ndarray]:
        """(per-pixel min, per-pixel max) over R, G, B of the working copy, uint8."""
        import cv2

        r, g, b = cv2.split(self.rgb)
        return cv2.min(cv2.min(r, g), b), cv2.max(cv2.max(r, g), b)

    @cached_property
    def chroma(self) -> np.ndarray:
        """uint8 CIELAB chroma sqrt(a^2 + b^2) of every other pixel in each direction (a statistic, not a
        map: the quarter sample is plenty for percentiles and 4x cheaper)."""
        import cv2

        lab = cv2.cvtColor(np.ascontiguousarray(self.rgb[::2, ::2]), cv2.COLOR_RGB2LAB)
        a = lab[..., 1].astype(np.float32) - 128.0
        b = lab[..., 2].astype(np.float32) - 128.0
        return np.minimum(cv2.magnitude(a, b), 255).astype(np.uint8)

    @cached_property
    def near_white(self) -> np.ndarray:
        """bool mask of near-white pixels (every channel >= 235, channel spread <= 14)."""
        lo, hi = self.channel_range
        return (lo >= NEAR_WHITE_MIN) & ((hi - lo) <= NEAR_WHITE_SPREAD)

    def gray_percentile(self, p: float) -> float:
        """Percentile ``p`` (0..100) of the gray working copy, from a cached histogram."""
        cum = self.memo("gray_cumhist", lambda: np.bincount(self.gray.ravel(), minlength=256).cumsum())
        return float(np.searchsorted(cum, cum[-1] * p / 100.0))

    @cached_property
    def foreground(self) -> np.ndarray:
        """bool mask of content: not near-white, cleaned of specks (morphological opening)."""
        import cv2

        mask = (~self.near_white).astype(np.uint8)
        k = np.ones((3, 3), np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, k)
        return mask.astype(bool)

    @cached_property
    def grad(self) -> np.ndarray:
        """float32 Sobel gradient magnitude of the gray working copy."""
        import cv2

        g = self.gray.astype(np.float32)
        gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
        return cv2.magnitude(gx, gy)

    @cached_property
    def _detected(self) -> tuple[list[Any], np.ndarray | None]:
        from catalens.detect.detector import default_detector

        if min(self.rgb.shape[:2]) < 8:
            return [], None
        return default_detector().detect_with_mask(self.rgb)

    @property
    def products(self) -> list[Any]:
        """The packaged product detector's :class:`~catalens.detect.detector.Detection` s on the working
        copy (boxes and masks in working-copy pixels), best first; [] when it finds none."""
        return self._detected[0]

    @property
    def product_mask(self) -> np.ndarray | None:
        """bool mask (working copy) of every pixel the product detector calls product (not clipped to
        its boxes: a box can fall short of a model's head or feet); None when it finds no product."""
        return self._detected[1]

    def memo(self, key: str, fn: Any) -> Any:
        """Cache any other derived value (model outputs shared by several checks)."""
        if key not in self.cache:
            self.cache[key] = fn()
        return self.cache[key]
