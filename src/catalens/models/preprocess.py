"""Image preprocessing with Pillow + numpy only (no torch): resize, centre-crop, normalise.

Matches timm's eval transform (``Resize(floor(size / crop_pct))`` + ``CenterCrop(size)`` +
``Normalize``) while doing the resize and the crop in a single Pillow call: the crop box is
mapped back to source coordinates and ``Image.resize(..., box=...)`` resamples only that region
(Pillow's filter still reads the pixels around the box, so the result equals resize-then-crop).
Thumbnails are upscaled, huge images are first reduced by an integer factor
(``reducing_gap``), which keeps a 4000 px photo fast.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from catalens.models.spec import ModelSpec

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
_REDUCING_GAP = 3.0


class Preprocessor:
    """``Preprocessor(spec)(pil_image) -> float32 array (3, H, W)``.

    ``target_short_side`` is the shorter side the image is resized to before cropping: image
    decoders may use JPEG draft mode (``img.draft("RGB", (s, s))``) down to that size for speed.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        channels, height, width = spec.input_size
        if channels != 3:
            raise ValueError(f"model {spec.name!r}: only 3-channel inputs are supported")
        self.height, self.width = height, width
        self.crop_pct = spec.crop_pct
        self.resize_mode = spec.resize_mode
        self.resample = _RESAMPLE[spec.interpolation]
        self.scale_h = math.floor(height / spec.crop_pct)
        self.scale_w = math.floor(width / spec.crop_pct)
        self.target_short_side = max(self.scale_h, self.scale_w)
        mean = np.asarray(spec.mean, dtype=np.float32)
        std = np.asarray(spec.std, dtype=np.float32)
        self._scale = (1.0 / (255.0 * std)).astype(np.float32)
        self._offset = (-mean / std).astype(np.float32)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return (3, self.height, self.width)

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the image after the resize step, before the centre crop."""
        sw, sh = self.scale_w, self.scale_h
        if self.resize_mode == "squash":
            return sw, sh
        if sh / height >= sw / width:  # height binds: it becomes exactly sh
            return max(sw, int(width * sh / height)), sh
        return sw, max(sh, int(height * sw / width))

    def crop_box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """Region of the source image that ends up in the output, in source pixels."""
        rw, rh = self.resized_size(width, height)
        left = int(round((rw - self.width) / 2.0))
        top = int(round((rh - self.height) / 2.0))
        fx, fy = width / rw, height / rh
        return (left * fx, top * fy, (left + self.width) * fx, (top + self.height) * fy)

    def to_rgb(self, image: Image.Image) -> Image.Image:
        if image.mode == "RGB":
            return image
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(background, rgba).convert("RGB")
        return image.convert("RGB")

    def resize_crop(self, image: Image.Image) -> Image.Image:
        """The resized and cropped RGB image (``width x height`` of the network input)."""
        image = self.to_rgb(image)
        width, height = image.size
        if width < 1 or height < 1:
            raise ValueError(f"image has no pixels ({width}x{height})")
        box = self.crop_box(width, height)
        return image.resize((self.width, self.height), self.resample, box=box, reducing_gap=_REDUCING_GAP)

    def __call__(self, image: Image.Image, out: np.ndarray | None = None) -> np.ndarray:
        """Preprocess one PIL image to a float32 ``(3, H, W)`` array (written into ``out`` if given)."""
        pixels = np.asarray(self.resize_crop(image))  # (H, W, 3) uint8
        if out is None:
            out = np.empty((3, self.height, self.width), dtype=np.float32)
        for c in range(3):  # per-channel multiply-add straight into CHW: no transpose copy
            np.multiply(pixels[:, :, c], self._scale[c], out=out[c], dtype=np.float32)
            out[c] += self._offset[c]
        return out

    def batch(self, images: list[Image.Image]) -> np.ndarray:
        """Preprocess several images into one ``(N, 3, H, W)`` float32 array."""
        result = np.empty((len(images), 3, self.height, self.width), dtype=np.float32)
        for i, image in enumerate(images):
            self(image, out=result[i])
        return result

    def __repr__(self) -> str:
        return (
            f"Preprocessor({self.spec.name!r}, size={self.height}x{self.width}, crop_pct={self.crop_pct}, "
            f"{self.spec.interpolation}, mode={self.resize_mode})"
        )
