"""Classifier artefacts: versioned folders under ``<home>/classifiers/<name>/<version>/``.

Layout (format ``catalens.classifier/1``)::

    <home>/classifiers/<name>/
      LATEST                 the newest version (a text file)
      <version>/
        classifier.json      metadata: name, version, method, model (id + version), input
                             ("image", or "image" + "+text", "+words", "+colour" parts in that
                             order: fused title / colour inputs), fields (classes, parent field, head kind,
                             temperature, abstain threshold), hierarchy paths, data, metrics
        heads.npz            per field ``<field>.W`` (C, D) and ``<field>.b`` (C,)

Every head is affine on the L2-normalised embedding: ``logits = e @ W.T + b``. A linear probe
folds its feature standardisation into ``W``/``b``; a prototype head stores the L2-normalised
class means times a scale (cosine similarity * scale). Calibrated probabilities are
``softmax(logits / temperature)``. For a fused classifier ``e`` is the concatenation of the image
embedding and its ``input`` parts (MiniLM title embedding, hashed title words, colour descriptor).

:func:`load_classifier` is the entry point; ``Classifier.torch_head(field)`` returns an
``nn.Linear`` so gradients can flow from the logits back through the backbone (explanations).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from catalens.errors import ClassifierError, NotFoundError

FORMAT = "catalens.classifier/1"
META_FILE = "classifier.json"
HEADS_FILE = "heads.npz"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def check_name(name: str) -> str:
    if not _NAME_RE.match(name or ""):
        raise ClassifierError(
            f"invalid classifier name {name!r}: use letters, digits, '.', '_' or '-' (max 100 characters)"
        )
    return name


@dataclass
class FieldHead:
    """One predicted field: its classes and the affine head that scores them."""

    name: str
    classes: list[str]
    W: np.ndarray
    b: np.ndarray
    kind: str = "linear"  # linear | prototype | imagenet-map
    temperature: float = 1.0
    threshold: float = 0.5
    parent: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    aggregate: np.ndarray | None = None  # (K, C): sums K base-class probabilities into C classes
    input_scale: float = 1.0  # multiplies the L2-normalised input (heads trained on raw features)
    # the head used for small photos (thumbnails; see catalens.classify.thumbnail_views), same classes
    small: FieldHead | None = None

    def logits(self, emb: np.ndarray, scale: np.ndarray | float | None = None) -> np.ndarray:
        """Base logits; ``scale`` (per row or scalar) replaces ``input_scale`` (e.g. true feature norms)."""
        x = np.asarray(emb, np.float32)
        if scale is not None:
            x = x * np.asarray(scale, np.float32).reshape(-1, 1)
        elif self.input_scale != 1.0:
            x = x * np.float32(self.input_scale)
        return x @ self.W.T + self.b

    def proba(
        self, emb: np.ndarray, temperature: float | None = None, scale: np.ndarray | float | None = None
    ) -> np.ndarray:
        """Calibrated class probabilities ``(N, len(classes))``."""
        t = self.temperature if temperature is None else temperature
        z = self.logits(emb, scale)
        z *= np.float32(1.0 / max(t, 1e-6))
        p = softmax(z, inplace=True)
        return p if self.aggregate is None else (p @ self.aggregate).astype(np.float32)

    def meta(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "kind": self.kind,
            "temperature": float(self.temperature),
            "threshold": float(self.threshold),
            "parent": self.parent,
            "extra": self.extra,
            "input_scale": float(self.input_scale),
            **(
                {
                    "small": {
                        "temperature": float(self.small.temperature),
                        "threshold": float(self.small.threshold),
                    }
                }
                if self.small is not None
                else {}
            ),
        }


def softmax(z: np.ndarray, *, inplace: bool = False) -> np.ndarray:
    """Row softmax in float32 (``inplace``: overwrite ``z`` when it is a float32 array)."""
    z = np.asarray(z, np.float32)
    if not inplace:
        z = z.copy()
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


@dataclass
class Classifier:
    """A trained classifier: heads per field plus metadata. See the module docstring."""

    name: str
    version: str
    method: str
    model: str
    model_version: str | None
    heads: dict[str, FieldHead]
    input: str = "image"
    text_model: str | None = None
    paths: list[list[str]] = field(default_factory=list)  # observed hierarchy paths (parent-first)
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    folder: Path | None = None

    @property
    def fields(self) -> list[str]:
        return list(self.heads)

    def classes(self, field_name: str) -> list[str]:
        return list(self.head(field_name).classes)

    def head(self, field_name: str) -> FieldHead:
        try:
            return self.heads[field_name]
        except KeyError:
            raise NotFoundError(
                f"classifier {self.name!r} has no field {field_name!r} (fields: {', '.join(self.heads)})"
            ) from None

    @property
    def dim(self) -> int:
        return int(next(iter(self.heads.values())).W.shape[1])

    def torch_head(self, field_name: str, *, small: bool = False) -> Any:
        """``nn.Module`` mapping (N, dim) L2-normalised embeddings to (uncalibrated) logits.

        An ``nn.Linear`` for linear and prototype heads: divide the logits by
        ``head(field).temperature`` for calibrated probabilities. For aggregated heads (the built-in
        ImageNet-mapped taxonomy) the module returns log-probabilities of the taxonomy nodes.
        ``small``: the field's small-photo head where it has one (see ``FieldHead.small``).
        """
        import torch
        from torch import nn

        if self.input != "image":
            raise ClassifierError(
                f"classifier {self.name!r} takes {self.input} input; a torch head needs an image-only classifier"
            )
        h = self.head(field_name)
        if small and h.small is not None:
            h = h.small
        layer = nn.Linear(h.W.shape[1], h.W.shape[0])
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(h.W, np.float32)))
            layer.bias.copy_(torch.from_numpy(np.ascontiguousarray(h.b, np.float32)))
        if h.input_scale != 1.0 or h.aggregate is not None:
            return _aggregate_head(layer, h.input_scale, h.temperature, h.aggregate).eval()
        layer.eval()
        return layer

    def to_meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.name,
            "version": self.version,
            "method": self.method,
            "model": self.model,
            "model_version": self.model_version,
            "input": self.input,
            "text_model": self.text_model,
            "fields": {k: h.meta() for k, h in self.heads.items()},
            "paths": self.paths,
            "data": self.data,
            "metrics": self.metrics,
            "extra": self.extra,
            "created_at": self.created_at,
        }


def _aggregate_head(layer: Any, scale: float, temperature: float, aggregate: np.ndarray | None) -> Any:
    """Module computing ``log(softmax(scale * e @ W.T + b) / T) @ M)``: node log-probabilities."""
    import torch
    from torch import nn

    class AggregateHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer, self.scale, self.temperature = layer, float(scale), float(temperature)
            m = None if aggregate is None else torch.from_numpy(np.ascontiguousarray(aggregate, np.float32))
            self.register_buffer("aggregate", m)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = self.layer(x * self.scale)
            if self.aggregate is None:
                return z
            p = torch.softmax(z / self.temperature, dim=-1) @ self.aggregate
            return torch.log(p.clamp_min(1e-12))

    return AggregateHead()


def classifiers_root(home: str | os.PathLike[str]) -> Path:
    return Path(home) / "classifiers"


def new_version() -> str:
    return datetime.now(UTC).strftime("v%Y%m%d-%H%M%S-%f")


def save_classifier(home: str | os.PathLike[str], clf: Classifier) -> Path:
    """Write ``clf`` as a new version folder and point LATEST at it; returns the folder."""
    check_name(clf.name)
    if not clf.heads:
        raise ClassifierError("a classifier needs at least one field")
    clf.version = clf.version or new_version()
    clf.created_at = clf.created_at or datetime.now(UTC).isoformat()
    root = classifiers_root(home) / clf.name
    folder = root / clf.version
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for name, h in clf.heads.items():
        arrays[f"{name}.W"] = np.asarray(h.W, np.float32)
        arrays[f"{name}.b"] = np.asarray(h.b, np.float32)
        if h.aggregate is not None:
            arrays[f"{name}.M"] = np.asarray(h.aggregate, np.float32)
        if h.small is not None:
            arrays[f"{name}.small.W"] = np.asarray(h.small.W, np.float32)
            arrays[f"{name}.small.b"] = np.asarray(h.small.b, np.float32)
    _atomic(folder / HEADS_FILE, lambda p: np.savez(open(p, "wb"), **arrays))
    _atomic(folder / META_FILE, lambda p: p.write_text(json.dumps(clf.to_meta(), indent=2, default=_json)))
    _atomic(root / "LATEST", lambda p: p.write_text(clf.version))
    clf.folder = folder
    return folder


def _json(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    return str(obj)


def _atomic(target: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=str(target.parent))
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def list_classifiers(home: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Name, versions and latest metadata summary of every classifier in the home."""
    root = classifiers_root(home)
    rows = []
    if not root.is_dir():
        return rows
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        versions = sorted(v.name for v in d.iterdir() if (v / META_FILE).is_file())
        if not versions:
            continue
        latest = _latest(d) or versions[-1]
        meta = json.loads((d / latest / META_FILE).read_text())
        rows.append(
            {
                "name": d.name,
                "latest": latest,
                "versions": versions,
                "method": meta.get("method"),
                "model": meta.get("model"),
                "fields": list(meta.get("fields", {})),
            }
        )
    return rows


def _latest(root: Path) -> str | None:
    p = root / "LATEST"
    if p.is_file():
        v = p.read_text().strip()
        if (root / v / META_FILE).is_file():
            return v
    return None


def load_classifier(home: str | os.PathLike[str] | None, name: str, version: str | None = None) -> Classifier:
    """Load classifier ``name`` (latest version unless ``version``) from a catalog home.

    ``name`` may also be ``"builtin"`` (the ImageNet-mapped e-commerce taxonomy, needs no home)
    or a path to a version folder.
    """
    if name == "builtin":
        from catalens.classify.builtin import builtin_classifier

        return builtin_classifier()
    path = Path(name)
    if (path / META_FILE).is_file():
        folder = path
    else:
        if home is None:
            raise NotFoundError(f"classifier {name!r}: no catalog home given")
        check_name(name)
        root = classifiers_root(home) / name
        if not root.is_dir():
            known = ", ".join(r["name"] for r in list_classifiers(home)) or "none"
            raise NotFoundError(f"no classifier named {name!r} in {root.parent} (known: {known})")
        version = version or _latest(root)
        if version is None:
            versions = sorted(v.name for v in root.iterdir() if (v / META_FILE).is_file())
            if not versions:
                raise NotFoundError(f"classifier {name!r} has no saved version")
            version = versions[-1]
        folder = root / version
        if not (folder / META_FILE).is_file():
            raise NotFoundError(f"classifier {name!r} has no version {version!r}")
    return read_folder(folder)


def read_folder(folder: Path) -> Classifier:
    try:
        meta = json.loads((folder / META_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ClassifierError(f"{folder / META_FILE}: cannot read classifier metadata ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise ClassifierError(f"{folder}: not a catalens classifier (expected format {FORMAT!r})")
    try:
        arrays = np.load(folder / HEADS_FILE)
    except (OSError, ValueError) as exc:
        raise ClassifierError(f"{folder / HEADS_FILE}: cannot read classifier heads ({exc})") from exc
    heads = {}
    for fname, fm in meta["fields"].items():
        heads[fname] = FieldHead(
            name=fname,
            classes=list(fm["classes"]),
            W=arrays[f"{fname}.W"],
            b=arrays[f"{fname}.b"],
            kind=fm.get("kind", "linear"),
            temperature=float(fm.get("temperature", 1.0)),
            threshold=float(fm.get("threshold", 0.5)),
            parent=fm.get("parent"),
            extra=fm.get("extra", {}),
            aggregate=arrays[f"{fname}.M"] if f"{fname}.M" in arrays.files else None,
            input_scale=float(fm.get("input_scale", 1.0)),
        )
        if "small" in fm and f"{fname}.small.W" in arrays.files:
            heads[fname].small = FieldHead(
                name=fname,
                classes=list(fm["classes"]),
                W=arrays[f"{fname}.small.W"],
                b=arrays[f"{fname}.small.b"],
                kind=fm.get("kind", "linear"),
                temperature=float(fm["small"].get("temperature", 1.0)),
                threshold=float(fm["small"].get("threshold", 0.5)),
            )
    return Classifier(
        name=meta["name"],
        version=meta["version"],
        method=meta["method"],
        model=meta["model"],
        model_version=meta.get("model_version"),
        heads=heads,
        input=meta.get("input", "image"),
        text_model=meta.get("text_model"),
        paths=[list(p) for p in meta.get("paths", [])],
        data=meta.get("data", {}),
        metrics=meta.get("metrics", {}),
        extra=meta.get("extra", {}),
        created_at=meta.get("created_at", ""),
        folder=folder,
    )
