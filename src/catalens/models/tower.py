"""Torch modules that turn a preprocessed batch into embeddings (imports torch).

:class:`ImageTower` wraps a backbone (timm, open_clip or transformers) behind one interface:

* ``tower(x)`` -> embeddings ``(N, dim)`` (raw, not normalised); when built with
  ``with_logits=True`` (``load_torch_model(spec, with_classifier=True)``) ``tower(x)`` returns
  ``(embeddings, logits)`` instead.
* ``tower.embed(x)``, ``tower.logits(x)``, ``tower.embed_and_logits(x)`` whatever the flag.
* ``tower.backbone`` the wrapped model (fine-tuning, ``reset_classifier``); ``tower.gradcam_layer()``
  the module whose activations suit Grad-CAM; ``tower.dim``, ``tower.num_classes``.

For timm models the embedding is the pooled pre-logits feature,
``forward_head(forward_features(x), pre_logits=True)`` (1280-d for EfficientNet-Lite0), and the
logits are ``forward_head(forward_features(x))`` (ImageNet-1k for the packaged models).
:class:`HypercolumnTower` (specs with ``features=hypercolumn``, :mod:`catalens.models.features`)
appends the pooled outputs of intermediate stages to that embedding.
"""

from __future__ import annotations

import torch
from torch import nn

from catalens.errors import ModelError


class ImageTower(nn.Module):
    """Base class: ``forward(x)`` returns embeddings, or ``(embeddings, logits)`` with ``with_logits``."""

    def __init__(self, backbone: nn.Module, *, with_logits: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.with_logits = with_logits
        self.dim = 0

    @property
    def num_classes(self) -> int:
        return 0

    @property
    def has_classifier(self) -> bool:
        return self.num_classes > 0

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_and_logits(x)[1]

    def embed_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise ModelError(f"{type(self.backbone).__name__} has no classifier head")

    def gradcam_layer(self) -> nn.Module:
        raise ModelError(f"no Grad-CAM layer known for {type(self.backbone).__name__}")

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.with_logits:
            return self.embed_and_logits(x)
        return self.embed(x)


class TimmTower(ImageTower):
    """A timm model: pooled pre-logits features; logits from its classifier."""

    @property
    def num_classes(self) -> int:
        return int(getattr(self.backbone, "num_classes", 0) or 0)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)

    def embed_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.has_classifier:
            raise ModelError("this model was built without a classifier (num_classes=0)")
        features = self.backbone.forward_features(x)
        emb = self.backbone.forward_head(features, pre_logits=True)
        return emb, self.backbone.forward_head(features)

    def gradcam_layer(self) -> nn.Module:
        model = self.backbone
        # EfficientNet / MobileNet style heads: the 1x1 head conv + BN/act holds the final maps
        for name in ("bn2", "conv_head"):
            module = getattr(model, name, None)
            if isinstance(module, nn.Module) and not isinstance(module, nn.Identity):
                return module
        info = getattr(model, "feature_info", None)
        if info:
            last = info[-1] if isinstance(info, list) else info.get_dicts()[-1]
            return model.get_submodule(last["module"])
        raise ModelError(f"no Grad-CAM layer known for {type(model).__name__}")


class HypercolumnTower(TimmTower):
    """An EfficientNet-style timm model whose embedding adds pooled intermediate stages.

    ``embed(x)`` = ``[l2(final) | w * l2(mean_region(stage)) for each region, for each stage]`` (see
    :mod:`catalens.models.features`); the final part is the plain pooled pre-logits embedding, and
    the logits are the model's own classifier on it. Needs ``conv_stem``, ``bn1``, ``blocks``,
    ``conv_head``, ``bn2`` (EfficientNet / EfficientNet-Lite); other models raise ModelError.
    """

    _PARTS = ("conv_stem", "bn1", "blocks", "conv_head", "bn2")

    def __init__(
        self,
        backbone: nn.Module,
        stages: tuple[int, ...],
        part_weight: float,
        regions: tuple[str, ...] = ("whole",),
        **kw: bool,
    ) -> None:
        super().__init__(backbone, **kw)
        missing = [n for n in self._PARTS if not hasattr(backbone, n)]
        blocks = getattr(backbone, "blocks", None)
        if missing or not isinstance(blocks, nn.Sequential):
            raise ModelError(
                f"hypercolumn features need an EfficientNet-style timm model ({', '.join(self._PARTS)}); "
                f"{type(backbone).__name__} lacks {', '.join(missing) or 'a blocks Sequential'}"
            )
        if max(stages) >= len(blocks):
            raise ModelError(
                f"hypercolumn stages {list(stages)}: the model has {len(blocks)} blocks (0..{len(blocks) - 1})"
            )
        self.stages = tuple(stages)
        self.part_weight = float(part_weight)
        self.regions = tuple(regions)

    @staticmethod
    def _l2(x: torch.Tensor) -> torch.Tensor:
        return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        m = self.backbone
        x = m.bn1(m.conv_stem(x))
        pooled: dict[str, list[torch.Tensor]] = {r: [] for r in self.regions}
        for i, stage in enumerate(m.blocks):
            x = stage(x)
            if i in self.stages:
                for region in self.regions:
                    pooled[region].append(self._pool(x, region))
        final = m.forward_head(m.bn2(m.conv_head(x)), pre_logits=True)
        return final, [p for region in self.regions for p in pooled[region]]

    @staticmethod
    def _pool(x: torch.Tensor, region: str) -> torch.Tensor:
        if region == "centre":  # the central box: half the height, half the width (at least 1 cell)
            h, w = x.shape[-2], x.shape[-1]
            x = x[:, :, h // 4 : h - h // 4, w // 4 : w - w // 4]
        return x.mean(dim=(2, 3))

    def _combine(self, final: torch.Tensor, pooled: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([self._l2(final), *(self._l2(p) * self.part_weight for p in pooled)], dim=1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self._combine(*self._forward(x))

    def embed_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.has_classifier:
            raise ModelError("this model was built without a classifier (num_classes=0)")
        final, pooled = self._forward(x)
        return self._combine(final, pooled), self.backbone.get_classifier()(final)


class OpenClipTower(ImageTower):
    """An open_clip model's image tower (projected image features)."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.encode_image(x)

    def gradcam_layer(self) -> nn.Module:
        visual = self.backbone.visual
        trunk = getattr(visual, "trunk", None)  # timm-based towers
        if trunk is not None:
            return TimmTower(trunk).gradcam_layer()
        blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
        if blocks is not None:
            return blocks[-1]
        return super().gradcam_layer()


def _pooled(output: object) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is not None:
        return pooled.flatten(1) if pooled.dim() > 2 else pooled
    hidden = getattr(output, "last_hidden_state", None)
    if hidden is None and isinstance(output, tuple | list):
        hidden = output[0]
    if hidden is None:
        raise ModelError("the transformers model returned neither pooled nor hidden states")
    return hidden[:, 0] if hidden.dim() == 3 else hidden.mean(dim=(2, 3))


class HfTower(ImageTower):
    """A transformers model: projected image features for CLIP/SigLIP, pooled output otherwise."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        model = self.backbone
        if hasattr(model, "get_image_features"):
            return _pooled(model.get_image_features(pixel_values=x))
        return _pooled(model(pixel_values=x))
