"""transformers models: ``hf:<repo id>`` (from the local HF cache) or ``hf:<local folder>``.

CLIP / SigLIP-style models (a config with both ``vision_config`` and ``text_config``) give
projected image features and a text tower; other vision models (ViT, DINOv2, ConvNeXt, ...)
give their pooled output (CLS token when there is no pooler). Preprocessing comes from the
folder's ``preprocessor_config.json`` (``size.shortest_edge`` + ``crop_size``: resize + centre
crop; ``size.height/width``: plain resize), falling back to the config's image size.
The config is read as JSON, so resolving a name does not import transformers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from catalens.errors import ModelError
from catalens.models import hub
from catalens.models.registry import truthy
from catalens.models.spec import ModelSpec, state_dict_digest

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_RESAMPLE = {2: "bilinear", 3: "bicubic", 0: "nearest", 1: "lanczos", 4: "box", 5: "hamming"}
_LOCAL_HINT = "'hf:/path/to/local/dir' (a folder saved with save_pretrained or downloaded from the hub)"


def _is_local(target: str) -> bool:
    return Path(target).expanduser().is_dir()


def _read_json(target: str, filename: str, *, required: bool, name: str) -> dict[str, Any] | None:
    if _is_local(target):
        path = Path(target).expanduser() / filename
        if not path.is_file():
            if required:
                raise ModelError(f"model {name!r}: {path} is missing")
            return None
    else:
        found = hub.hf_cached_file(target, [filename])
        if found is None and hub.allow_download():
            try:
                from huggingface_hub import hf_hub_download

                found = hf_hub_download(target, filename, etag_timeout=10)
            except Exception as exc:
                if required:
                    raise hub.unavailable(
                        name, f"download failed: {exc}", repo=target, local_hint=_LOCAL_HINT
                    ) from exc
                return None
        if found is None:
            if required:
                raise hub.unavailable(
                    name,
                    f"Hugging Face repo {target} is not in the local cache",
                    repo=target,
                    local_hint=_LOCAL_HINT,
                )
            return None
        path = Path(found)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"model {name!r}: cannot read {path} ({exc})") from exc


def _pair(value: Any) -> tuple[int, int] | None:
    if isinstance(value, int):
        return value, value
    if isinstance(value, dict):
        if "height" in value and "width" in value:
            return int(value["height"]), int(value["width"])
        if "shortest_edge" in value:
            return int(value["shortest_edge"]), int(value["shortest_edge"])
    if isinstance(value, list | tuple) and len(value) == 2:
        return int(value[0]), int(value[1])
    return None


def resolve(name: str, target: str, options: dict[str, str]) -> ModelSpec:
    local = _is_local(target)
    arch = str(Path(target).expanduser().resolve()) if local else target
    config = _read_json(arch, "config.json", required=True, name=name) or {}
    proc = _read_json(arch, "preprocessor_config.json", required=False, name=name) or {}
    model_type = str(config.get("model_type", ""))
    vision = config.get("vision_config") or config
    has_text = "text_config" in config and "vision_config" in config
    clip_like = has_text and "siglip" not in model_type
    default_mean, default_std = (
        (CLIP_MEAN, CLIP_STD)
        if clip_like
        else (((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)) if "siglip" in model_type else (IMAGENET_MEAN, IMAGENET_STD))
    )
    image_size = vision.get("image_size", 224)
    base = _pair(image_size) or (224, 224)
    size = proc.get("size")
    crop = _pair(proc.get("crop_size")) if proc.get("do_center_crop", "crop_size" in proc) else None
    resize_mode, crop_pct = "shortest", 1.0
    if isinstance(size, dict) and "shortest_edge" in size:
        short = int(size["shortest_edge"])
        height, width = crop or (short, short)
        crop_pct = min(1.0, max(height, width) / short)
    elif _pair(size) is not None:
        height, width = crop or _pair(size)  # type: ignore[misc]
        resize_mode = "squash" if crop is None else "shortest"
        if crop is not None:
            crop_pct = min(1.0, max(crop) / max(_pair(size)))  # type: ignore[arg-type]
    else:
        height, width = crop or base
    interpolation = _RESAMPLE.get(proc.get("resample", 3), "bicubic")
    random_init = truthy(options.get("random"))
    return ModelSpec(
        name=name,
        source="hf",
        arch=arch,
        weights=arch if local else None,
        input_size=(3, int(height), int(width)),
        mean=tuple(proc.get("image_mean") or default_mean)[:3],
        std=tuple(proc.get("image_std") or default_std)[:3],
        interpolation=interpolation,
        crop_pct=crop_pct,
        resize_mode=resize_mode,
        has_text=has_text,
        description=f"transformers {model_type or 'model'} {target}",
        license=str(config.get("license", "")),
        random_init=random_init,
        options=(("model_type", model_type),),
    )


def _local_only() -> bool:
    return not hub.allow_download()


def build(spec: ModelSpec) -> tuple[Any, str]:
    """The transformers model (eval mode) and its state-dict digest."""
    from transformers import AutoConfig, AutoModel

    local_only = _local_only()
    try:
        config = AutoConfig.from_pretrained(spec.arch, local_files_only=local_only)
        if spec.random_init:
            from catalens.models.backends.timm_backend import seeded

            with seeded(0):
                model = AutoModel.from_config(config)
        else:
            model = AutoModel.from_pretrained(spec.arch, config=config, local_files_only=local_only)
    except OSError as exc:
        raise hub.unavailable(
            spec.name,
            f"transformers could not load {spec.arch}: {str(exc)[:300]}",
            repo=spec.arch,
            local_hint=_LOCAL_HINT,
        ) from exc
    except (ValueError, KeyError) as exc:
        raise ModelError(f"transformers model {spec.name!r} could not be built: {exc}") from exc
    model.eval()
    return model, state_dict_digest(model.state_dict())


def tokenizer(spec: ModelSpec, model: Any) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(spec.arch, local_files_only=_local_only())
    except (OSError, ValueError) as exc:
        raise hub.unavailable(
            spec.name, f"no tokenizer: {str(exc)[:300]}", repo=spec.arch, local_hint=_LOCAL_HINT
        ) from exc
