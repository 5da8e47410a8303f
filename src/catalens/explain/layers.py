"""Where a backbone keeps its last spatial features, and how to read them as ``(N, C, h, w)``.

Explanations hook one module of the backbone (its "spatial layer") and read its output as a
feature map. Backbones store that map in different layouts, so each family has an adapter:

* CNNs (EfficientNet, ResNet, ConvNeXt, ...): the module from ``tower.gradcam_layer()`` (the
  final 1x1 head conv + BN/act for EfficientNet), already ``NCHW``;
* ViT-style token models (timm ``VisionTransformer`` / ``Eva`` / DeiT): the input of the last
  block's attention (``blocks[-1].norm1``), ``(N, T, C)`` tokens with the prefix (class,
  register) tokens dropped and the patch tokens reshaped to the patch grid. The output of the
  last block is not used: with class-token pooling the patch tokens there do not reach the
  logits, so their gradient is zero;
* Swin / other ``NHWC`` models: the last stage's output, permuted to ``NCHW``.

:func:`spatial_layer` picks the adapter; :func:`register_adapter` adds one for another family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from catalens.errors import ModelError
from catalens.registry import Registry


@dataclass
class SpatialLayer:
    """A module whose output is a feature map, plus how to read it as ``NCHW``.

    ``kind`` is ``"conv"`` (already NCHW), ``"tokens"`` (ViT tokens) or ``"nhwc"`` (Swin).
    """

    module: nn.Module
    kind: str
    to_nchw: Callable[[torch.Tensor], torch.Tensor]
    name: str = ""


Adapter = Callable[[nn.Module, Any], SpatialLayer | None]
ADAPTERS: Registry[Adapter] = Registry("layer adapter")


def register_adapter(name: str, adapter: Adapter, *, first: bool = False, overwrite: bool = False) -> None:
    """Add an adapter: ``adapter(backbone, tower) -> SpatialLayer | None`` (None: not this family).
    Adapters are tried in registration order; ``first`` puts this one ahead of the others."""
    ADAPTERS.register(name, adapter, first=first, overwrite=overwrite)


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 3, 1, 2)


def _token_grid(backbone: nn.Module) -> tuple[int, int] | None:
    embed = getattr(backbone, "patch_embed", None)
    grid = getattr(embed, "grid_size", None)
    if grid is None:
        return None
    return int(grid[0]), int(grid[1])


def tokens_to_nchw(prefix: int, grid: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``(N, prefix + gh*gw, C)`` tokens -> ``(N, C, gh, gw)`` patch map."""
    gh, gw = grid

    def convert(t: torch.Tensor) -> torch.Tensor:
        if t.dim() != 3:
            raise ModelError(f"expected (N, tokens, C), got {tuple(t.shape)}")
        n = t.shape[1] - prefix
        h, w = gh, gw
        if n != gh * gw:  # dynamic image size: a square grid
            side = round(n**0.5)
            if side * side != n:
                raise ModelError(f"{n} patch tokens do not form the {gh}x{gw} grid or a square one")
            h = w = side
        patches = t[:, prefix:, :]
        return patches.reshape(t.shape[0], h, w, t.shape[2]).permute(0, 3, 1, 2)

    return convert


def _vit_adapter(backbone: nn.Module, tower: Any) -> SpatialLayer | None:
    blocks = getattr(backbone, "blocks", None)
    grid = _token_grid(backbone)
    if blocks is None or grid is None or not len(blocks):
        return None
    last = blocks[-1]
    module = getattr(last, "norm1", None) or last
    prefix = int(
        getattr(backbone, "num_prefix_tokens", 1 if getattr(backbone, "cls_token", None) is not None else 0)
    )
    name = f"blocks.{len(blocks) - 1}.norm1" if module is not last else f"blocks.{len(blocks) - 1}"
    return SpatialLayer(module, "tokens", tokens_to_nchw(prefix, grid), name)


def _swin_adapter(backbone: nn.Module, tower: Any) -> SpatialLayer | None:
    layers = getattr(backbone, "layers", None)
    fmt = getattr(backbone, "output_fmt", None)
    if layers is None or str(fmt).upper() != "NHWC" or not len(layers):
        return None
    return SpatialLayer(layers[-1], "nhwc", _nhwc, f"layers.{len(layers) - 1}")


def _conv_adapter(backbone: nn.Module, tower: Any) -> SpatialLayer | None:
    try:
        module = tower.gradcam_layer()
    except ModelError:
        return None
    name = next((n for n, m in backbone.named_modules() if m is module), type(module).__name__)
    return SpatialLayer(module, "conv", _identity, name)


register_adapter("vit", _vit_adapter)
register_adapter("swin", _swin_adapter)
register_adapter("conv", _conv_adapter)


def spatial_layer(tower: Any) -> SpatialLayer:
    """The :class:`SpatialLayer` of an :class:`~catalens.models.tower.ImageTower` (ModelError if none)."""
    backbone = getattr(tower, "backbone", tower)
    for adapter in ADAPTERS.values():
        found = adapter(backbone, tower)
        if found is not None:
            return found
    raise ModelError(
        f"no spatial feature layer known for {type(backbone).__name__}; "
        "register one with catalens.explain.layers.register_adapter"
    )


class FeatureHook:
    """Context manager recording a layer's output during a forward pass.

    With ``grads=True`` the output is replaced by a detached leaf tensor that requires grad, so
    ``torch.autograd.grad(score, hook.leaf)`` computes only the part of the backward pass between
    the score and this layer (no weight gradients, nothing accumulated on the model).
    ``activation`` is the output read as ``NCHW``; :meth:`gradient_of` the matching gradient.
    """

    def __init__(self, layer: SpatialLayer, *, grads: bool = True) -> None:
        self.layer = layer
        self.want_grads = grads
        self.leaf: torch.Tensor | None = None
        self.activation: torch.Tensor | None = None
        self._handle: Any = None

    def _hook(self, _module: nn.Module, _inputs: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor):
            raise ModelError(f"layer {self.layer.name} returned {type(output).__name__}, not a tensor")
        if self.want_grads:
            output = output.detach().requires_grad_(True)
        self.leaf = output
        self.activation = self.layer.to_nchw(output)
        return output

    def gradient_of(self, score: torch.Tensor) -> torch.Tensor:
        """d score / d activation, as ``NCHW`` (zeros when the score does not depend on the layer)."""
        if self.leaf is None:
            raise ModelError(f"layer {self.layer.name} was not run by the forward pass")
        (grad,) = torch.autograd.grad(score, self.leaf, allow_unused=True, retain_graph=False)
        if grad is None:
            grad = torch.zeros_like(self.leaf)
        return self.layer.to_nchw(grad)

    def __enter__(self) -> FeatureHook:
        self._handle = self.layer.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
