"""What an explanation explains: a score per label, computed from the backbone with gradients.

A :class:`Target` turns the model input into logits ``(N, C)`` through the torch backbone, so
gradients reach the backbone's feature maps. Three kinds:

* :class:`ImageNetTarget` -- the backbone's own ImageNet-1k classifier (packaged EfficientNets);
* :class:`HeadTarget` -- any torch head on the L2-normalised embedding (linear, prototype...),
  e.g. a head trained on frozen catalog embeddings;
* :func:`classifier_target` -- a trained catalens classifier (``catalens.classify``) and one of its
  fields.

:func:`resolve_label` maps a user's label (name, id or index) to a class index, with a clear
:class:`~catalens.errors.UnknownLabelError` listing the known labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from catalens.errors import ConfigError, ModelError, NoGradientPathError, NotFoundError, UnknownLabelError


class Target(Protocol):
    """A labelled score to explain."""

    name: str
    labels: list[str]
    model: str | None  # the backbone it needs (None: any)

    def logits(self, tower: Any, x: torch.Tensor) -> torch.Tensor: ...


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(short names, synset ids) of the 1000 ImageNet-1k classes, from timm's class info."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = tuple(info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes()))
    ids = tuple(info.index_to_label_name(i) for i in range(info.num_classes()))
    return names, ids


@dataclass
class ImageNetTarget:
    """The backbone's ImageNet-1k classifier (``tower.logits``)."""

    model: str | None = None
    name: str = "imagenet"
    labels: list[str] = field(default_factory=lambda: list(imagenet_labels()[0]))
    aliases: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.aliases:
            self.aliases = {sid: i for i, sid in enumerate(imagenet_labels()[1])}

    def logits(self, tower: Any, x: torch.Tensor) -> torch.Tensor:
        if not getattr(tower, "has_classifier", False):
            raise NoGradientPathError(
                f"model {self.model or '?'} has no ImageNet classifier head to explain; "
                "use --classifier NAME (a head on its embeddings)"
            )
        if getattr(tower, "num_classes", 0) != len(self.labels):
            raise ModelError(
                f"model {self.model or '?'} has {tower.num_classes} classes, not the 1000 ImageNet classes"
            )
        return tower.logits(x)


@dataclass
class HeadTarget:
    """A torch head on the embedding: ``head(l2_normalise(tower.embed(x)))`` -> logits."""

    head: Callable[[torch.Tensor], torch.Tensor]
    labels: list[str]
    name: str = "head"
    model: str | None = None
    normalize: bool = True
    aliases: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not callable(self.head):
            raise NoGradientPathError(
                f"{self.name}: the head is not a torch module, so no gradient reaches the image"
            )
        if isinstance(self.head, torch.nn.Module):
            self.head.eval()

    def logits(self, tower: Any, x: torch.Tensor) -> torch.Tensor:
        emb = tower.embed(x)
        if self.normalize:
            emb = F.normalize(emb, dim=-1)
        out = self.head(emb)
        if not isinstance(out, torch.Tensor):
            raise NoGradientPathError(
                f"{self.name}: the head returned {type(out).__name__}, not a torch tensor"
            )
        if out.dim() == 1:
            out = out[None]
        if out.shape[-1] != len(self.labels):
            raise ModelError(
                f"{self.name}: the head gives {out.shape[-1]} scores for {len(self.labels)} labels"
            )
        return out


def classifier_target(
    home: str | Path, name: str, field: str | None = None, *, image_size: tuple[int, int] | None = None
) -> HeadTarget:
    """A trained catalens classifier (``catalens.classify.classifier.load_classifier``) as a target.

    ``field`` may be left out when the classifier predicts one field. ``image_size`` (width,
    height of the photo to explain): a small photo is explained with the field's small-photo head
    when the classifier has one, as ``catalens classify`` scores it. Raises NotFoundError for an
    unknown classifier or field, NoGradientPathError when its head has no torch form.
    """
    try:
        from catalens.classify.classifier import load_classifier  # type: ignore[import-not-found]
    except ImportError as exc:
        raise NotFoundError(
            "no trained classifiers are available (catalens.classify.classifier is missing); "
            "use --imagenet, or pass a torch head to catalens.explain.HeadTarget"
        ) from exc
    from catalens.errors import ClassifierError

    clf = load_classifier(home, name)
    fields = list(getattr(clf, "fields", []) or [])
    if field is None:
        if len(fields) == 1:
            field = fields[0]
        elif fields and getattr(clf, "paths", None):
            field = fields[-1]  # a hierarchy (parent-first fields): explain the finest level
        else:
            raise ConfigError(
                f"classifier {name!r} predicts several fields; pick one with --field ({', '.join(fields)})"
            )
    elif fields and field not in fields:
        raise NotFoundError(f"classifier {name!r} has no field {field!r}; its fields: {', '.join(fields)}")
    labels = [str(c) for c in clf.classes(field)]
    small = False
    if image_size is not None:
        from catalens.classify.predict import small_rows

        small = small_rows(clf, [image_size]) is not None
    try:
        head = clf.torch_head(field, small=small) if small else clf.torch_head(field)
    except (NotImplementedError, ClassifierError) as exc:
        raise NoGradientPathError(f"classifier {name!r} ({field}) has no torch form: {exc}") from exc
    if head is None or not callable(head):
        raise NoGradientPathError(
            f"classifier {name!r} ({field}) is not differentiable (no torch head), so it cannot be explained"
        )
    model = getattr(clf, "model", None)
    model_name = getattr(model, "name", model)
    return HeadTarget(
        head=head,
        labels=labels,
        name=f"{name}/{field}" + (" (small-photo head)" if small else ""),
        model=str(model_name) if model_name else None,
    )


def _listing(labels: Sequence[str], limit: int = 40) -> str:
    shown = ", ".join(labels[:limit])
    more = len(labels) - limit
    return shown + (f", ... ({more} more)" if more > 0 else "")


def resolve_label(target: Any, label: str | int | None, logits: torch.Tensor | None = None) -> int:
    """Class index for ``label``: a label name (case-insensitive), an alias (ImageNet synset id),
    or a number; ``None`` takes the top-scoring class of ``logits``."""
    labels: list[str] = list(target.labels)
    if label is None:
        if logits is None:
            raise ConfigError("no label given and no scores to pick the top one")
        return int(torch.as_tensor(logits).reshape(-1, len(labels))[0].argmax())
    if isinstance(label, int) or (
        isinstance(label, str) and label.strip().isdigit() and label.strip() not in labels
    ):
        idx = int(label)
        if 0 <= idx < len(labels):
            return idx
        raise UnknownLabelError(f"{target.name}: label index {idx} out of range 0..{len(labels) - 1}")
    text = str(label).strip()
    if text in labels:
        return labels.index(text)
    lowered = [lab.lower() for lab in labels]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    aliases: dict[str, int] = getattr(target, "aliases", {}) or {}
    if text in aliases:
        return aliases[text]
    close = [lab for lab in labels if text.lower() in lab.lower()][:10]
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownLabelError(f"{target.name} has no label {text!r}.{hint} Known labels: {_listing(labels)}")


def default_target(
    home: str | Path,
    *,
    classifier: str | None = None,
    field: str | None = None,
    imagenet: bool = False,
    model: str | None = None,
    image_size: tuple[int, int] | None = None,
) -> tuple[Any, str | None]:
    """``(target, model name)`` for the CLI / Catalog: ``classifier`` (a trained catalens
    classifier, on the model it was trained on), ``imagenet`` (the model's own ImageNet-1k
    classifier), else the built-in taxonomy classifier (``builtin``, finest level) for its model
    and the ImageNet classifier for other models."""
    if classifier and imagenet:
        raise ConfigError("pick one target: --classifier NAME or --imagenet")
    if classifier:
        target = classifier_target(home, classifier, field, image_size=image_size)
        return target, target.model or model
    if imagenet:
        if field:
            raise ConfigError("--field needs --classifier NAME, not --imagenet")
        return ImageNetTarget(model), model
    # default: the built-in e-commerce taxonomy (ImageNet classes of the packaged Lite0 mapped to
    # taxonomy nodes) when the model is the one it is built on, else the model's ImageNet classifier
    from catalens.classify.builtin import BUILTIN_MODEL

    if model in (None, BUILTIN_MODEL):
        target = classifier_target(home, "builtin", field)
        return target, target.model or BUILTIN_MODEL
    if field:
        raise ConfigError("--field needs --classifier NAME")
    return ImageNetTarget(model), model
