"""Spec -> torch module. Dispatches to the backend named by ``spec.source``."""

from __future__ import annotations

from typing import Any

from catalens.errors import ModelError
from catalens.models.registry import get_spec
from catalens.models.spec import ModelSpec


def build_backbone(spec: ModelSpec) -> tuple[Any, str]:
    """The raw backend model (eval mode, CPU) and the full SHA-256 of its weights."""
    if spec.source == "packaged":
        if not spec.has_image:
            raise ModelError(f"model {spec.name!r} is text-only; use load_text_encoder")
        from catalens.models.backends import packaged

        return packaged.build(spec)
    if spec.source == "timm":
        from catalens.models.backends import timm_backend

        return timm_backend.build(spec)
    if spec.source == "file":
        from catalens.models import finetuned

        return finetuned.build(spec)
    if spec.source == "open_clip":
        from catalens.models.backends import open_clip_backend

        return open_clip_backend.build(spec)
    if spec.source == "hf":
        from catalens.models.backends import hf_backend

        return hf_backend.build(spec)
    raise ModelError(f"model {spec.name!r}: unknown source {spec.source!r}")  # pragma: no cover


def wrap_tower(spec: ModelSpec, backbone: Any, *, with_classifier: bool = False) -> Any:
    """Wrap a backend model in the matching :class:`~catalens.models.tower.ImageTower`."""
    import torch

    from catalens.models.features import feature_config
    from catalens.models.tower import HfTower, HypercolumnTower, OpenClipTower, TimmTower

    features = feature_config(spec)
    if features.kind == "hypercolumn":
        if spec.source not in ("packaged", "timm", "file"):
            raise ModelError(
                f"model {spec.name!r}: hypercolumn features need a timm EfficientNet-style model"
            )
        tower = HypercolumnTower(backbone, features.stages, features.part_weight, features.regions)
    elif spec.source in ("packaged", "timm", "file"):
        tower = TimmTower(backbone)
    elif spec.source == "open_clip":
        tower = OpenClipTower(backbone)
    else:
        tower = HfTower(backbone)
    tower.eval()
    if spec.dim:
        tower.dim = int(spec.dim)
    else:
        with torch.inference_mode():
            out = tower.embed(torch.zeros(1, *spec.input_size))
        tower.dim = int(out.shape[-1])
    if with_classifier:
        if not tower.has_classifier:
            raise ModelError(f"model {spec.name!r} has no classifier head")
        tower.with_logits = True
    return tower


def build_image_tower(spec: ModelSpec | str, *, with_classifier: bool = False) -> tuple[Any, str]:
    """``(ImageTower, weights digest)`` for a spec or name."""
    spec = get_spec(spec)
    if not spec.has_image:
        raise ModelError(f"model {spec.name!r} is text-only; use load_text_encoder")
    backbone, digest = build_backbone(spec)
    return wrap_tower(spec, backbone, with_classifier=with_classifier), digest


def load_torch_model(spec: ModelSpec | str, with_classifier: bool = False) -> Any:
    """The model as an :class:`~catalens.models.tower.ImageTower` (eval mode, CPU).

    ``tower(x)`` returns embeddings ``(N, dim)``; with ``with_classifier=True`` it returns
    ``(embeddings, logits)`` (ModelError when the model has no classifier). ``tower.embed``,
    ``tower.logits``, ``tower.backbone`` and ``tower.gradcam_layer()`` work either way.
    """
    return build_image_tower(spec, with_classifier=with_classifier)[0]


def weights_file_digest(spec: ModelSpec) -> str | None:
    """Digest of the weights without importing torch, when they live in one file (else None)."""
    if spec.random_init:
        return None
    if spec.source == "packaged" and spec.has_image:
        from catalens.models.backends import packaged

        return packaged.weights_digest(spec)
    if spec.source == "file":
        from catalens.models import finetuned

        return finetuned.weights_digest(spec)
    return None


def linear_head(tower: Any) -> tuple[Any, Any] | None:
    """``(weight (C, dim), bias (C,))`` numpy arrays when the classifier is one linear layer on the
    embedding (true for timm CNNs and ViTs), so ``logits = emb @ weight.T + bias`` works on
    embeddings from any runtime (e.g. ONNX). ``None`` otherwise."""
    from torch import nn

    if not getattr(tower, "has_classifier", False):
        return None
    get = getattr(tower.backbone, "get_classifier", None)
    head = get() if callable(get) else None
    if not isinstance(head, nn.Linear) or head.in_features != tower.dim:
        return None
    weight = head.weight.detach().float().cpu().numpy()
    bias = head.bias.detach().float().cpu().numpy() if head.bias is not None else weight[:, 0] * 0.0
    return weight, bias
