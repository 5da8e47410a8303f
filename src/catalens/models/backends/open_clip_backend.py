"""open_clip models: ``open_clip:<arch>/<pretrained tag or weights file>`` (optional dependency).

Preprocessing comes from open_clip's configs: image size from the model config, mean / std /
interpolation / resize mode from the pretrained tag's config (OpenAI CLIP constants by default);
open_clip resizes the shorter side to the input size and centre-crops, so ``crop_pct`` is 1.
Weights come from the local Hugging Face cache only (see :mod:`catalens.models.hub`).
``open_clip:<arch>?random=1`` builds random weights (tests).
"""

from __future__ import annotations

from typing import Any

from catalens.errors import ModelError
from catalens.models import hub
from catalens.models.registry import truthy
from catalens.models.spec import ModelSpec, state_dict_digest

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
_WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def import_open_clip() -> Any:
    try:
        import open_clip
    except ImportError as exc:
        raise ModelError("open_clip models need the optional package: pip install open_clip_torch") from exc
    return open_clip


def _split(target: str) -> tuple[str, str | None]:
    arch, sep, pretrained = target.partition("/")
    return arch.strip(), (pretrained.strip() or None) if sep else None


def resolve(name: str, target: str, options: dict[str, str]) -> ModelSpec:
    open_clip = import_open_clip()
    from pathlib import Path

    arch, pretrained = _split(target)
    model_cfg = open_clip.get_model_config(arch)
    if model_cfg is None:
        known = ", ".join(open_clip.list_models()[:20])
        raise ModelError(f"model {name!r}: open_clip has no architecture {arch!r}. Known: {known}, ...")
    random_init = truthy(options.get("random"))
    cfg: dict[str, Any] = {}
    weights: str | None = None
    if not random_init:
        if not pretrained:
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
            raise ModelError(f"model {name!r}: name the weights: open_clip:{arch}/<tag>. Tags: {tags}")
        cfg = open_clip.get_pretrained_cfg(arch, pretrained) or {}
        if not cfg and not Path(pretrained).expanduser().is_file():
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
            raise ModelError(
                f"model {name!r}: {pretrained!r} is neither an open_clip tag for {arch} nor a file. Tags: {tags}"
            )
        weights = pretrained
    size = model_cfg["vision_cfg"].get("image_size", 224)
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    interpolation = cfg.get("interpolation") or "bicubic"
    dim = int(model_cfg["embed_dim"])
    return ModelSpec(
        name=name,
        source="open_clip",
        arch=arch,
        weights=weights,
        input_size=(3, int(height), int(width)),
        mean=tuple(cfg.get("mean") or OPENAI_MEAN),
        std=tuple(cfg.get("std") or OPENAI_STD),
        interpolation=interpolation if interpolation in ("bicubic", "bilinear") else "bicubic",
        crop_pct=1.0,
        resize_mode="squash" if cfg.get("resize_mode") == "squash" else "shortest",
        dim=dim,
        has_text=True,
        text_dim=dim,
        description=f"open_clip {arch}" + (f" {pretrained}" if pretrained else " (random weights)"),
        license=str(cfg.get("license", "")),
        random_init=random_init,
        options=(("quick_gelu", "1"),) if cfg.get("quick_gelu") else (),
    )


def _local_checkpoint(spec: ModelSpec, cfg: dict[str, Any]) -> str:
    from pathlib import Path

    pretrained = spec.weights or ""
    hint = f"'open_clip:{spec.arch}/path/to/open_clip_model.safetensors' (a local weights file)"
    if not cfg:
        return str(Path(pretrained).expanduser())
    if cfg.get("file"):
        return str(cfg["file"])
    repo = ""
    if cfg.get("hf_hub"):
        repo, filename = cfg["hf_hub"].rstrip("/"), None
        if not cfg["hf_hub"].endswith("/"):
            repo, filename = cfg["hf_hub"].rsplit("/", 1)
        names = [filename] if filename else list(_WEIGHT_NAMES)
        if filename and filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
        found = hub.hf_cached_file(repo, names)
        if found:
            return found
    found = hub.torch_hub_cached_file(cfg.get("url", ""))
    if found:
        return found
    if hub.allow_download():
        open_clip = import_open_clip()
        try:
            return str(open_clip.download_pretrained(cfg))
        except Exception as exc:
            raise hub.unavailable(
                spec.name, f"download failed: {exc}", repo=repo or None, local_hint=hint
            ) from exc
    raise hub.unavailable(
        spec.name,
        f"open_clip weights {spec.arch}/{pretrained} not in the local cache",
        repo=repo or None,
        local_hint=hint,
    )


def build(spec: ModelSpec) -> tuple[Any, str]:
    """The open_clip model (eval mode, both towers) and its state-dict digest."""
    open_clip = import_open_clip()
    kwargs: dict[str, Any] = {
        "force_quick_gelu": spec.option("quick_gelu") == "1",
        "pretrained_text": False,  # never fetch base text-tower weights from the hub
    }
    try:
        if spec.random_init:
            from catalens.models.backends.timm_backend import seeded

            with seeded(0):
                model = open_clip.create_model(spec.arch, pretrained=None, **kwargs)
        else:
            cfg = open_clip.get_pretrained_cfg(spec.arch, spec.weights or "") or {}
            checkpoint = _local_checkpoint(spec, cfg)
            model = open_clip.create_model(spec.arch, pretrained=checkpoint, **kwargs)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"open_clip model {spec.name!r} could not be built: {exc}") from exc
    model.eval()
    return model, state_dict_digest(model.state_dict())


def tokenizer(spec: ModelSpec, model: Any) -> Any:
    open_clip = import_open_clip()
    try:
        return open_clip.get_tokenizer(spec.arch)
    except Exception as exc:
        raise hub.unavailable(spec.name, f"tokenizer unavailable: {exc}") from exc
