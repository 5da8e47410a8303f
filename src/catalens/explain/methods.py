"""Saliency methods: Grad-CAM, Grad-CAM++, attention rollout, and pytorch-grad-cam's others.

Every method has the same signature (see :data:`Method`)::

    method(tower, layer, x, target, label) -> MethodOutput(map, logits, index)

``x`` is a ``(1, 3, H, W)`` input, ``label`` the class index to explain (``None``: the top
class). ``map`` is a non-negative 2-D array at any resolution (the feature grid for CAMs);
callers upsample it to the input. Methods are looked up by name in a registry
(:func:`register_method`, :func:`get_method`, :func:`method_names`).

Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhay et al. 2018) are implemented here
directly: one forward pass and one partial backward pass (from the score down to the hooked
layer only, see :class:`~catalens.explain.layers.FeatureHook`), the same formulas as
pytorch-grad-cam (a test checks the two agree). On ViT tokens and Swin maps they run on the
patch grid ("token Grad-CAM"). ``rollout`` is attention rollout (Abnar & Zuidema 2020) for
ViT-style models: class-agnostic, it shows where the class token attends through all layers.
``lib:<name>`` runs a pytorch-grad-cam method (``pip install catalens[explain]``), e.g.
``lib:layercam``, ``lib:xgradcam``, ``lib:eigencam``, ``lib:scorecam``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from catalens.errors import ConfigError, ModelError, NoGradientPathError
from catalens.explain.layers import FeatureHook, SpatialLayer
from catalens.explain.targets import resolve_label
from catalens.registry import Registry

EPS = 1e-7


@dataclass
class MethodOutput:
    """A saliency map (2-D, >= 0, any resolution), the logits of the input and the explained class."""

    map: np.ndarray
    logits: np.ndarray
    index: int


Method = Callable[[Any, SpatialLayer, torch.Tensor, Any, int | None], MethodOutput]
METHODS: Registry[Method] = Registry("explanation method", extra_names=("lib:<pytorch-grad-cam method>",))
_KINDS: dict[str, tuple[str, ...]] = {}


def register_method(
    name: str, fn: Method, *, kinds: tuple[str, ...] = ("conv", "tokens", "nhwc"), overwrite: bool = False
) -> None:
    """Make ``fn`` available as method ``name`` for layers of ``kinds`` (conv, tokens, nhwc)."""
    METHODS.register(name, fn, overwrite=overwrite)
    _KINDS[name] = kinds


def method_names() -> list[str]:
    return [*METHODS.names(), *METHODS.extra_names]


def get_method(name: str, layer: SpatialLayer | None = None) -> Method:
    """The method called ``name`` (``lib:*`` names load pytorch-grad-cam); ConfigError if unknown."""
    key = name.strip().lower()
    if key.startswith("lib:"):
        return _library_method(key[4:])
    if key not in METHODS:
        raise ConfigError(METHODS.unknown_message(name))
    fn = METHODS.get(key)
    if layer is not None and layer.kind not in _KINDS[key]:
        raise ConfigError(f"method {name!r} does not apply to {layer.kind} models ({layer.name})")
    return fn


# ---- gradient CAMs ---------------------------------------------------------------------------


def gradient_pass(
    tower: Any, layer: SpatialLayer, x: torch.Tensor, target: Any, label: int | None
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, int]:
    """One forward + partial backward: (activations NCHW, gradients NCHW, logits, class index)."""
    with torch.enable_grad(), FeatureHook(layer, grads=True) as hook:
        logits = target.logits(tower, x)
        index = resolve_label(target, label, logits.detach()) if label is None else int(label)
        if hook.activation is None:
            raise NoGradientPathError(f"layer {layer.name} was not used by the forward pass")
        if not logits.requires_grad:
            raise NoGradientPathError(f"{target.name}: the score does not depend on layer {layer.name}")
        grads = hook.gradient_of(logits[0, index])
        acts = hook.activation.detach()
    return acts, grads.detach(), logits.detach()[0].float().numpy(), index


def gradcam_weights(acts: torch.Tensor, grads: torch.Tensor, variant: str) -> torch.Tensor:
    """Channel weights ``(N, C)`` of Grad-CAM (``"gradcam"``) or Grad-CAM++ (``"gradcam++"``)."""
    if variant == "gradcam":
        return grads.mean(dim=(2, 3))
    if variant == "gradcam++":
        g2 = grads.pow(2)
        g3 = g2 * grads
        sum_acts = acts.sum(dim=(2, 3), keepdim=True)
        alpha = g2 / (2 * g2 + sum_acts * g3 + EPS)
        alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
        return (torch.relu(grads) * alpha).sum(dim=(2, 3))
    raise ConfigError(f"unknown Grad-CAM variant {variant!r}")


def cam_from(acts: torch.Tensor, grads: torch.Tensor, variant: str) -> np.ndarray:
    """ReLU of the weighted sum of the feature maps: ``(h, w)`` float32 (first image)."""
    weights = gradcam_weights(acts.float(), grads.float(), variant)
    cam = torch.relu((weights[:, :, None, None] * acts.float()).sum(dim=1))
    return cam[0].numpy().astype(np.float32)


def _grad_method(variant: str) -> Method:
    def method(
        tower: Any, layer: SpatialLayer, x: torch.Tensor, target: Any, label: int | None
    ) -> MethodOutput:
        acts, grads, logits, index = gradient_pass(tower, layer, x, target, label)
        if not torch.any(grads != 0):
            raise NoGradientPathError(
                f"no gradient reached layer {layer.name} from {target.name} label {index}: "
                "the score does not depend on these features"
            )
        return MethodOutput(cam_from(acts, grads, variant), logits, index)

    method.__name__ = variant.replace("+", "p")
    return method


register_method("gradcam", _grad_method("gradcam"))
register_method("gradcam++", _grad_method("gradcam++"))


# ---- attention rollout -----------------------------------------------------------------------


def _attention_modules(tower: Any) -> list[torch.nn.Module]:
    backbone = getattr(tower, "backbone", tower)
    blocks = getattr(backbone, "blocks", None)
    mods = [getattr(b, "attn", None) for b in (blocks or [])]
    if not mods or any(
        m is None or not hasattr(m, "attn_drop") or not hasattr(m, "fused_attn") for m in mods
    ):
        raise ConfigError(
            f"attention rollout needs a ViT-style model with timm attention blocks, not {type(backbone).__name__}"
        )
    return mods  # type: ignore[return-value]


def rollout(tower: Any, layer: SpatialLayer, x: torch.Tensor, target: Any, label: int | None) -> MethodOutput:
    """Attention rollout: product over layers of (head-averaged attention + identity), row-normalised;
    the class token's row over the patch grid (the mean row when the model has no prefix token)."""
    attns = _attention_modules(tower)
    backbone = getattr(tower, "backbone", tower)
    prefix = int(getattr(backbone, "num_prefix_tokens", 1))
    maps: list[torch.Tensor] = []
    handles = []
    saved = [m.fused_attn for m in attns]
    try:
        for m in attns:
            m.fused_attn = False  # the fused kernel never materialises the attention matrix
            handles.append(m.attn_drop.register_forward_hook(lambda _m, _i, out: maps.append(out.detach())))
        with torch.no_grad():
            logits = target.logits(tower, x)
    finally:
        for h in handles:
            h.remove()
        for m, fused in zip(attns, saved, strict=True):
            m.fused_attn = fused
    if len(maps) != len(attns):
        raise ModelError(f"attention rollout captured {len(maps)} attention maps for {len(attns)} blocks")
    tokens = maps[0].shape[-1]
    joint = torch.eye(tokens)
    for att in maps:
        a = att[0].float().mean(dim=0) + torch.eye(tokens)
        a = a / a.sum(dim=-1, keepdim=True)
        joint = a @ joint
    row = joint[0] if prefix > 0 else joint[prefix:].mean(dim=0)
    grid = layer.to_nchw(row[None, :, None].expand(1, tokens, 1))[0, 0]
    index = resolve_label(target, label, logits) if label is None else int(label)
    return MethodOutput(grid.numpy().astype(np.float32), logits[0].float().numpy(), index)


register_method("rollout", rollout, kinds=("tokens",))


# ---- pytorch-grad-cam -------------------------------------------------------------------------


class _ScoreModule(torch.nn.Module):
    def __init__(self, tower: Any, target: Any) -> None:
        super().__init__()
        self.tower = tower
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.target.logits(self.tower, x)


def _library_method(name: str) -> Method:
    try:
        import pytorch_grad_cam as pgc
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError as exc:
        raise ConfigError(
            f"method lib:{name} needs pytorch-grad-cam: pip install 'catalens[explain]' (grad-cam)"
        ) from exc
    from pytorch_grad_cam.base_cam import BaseCAM

    classes = {
        n.lower(): obj
        for n in dir(pgc)
        if isinstance(obj := getattr(pgc, n), type) and issubclass(obj, BaseCAM) and obj is not BaseCAM
    }
    cls = classes.get(name.replace("-", "").replace("_", "").replace("++", "plusplus"))
    if cls is None:
        raise ConfigError(f"pytorch-grad-cam has no method {name!r}; known: {', '.join(sorted(classes))}")

    def method(
        tower: Any, layer: SpatialLayer, x: torch.Tensor, target: Any, label: int | None
    ) -> MethodOutput:
        with torch.no_grad():
            logits = target.logits(tower, x)
        index = resolve_label(target, label, logits) if label is None else int(label)
        model = _ScoreModule(tower, target).eval()
        reshape = None if layer.kind == "conv" else layer.to_nchw
        with cls(model=model, target_layers=[layer.module], reshape_transform=reshape) as cam:
            out = cam(input_tensor=x, targets=[ClassifierOutputTarget(index)])
        return MethodOutput(np.asarray(out[0], dtype=np.float32), logits[0].float().numpy(), index)

    return method
