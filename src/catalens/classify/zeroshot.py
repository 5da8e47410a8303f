"""Zero-shot classification with CLIP-type models: classes from a taxonomy's names, no training.

For every field of the taxonomy (hierarchy levels and attribute fields) each class name is put
into prompt templates ("a photo of a {}", "a product photo of {}", ...), encoded with the model's
text tower (:func:`catalens.models.load_text_encoder`), averaged over templates and L2-normalised.
The result is an ordinary :class:`~catalens.classify.classifier.Classifier` whose heads are
``logits = scale * cos(image, class text)`` (``W`` = class text embeddings, ``b`` = 0; the scale
is the temperature ``1 / scale``), so top-k, hierarchy decoding, abstain flags, ``classify --all``,
``eval`` and ensembles work unchanged. It can be saved like any classifier
(``catalens classify train NAME --method zeroshot --model MODEL``).

Class names are turned into words (``prompt_name``): "Tshirts" -> "tshirts",
"PersonalCare" -> "personal care", "Navy Blue" -> "navy blue". Colour fields and gender fields
get their own templates (:data:`FIELD_TEMPLATES`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from catalens.classify.classifier import Classifier, FieldHead
from catalens.classify.taxonomy import Taxonomy
from catalens.errors import ClassifierError

TEMPLATES: tuple[str, ...] = (
    "a photo of a {}",
    "a product photo of {}",
    "a photo of {}, a type of product",
    "an e-commerce catalog photo of {}",
    "a close-up photo of {}",
)
FIELD_TEMPLATES: dict[str, tuple[str, ...]] = {
    "colour": (
        "a photo of a {} product",
        "a {} coloured item",
        "a product photo of something {}",
        "the colour {}",
    ),
    "gender": (
        "a product for {}",
        "a photo of clothing or accessories for {}",
        "a {} fashion product",
    ),
}
DEFAULT_SCALE = 100.0  # CLIP's learned logit scale (exp(4.6052))


def prompt_name(name: str) -> str:
    """Words of a class name for prompts: camelCase split, separators to spaces, lower case."""
    s = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", str(name))
    s = re.sub(r"[_\-/&]+", lambda m: " and " if m.group(0) == "&" else " ", s)
    return re.sub(r"\s+", " ", s).strip().lower()


def templates_for(field: str) -> tuple[str, ...]:
    f = field.lower()
    if "colour" in f or "color" in f:
        return FIELD_TEMPLATES["colour"]
    if "gender" in f:
        return FIELD_TEMPLATES["gender"]
    return TEMPLATES


def class_embeddings(encoder: Any, classes: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    """(C, dim) L2-normalised mean of the template prompts' text embeddings per class."""
    prompts = [t.format(prompt_name(c)) for c in classes for t in templates]
    emb = np.asarray(encoder.encode(prompts), np.float32).reshape(len(classes), len(templates), -1)
    m = emb.mean(axis=1)
    return (m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def zeroshot_classifier(
    model: str,
    taxonomy: Taxonomy | None = None,
    *,
    fields: Sequence[str] | None = None,
    templates: Sequence[str] | None = None,
    scale: float = DEFAULT_SCALE,
    name: str | None = None,
    threshold: float = 0.0,
    text_encoder: Any = None,
) -> Classifier:
    """A zero-shot classifier over ``taxonomy`` (default: the built-in e-commerce one).

    ``templates`` replaces the per-field templates for every field. ``text_encoder`` (anything
    with ``encode(list[str])``) overrides :func:`catalens.models.load_text_encoder` (tests).
    Raises :class:`ClassifierError` for a model without a text tower; missing weights raise the
    model layer's ``WeightsUnavailableError``, which says how to supply them.
    """
    from catalens.classify.taxonomy import load_taxonomy
    from catalens.models import get_spec, load_text_encoder

    tax = taxonomy or load_taxonomy("builtin")
    spec = get_spec(model)
    if not spec.has_text:
        raise ClassifierError(
            f"model {model!r} has no text tower: zero-shot needs a CLIP-type model "
            "(open_clip:<arch>/<pretrained or weights file>, hf:<CLIP/SigLIP repo or folder>)"
        )
    use = list(fields or tax.fields)
    for f in use:
        if f not in tax.fields:
            raise ClassifierError(
                f"taxonomy {tax.name!r} has no field {f!r} (fields: {', '.join(tax.fields)})"
            )
    if not use:
        raise ClassifierError(f"taxonomy {tax.name!r} declares no field to classify")
    enc = text_encoder or load_text_encoder(model)
    hier = [f for f in tax.hierarchy if f in use]
    heads: dict[str, FieldHead] = {}
    for f in use:
        classes = tax.values(f)
        tpl = tuple(templates) if templates else templates_for(f)
        W = class_embeddings(enc, classes, tpl)
        heads[f] = FieldHead(
            name=f,
            classes=list(classes),
            W=W,
            b=np.zeros(len(classes), np.float32),
            kind="zeroshot",
            temperature=1.0 / scale,
            threshold=threshold,
            parent=(hier[hier.index(f) - 1] if f in hier and hier.index(f) else None),
            extra={"templates": list(tpl)},
        )
    paths = [list(p) for p in tax.paths] if len(hier) >= 2 and hier == tax.hierarchy[: len(hier)] else []
    if paths:
        paths = [list(dict.fromkeys(tuple(p[: len(hier)]) for p in tax.paths))][0]
        paths = [list(p) for p in paths]
    version = getattr(enc, "version", "") or ""
    return Classifier(
        name=name or "zeroshot",
        version="",
        method="zeroshot",
        model=model,
        model_version=version or None,
        heads=heads,
        paths=paths,
        data={"source": f"taxonomy:{tax.name}", "n": 0},
        extra={"hierarchy": hier, "taxonomy": tax.name, "scale": scale, "text_version": version},
    )
