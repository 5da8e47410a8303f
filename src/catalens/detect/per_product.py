"""Detect the products in a photo and answer for each one: search, classify, colour.

The photo is decoded once (with the catalog's size limits); each detected product is cut out
(:mod:`catalens.detect.crops`) and passed to the same search, classifier and colour code that
whole photos go through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from catalens.detect.crops import product_crop
from catalens.detect.detector import Detection, Detector, default_detector
from catalens.errors import ConfigError

if TYPE_CHECKING:
    from catalens.catalog_base import CatalogParts
    from catalens.core import Catalog


@dataclass
class DetectedItem:
    """One detected product and what was answered for it."""

    index: int
    detection: Detection
    answer: Any = None  # search results, classifier fields or colours

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"item": self.index, **self.detection.to_dict()}
        if self.answer is not None:
            if isinstance(self.answer, list):
                out["results"] = [a.to_dict() if hasattr(a, "to_dict") else a for a in self.answer]
            else:
                out.update(self.answer)
        return out


@dataclass
class PhotoDetections:
    """The products found in one photo."""

    source: str
    width: int
    height: int
    items: list[DetectedItem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "count": len(self.items),
            "items": [i.to_dict() for i in self.items],
        }


def _detector(threshold: float | None) -> Detector:
    det = default_detector()
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise ConfigError(f"--threshold must be between 0 and 1, got {threshold}")
    return det


def photo_array(path: str | Path, settings: Any | None = None) -> np.ndarray:
    """uint8 RGB array of a photo file (catalog size limits when ``settings`` is given)."""
    from catalens.imageio import open_image

    kw: dict[str, Any] = {}
    if settings is not None:
        kw = {
            "max_bytes": settings.max_file_bytes,
            "max_pixels": settings.max_pixels,
            "max_side": settings.max_side,
        }
    return np.asarray(open_image(path, **kw).image.convert("RGB"))


def detect_array(
    rgb: np.ndarray, source: str = "", *, threshold: float | None = None, max_items: int = 10
) -> PhotoDetections:
    dets = _detector(threshold).detect(rgb, threshold=threshold)[:max_items]
    h, w = rgb.shape[:2]
    return PhotoDetections(source, w, h, [DetectedItem(i, d) for i, d in enumerate(dets)])


def detect_photo(
    path: str | Path, *, settings: Any | None = None, threshold: float | None = None, max_items: int = 10
) -> tuple[np.ndarray, PhotoDetections]:
    """The decoded photo and its detected products (best score first, at most ``max_items``)."""
    rgb = photo_array(path, settings)
    return rgb, detect_array(rgb, str(path), threshold=threshold, max_items=max_items)


def crops(rgb: np.ndarray, found: PhotoDetections, *, on_white: bool = False) -> list[Any]:
    return [product_crop(rgb, it.detection, on_white=on_white) for it in found.items]


def search_each(
    catalog: Catalog,
    path: str | Path,
    k: int = 10,
    *,
    where: str | None = None,
    all_images: bool = False,
    model: str | None = None,
    threshold: float | None = None,
    max_items: int = 10,
) -> PhotoDetections:
    """One result list per detected product of the photo at ``path``."""
    from catalens.search.query import embed_pil_images

    rgb, found = detect_photo(path, settings=catalog.settings, threshold=threshold, max_items=max_items)
    if not found.items:
        return found
    s = catalog.searcher(model)
    vecs = embed_pil_images(catalog, s, crops(rgb, found))
    for item, vec in zip(found.items, vecs, strict=True):
        item.answer = s.search(vec, k, where=where, all_images=all_images)
    return found


def classify_each(
    catalog: CatalogParts,
    path: str | Path,
    classifier: str = "builtin",
    *,
    top_k: int = 3,
    hierarchy: str = "joint",
    threshold: float | None = None,
    max_items: int = 10,
) -> PhotoDetections:
    """Classifier fields for each detected product of the photo at ``path``."""
    from catalens.classify.catalog_scoring import classify_images

    rgb, found = detect_photo(path, settings=catalog.settings, threshold=threshold, max_items=max_items)
    if found.items:
        rows = classify_images(catalog, crops(rgb, found), classifier, top_k=top_k, hierarchy=hierarchy)
        for item, row in zip(found.items, rows, strict=True):
            item.answer = row
    return found


def colours_each(
    path: str | Path, *, settings: Any | None = None, threshold: float | None = None, max_items: int = 10
) -> PhotoDetections:
    """Dominant colours of each detected product (its crop; the colour code finds the product's own
    pixels in it)."""
    from catalens.classify.colour.features import dominant_colours

    rgb, found = detect_photo(path, settings=settings, threshold=threshold, max_items=max_items)
    for item, crop in zip(found.items, crops(rgb, found), strict=True):
        item.answer = {"colours": dominant_colours(crop).to_dict()}
    return found


def draw(rgb: np.ndarray, found: PhotoDetections, *, masks: bool = True) -> Any:
    """The photo with each product's mask tinted and its box, number, category and score drawn."""
    from PIL import Image, ImageDraw

    palette = [
        (230, 25, 75),
        (60, 180, 75),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
    ]
    base = rgb[..., :3].astype(np.float32).copy()
    if masks:
        for it in found.items:
            if it.detection.mask is not None:
                colour = np.array(palette[it.index % len(palette)], np.float32)
                m = it.detection.mask
                base[m] = 0.6 * base[m] + 0.4 * colour
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    width = max(2, round(max(img.size) / 300))
    for it in found.items:
        colour = palette[it.index % len(palette)]
        x0, y0, x1, y1 = it.detection.box
        d.rectangle((x0, y0, x1, y1), outline=colour, width=width)
        label = f"{it.index + 1} {it.detection.category} {it.detection.score:.2f}"
        tw = d.textlength(label)
        d.rectangle((x0, max(0, y0 - 12), x0 + tw + 4, max(12, y0)), fill=colour)
        d.text((x0 + 2, max(0, y0 - 12)), label, fill=(255, 255, 255))
    return img

