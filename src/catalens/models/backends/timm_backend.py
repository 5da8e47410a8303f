"""timm models: ``timm:<model>[.<tag>]`` names and ``file:<checkpoint>?arch=<model>`` checkpoints.

Preprocessing comes from timm's own pretrained config for the model (no model is built to
read it). Pretrained weights are read from the local Hugging Face / torch hub caches only
(see :mod:`catalens.models.hub`).
"""

from __future__ import annotations

import contextlib
from typing import Any

from catalens.errors import ModelError
from catalens.models import hub
from catalens.models.registry import truthy
from catalens.models.spec import ModelSpec, state_dict_digest


def _int_option(name: str, options: dict[str, str], key: str) -> int | None:
    if key not in options:
        return None
    try:
        return int(options[key])
    except ValueError as exc:
        raise ModelError(f"model {name!r}: option {key}={options[key]!r} is not an integer") from exc


def create_timm(arch: str, *, pretrained: bool = False, num_classes: int | None = None, **kwargs: Any) -> Any:
    """``timm.create_model`` with errors turned into ModelError."""
    import timm

    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    try:
        return timm.create_model(arch, pretrained=pretrained, **kwargs)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"timm model {arch!r} could not be built: {exc}") from exc


def pretrained_cfg(arch: str, name: str | None = None) -> Any:
    """timm's pretrained config for ``arch`` (``model`` or ``model.tag``); ModelError if unknown."""
    import timm
    from timm.models import get_pretrained_cfg

    label = name or arch
    base = arch.split(".", 1)[0]
    if not timm.is_model(base):
        close = timm.list_models(f"*{base[:12]}*")[:8]
        hint = f" Similar: {', '.join(close)}." if close else ""
        raise ModelError(f"model {label!r}: timm has no model {base!r}.{hint}")
    try:
        cfg = get_pretrained_cfg(arch)
    except RuntimeError:
        cfg = None
    if cfg is None:
        tags = timm.list_pretrained(f"{base}.*")[:12]
        raise ModelError(
            f"model {label!r}: timm knows no pretrained tag {arch!r}. Known: {', '.join(tags) or 'none'}"
        )
    return cfg


def spec_from_cfg(
    name: str,
    source: str,
    arch: str,
    cfg: Any,
    *,
    weights: str | None,
    random_init: bool = False,
    num_classes: int | None = None,
    options: tuple[tuple[str, str], ...] = (),
) -> ModelSpec:
    interpolation = (
        cfg.interpolation if cfg.interpolation in ("bicubic", "bilinear", "nearest") else "bicubic"
    )
    return ModelSpec(
        name=name,
        source=source,
        arch=arch,
        weights=weights,
        input_size=tuple(cfg.input_size),
        mean=tuple(cfg.mean),
        std=tuple(cfg.std),
        interpolation=interpolation,
        crop_pct=float(cfg.crop_pct or 1.0),
        resize_mode="squash" if cfg.crop_mode == "squash" else "shortest",
        description=f"timm {arch}" + (" (random weights)" if random_init else ""),
        license=cfg.license or "",
        random_init=random_init,
        num_classes=num_classes,
        options=options,
    )


def resolve(name: str, target: str, options: dict[str, str]) -> ModelSpec:
    cfg = pretrained_cfg(target, name)
    random_init = truthy(options.get("random"))
    return spec_from_cfg(
        name,
        "timm",
        target,
        cfg,
        weights=None if random_init else (cfg.tag or None),
        random_init=random_init,
        num_classes=_int_option(name, options, "num_classes"),
    )


def local_weights(cfg: Any) -> str | None:
    """A local file holding ``cfg``'s pretrained weights (explicit file, HF cache, torch hub cache)."""
    if cfg.file:
        return str(cfg.file)
    if cfg.hf_hub_id:
        names = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
        found = hub.hf_cached_file(cfg.hf_hub_id, names)
        if found:
            return found
    return hub.torch_hub_cached_file(cfg.url or "")


@contextlib.contextmanager
def seeded(seed: int = 0):
    """Deterministic random init without disturbing the caller's RNG state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build(spec: ModelSpec) -> tuple[Any, str]:
    """The timm model (eval mode) and the digest of its state dict."""
    if spec.random_init:
        with seeded(0):
            model = create_timm(spec.arch, pretrained=False, num_classes=spec.num_classes)
        model.eval()
        return model, state_dict_digest(model.state_dict())
    cfg = pretrained_cfg(spec.arch, spec.name)
    local = local_weights(cfg)
    if local:
        model = create_timm(
            spec.arch, pretrained=True, num_classes=spec.num_classes, pretrained_cfg_overlay={"file": local}
        )
    elif hub.allow_download():
        try:
            model = create_timm(spec.arch, pretrained=True, num_classes=spec.num_classes)
        except Exception as exc:
            raise hub.unavailable(
                spec.name, f"download failed: {exc}", repo=cfg.hf_hub_id, arch=spec.arch
            ) from exc
    else:
        where = f"Hugging Face repo {cfg.hf_hub_id}" if cfg.hf_hub_id else (cfg.url or "no source")
        raise hub.unavailable(
            spec.name, f"not in the local cache: {where}", repo=cfg.hf_hub_id, arch=spec.arch
        )
    model.eval()
    return model, state_dict_digest(model.state_dict())


def build_from_checkpoint(spec: ModelSpec, path: str) -> Any:
    """A timm model of ``spec.arch`` loaded from a local checkpoint (classifier size from the file)."""
    from catalens.models.backends.packaged import load_position_mapped

    if spec.option("map") == "position":
        model = create_timm(spec.arch, pretrained=False, num_classes=spec.num_classes)
        load_position_mapped(model, path)
        return model.eval()
    from timm.models import load_state_dict

    try:
        state = load_state_dict(path, use_ema=True)
    except Exception as exc:
        raise ModelError(f"{path}: cannot read checkpoint ({exc})") from exc
    state = {k.removeprefix("module."): v for k, v in state.items()}
    num_classes = spec.num_classes
    if num_classes is None:
        probe = create_timm(spec.arch, pretrained=False)
        head = (probe.pretrained_cfg or {}).get("classifier") or ""
        heads = head if isinstance(head, list | tuple) else [head]
        key = next((f"{h}.weight" for h in heads if f"{h}.weight" in state), None)
        num_classes = int(state[key].shape[0]) if key else 0
    model = create_timm(spec.arch, pretrained=False, num_classes=num_classes)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(
            f"{path}: checkpoint does not fit timm model {spec.arch!r}: {str(exc)[:800]}"
        ) from exc
    return model.eval()
