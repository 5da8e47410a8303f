"""Models: registry of specs, preprocessing, loaders, ONNX/torch image encoders, text encoders.

Importing this package is cheap (no torch, numpy or Pillow); heavy modules load on first use::

    from catalens.models import load_image_encoder, load_text_encoder, get_spec

    enc = load_image_encoder("efficientnet-lite0")        # ONNX Runtime on CPU, torch on CUDA
    x = enc.preprocess.batch([pil_image])                 # float32 (N, 3, 224, 224)
    emb = enc.encode(x)                                   # float32 (N, 1280), not normalised
    txt = load_text_encoder("minilm").encode(["red shirt"])  # (1, 384), L2-normalised

See :mod:`catalens.models.registry` for model names, :mod:`catalens.models.spec` for versions,
:mod:`catalens.models.finetuned` for the fine-tuned model folder format.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from catalens.models.registry import (
    get_spec,
    list_models,
    model_names,
    parse_model_name,
    register_model,
    unregister_model,
)
from catalens.models.spec import ModelSpec, make_version, preprocess_tag, safe_id

if TYPE_CHECKING:
    from catalens.models.finetuned import load_artifact_spec, register_artifact, save_artifact
    from catalens.models.loader import load_torch_model
    from catalens.models.preprocess import Preprocessor
    from catalens.models.runtime import (
        ImageEncoder,
        OnnxImageEncoder,
        OpenVinoImageEncoder,
        TorchImageEncoder,
        load_image_encoder,
    )
    from catalens.models.text import TextEncoder, load_text_encoder
    from catalens.models.tower import ImageTower

_LAZY = {
    "Preprocessor": "catalens.models.preprocess",
    "ImageEncoder": "catalens.models.runtime",
    "OnnxImageEncoder": "catalens.models.runtime",
    "OpenVinoImageEncoder": "catalens.models.runtime",
    "TorchImageEncoder": "catalens.models.runtime",
    "load_image_encoder": "catalens.models.runtime",
    "TextEncoder": "catalens.models.text",
    "load_text_encoder": "catalens.models.text",
    "load_torch_model": "catalens.models.loader",
    "ImageTower": "catalens.models.tower",
    "save_artifact": "catalens.models.finetuned",
    "load_artifact_spec": "catalens.models.finetuned",
    "register_artifact": "catalens.models.finetuned",
}

__all__ = [
    "ImageEncoder",
    "ImageTower",
    "ModelSpec",
    "OnnxImageEncoder",
    "OpenVinoImageEncoder",
    "Preprocessor",
    "TextEncoder",
    "TorchImageEncoder",
    "get_spec",
    "list_models",
    "load_artifact_spec",
    "load_image_encoder",
    "load_text_encoder",
    "load_torch_model",
    "make_version",
    "model_names",
    "parse_model_name",
    "preprocess_tag",
    "register_artifact",
    "register_model",
    "safe_id",
    "save_artifact",
    "unregister_model",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'catalens.models' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
