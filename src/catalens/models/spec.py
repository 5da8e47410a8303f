"""`ModelSpec`: everything catalens needs to know about a model, as plain data.

A spec is what users pick by name (``efficientnet-lite0``, ``timm:convnext_tiny``, ...); the
registry turns a name into a spec, loaders turn a spec into a torch module, the runtime turns it
into an :class:`~catalens.models.runtime.ImageEncoder`.

Model versions
--------------
Every encoder carries ``version = "<weights hash>-<preprocessing tag>"``:

* weights hash: the first 16 hex characters of a SHA-256 over the weights. For weights that live
  in one file (packaged weights, ``file:`` checkpoints, catalens artefact folders) it is the hash
  of the file's bytes; for hub and randomly initialised weights it is the hash of the state dict
  (tensor names, dtypes, shapes and bytes, in name order) -- see :func:`state_dict_digest`.
* preprocessing tag: ``p`` + 6 hex characters hashing input size, mean, std, interpolation,
  crop_pct, resize mode and :data:`EMBEDDING_REVISION` (bumped when the definition of the
  embedding changes), so changing how pixels are prepared also changes the version.
* runtime tag, only for runtimes other than the reference ones (ONNX Runtime fp32 and torch):
  ``-ov<precision>`` for OpenVINO (``-ovbf16`` where the CPU runs it in bf16, ``-ovf32``); see
  :func:`with_runtime`. Their embeddings are close to, not equal to, the reference ones, so they
  get a vector store of their own.

Two encoders with the same ``model_id`` and ``version`` produce the same embeddings.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from catalens.errors import ModelError

EMBEDDING_REVISION = 1
SOURCES = ("packaged", "timm", "open_clip", "hf", "file")
INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "lanczos", "box", "hamming")
RESIZE_MODES = ("shortest", "squash")


@dataclass(frozen=True)
class ModelSpec:
    """Description of one model.

    ``name`` is the id users type and the ``model_id`` stored with embeddings. ``source`` says
    which loader builds it; ``arch`` is the timm / open_clip architecture (or the HF repo / local
    folder for ``hf``); ``weights`` is the pretrained tag, file path, package module or ``None``
    (the architecture's default pretrained tag, or random weights when ``random_init``).

    Preprocessing: resize so the image covers ``input_size / crop_pct`` (``resize_mode``
    ``"shortest"`` keeps the aspect ratio, ``"squash"`` does not), centre-crop to ``input_size``,
    scale to [0, 1], subtract ``mean``, divide by ``std``.

    ``dim`` is the embedding size (``None``: known once loaded). ``has_image`` / ``has_text`` say
    which towers exist; ``text_dim`` is the text embedding size. ``num_classes`` is the size of
    the classifier kept on timm models (``None``: the architecture's default). ``options`` holds
    backend-specific extras as ``(key, value)`` string pairs.
    """

    name: str
    source: str
    arch: str
    weights: str | None = None
    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    dim: int | None = None
    has_text: bool = False
    text_dim: int | None = None
    description: str = ""
    license: str = ""
    has_image: bool = True
    resize_mode: str = "shortest"
    num_classes: int | None = None
    random_init: bool = False
    options: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ModelError(f"model {self.name!r}: unknown source {self.source!r}; use one of {SOURCES}")
        if self.interpolation not in INTERPOLATIONS:
            raise ModelError(
                f"model {self.name!r}: unknown interpolation {self.interpolation!r}; use one of {INTERPOLATIONS}"
            )
        if self.resize_mode not in RESIZE_MODES:
            raise ModelError(f"model {self.name!r}: unknown resize_mode {self.resize_mode!r}")
        if len(self.input_size) != 3 or min(self.input_size) < 1:
            raise ModelError(f"model {self.name!r}: input_size must be (channels, height, width)")
        if not 0.0 < self.crop_pct <= 1.0:
            raise ModelError(f"model {self.name!r}: crop_pct must be in (0, 1], got {self.crop_pct}")
        # normalise sequences so specs from JSON compare equal to specs from code
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "options", tuple((str(k), str(v)) for k, v in self.options))

    def option(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.options:
            if k == key:
                return v
        return default

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the network input."""
        return self.input_size[1], self.input_size[2]

    @property
    def kind(self) -> str:
        """``"image"``, ``"text"`` or ``"image+text"``."""
        if not self.has_image:
            return "text"
        return "image+text" if self.has_text else "image"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the fields (plus the derived ``kind``); :meth:`from_dict` reads it back."""
        data = asdict(self)
        data["kind"] = self.kind
        data["input_size"] = list(self.input_size)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        data["options"] = dict(self.options)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if isinstance(kwargs.get("options"), dict):
            kwargs["options"] = tuple(kwargs["options"].items())
        for key in ("input_size", "mean", "std"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


def safe_id(name: str, max_len: int = 80) -> str:
    """A file-name-safe form of a model id (long ids keep a hash suffix to stay unique)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
    if len(safe) > max_len or safe != name:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        safe = f"{safe[: max_len - 9]}_{digest}"
    return safe


def preprocess_tag(spec: ModelSpec) -> str:
    """Short tag hashing every preprocessing parameter (see module docs)."""
    payload = json.dumps(
        [
            list(spec.input_size),
            [round(v, 6) for v in spec.mean],
            [round(v, 6) for v in spec.std],
            spec.interpolation,
            round(spec.crop_pct, 6),
            spec.resize_mode,
            EMBEDDING_REVISION,
        ]
    )
    return "p" + hashlib.sha256(payload.encode()).hexdigest()[:6]


def make_version(
    weights_digest: str, spec: ModelSpec, *, text: bool = False, runtime: str | None = None
) -> str:
    """``<weights hash[:16]>-<preprocessing tag>`` (``-t<rev>`` for text towers), plus
    ``-<feature tag>`` for towers with non-default features (:func:`catalens.models.features.feature_tag`),
    plus ``-<runtime tag>`` for a runtime whose embeddings differ from the fp32 reference
    (:func:`with_runtime`)."""
    if text:
        return with_runtime(f"{weights_digest[:16]}-t{EMBEDDING_REVISION}", runtime)
    from catalens.models.features import feature_tag

    tag = feature_tag(spec)
    return with_runtime(f"{weights_digest[:16]}-{preprocess_tag(spec)}" + (f"-{tag}" if tag else ""), runtime)


def with_runtime(version: str, runtime: str | None) -> str:
    """``version`` tagged with the runtime that computed the embeddings (``None``/``""``: the
    reference runtimes, ONNX Runtime fp32 and torch, whose embeddings agree to cosine >= 0.9999).

    A tag such as ``ovbf16`` (OpenVINO, bf16 inference) keeps embeddings of another numeric path
    in their own vector store: they are never mixed silently with the reference ones."""
    if not runtime:
        return version
    if not re.fullmatch(r"[a-z0-9]+", runtime):
        raise ModelError(f"runtime tag {runtime!r}: use lower-case letters and digits")
    return f"{version}-{runtime}"


@lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file's bytes (memoised per path, size and mtime)."""
    p = Path(path)
    st = p.stat()
    return _file_digest(str(p.resolve()), st.st_size, st.st_mtime_ns)


def state_dict_digest(state_dict: Any) -> str:
    """SHA-256 hex digest over a torch state dict: names, dtypes, shapes and raw bytes."""
    import torch

    h = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key]
        if not isinstance(tensor, torch.Tensor):
            continue
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()
