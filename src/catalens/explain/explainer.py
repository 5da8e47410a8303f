"""Label heatmaps: :class:`Explainer` runs a saliency method on one image and returns an
:class:`Explanation` (maps, strongest regions, scores) that can be drawn and saved.

    from catalens.explain import Explainer, ImageNetTarget

    ex = Explainer("efficientnet-lite0")
    e = ex.explain("shirt.jpg", ImageNetTarget("efficientnet-lite0"), label="jersey")
    e.save("out/")          # shirt.overlay.png, shirt.map.npy, shirt.json

Gradients need the torch weights: ONNX-only models raise
:class:`~catalens.errors.NoGradientPathError`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from catalens.errors import ConfigError, ImageError, ModelError, NoGradientPathError, WeightsUnavailableError
from catalens.explain.layers import SpatialLayer, spatial_layer
from catalens.explain.maps import Box, Region, normalise, regions, to_source, upsample
from catalens.explain.maps import smooth as smooth_map
from catalens.explain.methods import get_method
from catalens.explain.targets import resolve_label

DEFAULT_METHOD = "gradcam"
DEFAULT_SMOOTH = 0.04
"""Gaussian smoothing of the upsampled map, sigma as a fraction of the input's shorter side
(0.04: 9 px at 224 px, about a quarter of a stride-32 feature cell). Chosen on the ``select``
half of myntra-dev (bench/explain_method_selection.py, 16 deletion steps): it lowered Grad-CAM's
deletion AUC on 11 of 12 EfficientNet-Lite0 images and 5 of 6 Lite2 images (mean -8 % / -12 %);
bench/explain_faithfulness.py reports this default on the disjoint ``report`` half."""


def load_image(image: str | Path | Image.Image | Any) -> tuple[Image.Image, str]:
    """(RGB image, source name) from a path, a PIL image or a DecodedImage; ImageError when unreadable."""
    if isinstance(image, Image.Image):
        return image.convert("RGB"), "<image>"
    if hasattr(image, "image") and isinstance(image.image, Image.Image):
        return image.image.convert("RGB"), "<image>"
    from catalens.imageio import open_image

    path = Path(image)
    if path.is_dir():
        raise ImageError(str(path), "is a folder, not an image")
    return open_image(path).image, str(path)


@contextlib.contextmanager
def frozen(*modules: Any) -> Iterator[None]:
    """Turn off weight gradients while explaining: the backward pass then starts at the hooked
    layer (see FeatureHook) and the part of the forward pass below it records no graph."""
    params = [p for m in modules if isinstance(m, torch.nn.Module) for p in m.parameters()]
    saved = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, saved, strict=True):
            p.requires_grad_(flag)


def _is_onnx_only(model: Any) -> bool:
    if isinstance(model, str | Path):
        text = str(model).split("?", 1)[0]
        return text.lower().endswith(".onnx")
    return getattr(model, "backend", "").startswith("onnx") or type(model).__name__.startswith("Onnx")


def load_explain_model(model: Any) -> tuple[Any, Any]:
    """``(ImageTower, ModelSpec)`` for a model name, spec, or (tower, spec) pair.

    ONNX models and encoders have no gradients: NoGradientPathError says so and what to use.
    """
    if _is_onnx_only(model):
        raise NoGradientPathError(
            f"model {getattr(model, 'model_id', model)!s} is ONNX-only: ONNX Runtime computes no gradients, "
            "so heatmaps cannot be made. Use the torch form of the model (a packaged, timm:, or file: model)"
        )
    from catalens.models import get_spec, load_torch_model

    spec = get_spec(getattr(model, "spec", None) or model)
    if not spec.has_image:
        raise ModelError(f"model {spec.name!r} has no image tower to explain")
    try:
        return _cached_tower(spec, load_torch_model), spec
    except WeightsUnavailableError as exc:
        raise NoGradientPathError(
            f"model {spec.name!r}: explanations need its torch weights, which are not available ({exc})"
        ) from exc


@functools.lru_cache(maxsize=2)
def _cached_tower(spec: Any, loader: Any) -> Any:
    """Towers are loaded once per process (explanations leave them unchanged)."""
    return loader(spec)


@dataclass
class Explanation:
    """One label heatmap.

    ``input_map`` is the [0, 1] map at the network input (``spec.image_size``); ``grid_map`` the
    raw map at the method's own resolution (e.g. the 7x7 feature grid); ``crop_box`` the source
    area the input covers; ``regions`` the strongest areas (source pixels); ``probability`` the
    softmax of the explained label over the target's labels; ``top`` the five best labels.
    """

    source: str
    model: str
    method: str
    target: str
    label: str
    index: int
    score: float
    probability: float
    top: list[tuple[str, float]]
    input_map: np.ndarray
    grid_map: np.ndarray
    crop_box: Box
    image: Image.Image = field(repr=False)
    regions: list[Region] = field(default_factory=list)
    seconds: float = 0.0
    layer: str = ""
    smooth: float = 0.0
    on_product: bool = False  # the map was weighted by the detected product

    def source_map(self) -> np.ndarray:
        """The map at the source image's resolution (zero where the model did not look)."""
        return to_source(self.input_map, self.crop_box, self.image.size)

    def overlay(self, *, boxes: bool = True) -> Image.Image:
        from catalens.explain.render import overlay

        shown = [r.box for r in self.regions] if boxes else []
        return overlay(self.image, self.source_map(), boxes=shown, crop_box=self.crop_box)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "model": self.model,
            "method": self.method,
            "layer": self.layer,
            "smooth": self.smooth,
            "on_product": self.on_product,
            "target": self.target,
            "label": self.label,
            "index": self.index,
            "score": round(self.score, 5),
            "probability": round(self.probability, 5),
            "top": [{"label": lab, "probability": round(p, 5)} for lab, p in self.top],
            "image_size": list(self.image.size),
            "crop_box": [round(v, 1) for v in self.crop_box],
            "map_shape": list(self.grid_map.shape),
            "regions": [r.to_dict() for r in self.regions],
            "seconds": round(self.seconds, 4),
        }

    def save(self, out_dir: str | Path, stem: str | None = None) -> dict[str, str]:
        """Write ``<stem>.overlay.png``, ``<stem>.map.npy`` (source resolution, float32 0..1) and
        ``<stem>.json``; returns their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = stem or (Path(self.source).stem if self.source != "<image>" else "image")
        paths = {
            "overlay": out / f"{stem}.overlay.png",
            "map": out / f"{stem}.map.npy",
            "json": out / f"{stem}.json",
        }
        self.overlay().save(paths["overlay"], optimize=True)
        np.save(paths["map"], self.source_map().astype(np.float32))
        data = self.to_dict() | {"files": {k: str(v) for k, v in paths.items()}}
        paths["json"].write_text(json.dumps(data, indent=2))
        return {k: str(v) for k, v in paths.items()}


class Explainer:
    """Heatmaps for one backbone (loaded once). ``model`` is a model name / spec, or pass
    ``tower`` + ``spec`` directly (e.g. a fine-tuned module already in memory)."""

    def __init__(self, model: Any = None, *, tower: Any = None, spec: Any = None) -> None:
        if tower is None:
            if model is None:
                from catalens.config import load_settings

                model = load_settings(None).default_model
            tower, spec = load_explain_model(model)
        elif _is_onnx_only(tower):
            load_explain_model(tower)  # raises NoGradientPathError
        if spec is None:
            raise ModelError("Explainer(tower=...) needs the model's spec (for its preprocessing)")
        from catalens.models.preprocess import Preprocessor

        self.tower = tower.eval()
        self.spec = spec
        self.model_id = spec.name
        self.preprocess = Preprocessor(spec)
        self._layer: SpatialLayer | None = None

    @property
    def layer(self) -> SpatialLayer:
        if self._layer is None:
            self._layer = spatial_layer(self.tower)
        return self._layer

    def default_method(self) -> str:
        return DEFAULT_METHOD

    def input_tensor(self, image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(self.preprocess(image))[None]

    def explain(
        self,
        image: str | Path | Image.Image | Any,
        target: Any = None,
        label: str | int | None = None,
        *,
        method: str | None = None,
        threshold: float = 0.5,
        top_k: int = 5,
        smooth: float | None = None,
        on_product: bool = False,
    ) -> Explanation:
        """Explain ``label`` (default: the top class) of ``target`` (default: ImageNet) for one image.

        ``smooth``: sigma of the Gaussian smoothing of the upsampled map as a fraction of the
        input's shorter side (None: :data:`DEFAULT_SMOOTH`; 0: the plain bilinear upsampling).
        ``grid_map`` stays the method's raw map either way. ``on_product``: weight the map by the
        product the packaged detector finds in the photo (:mod:`catalens.explain.product`).
        """
        from catalens.explain.targets import ImageNetTarget

        target = target if target is not None else ImageNetTarget(self.model_id)
        index = None if label is None else resolve_label(target, label)  # unknown labels fail before any work
        pil, source = load_image(image)
        name = (method or self.default_method()).lower()
        fn = get_method(name, self.layer)
        start = time.perf_counter()
        x = self.input_tensor(pil)
        with frozen(self.tower, getattr(target, "head", None)):
            result = fn(self.tower, self.layer, x, target, index)
        grid = np.asarray(result.map, dtype=np.float32)
        frac = DEFAULT_SMOOTH if smooth is None else float(smooth)
        if not 0.0 <= frac <= 0.5:
            raise ConfigError(f"smooth must be between 0 and 0.5 (a fraction of the input side), got {frac}")
        sigma = frac * min(self.spec.image_size)
        input_map = normalise(smooth_map(upsample(grid, self.spec.image_size), sigma))
        crop = self.preprocess.crop_box(*pil.size)
        weighted = False
        if on_product:
            from catalens.explain.product import weight

            input_map, weighted = weight(input_map, pil, crop)
        found = regions(input_map, crop, threshold=threshold, top_k=top_k)
        seconds = time.perf_counter() - start
        probs = torch.softmax(torch.from_numpy(result.logits).double(), dim=-1).numpy()
        order = np.argsort(-probs)[:5]
        labels = list(target.labels)
        return Explanation(
            source=source,
            model=self.model_id,
            method=name,
            target=target.name,
            label=labels[result.index],
            index=int(result.index),
            score=float(result.logits[result.index]),
            probability=float(probs[result.index]),
            top=[(labels[i], float(probs[i])) for i in order],
            input_map=input_map,
            grid_map=grid,
            crop_box=tuple(float(v) for v in crop),  # type: ignore[arg-type]
            image=pil,
            regions=found,
            seconds=seconds,
            layer=self.layer.name,
            smooth=frac,
            on_product=weighted,
        )
