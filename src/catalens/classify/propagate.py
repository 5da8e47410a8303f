"""Labels spread from the labelled images to the rest of the catalog (``catalens classify train --propagate``).

A team labels a few hundred products; the catalog holds many more. For a field with many classes
and few labels per class (articleType from 100-300 labelled products), the unlabelled images still
tell where each class lies: labels spread over the k-nearest-neighbour graph of all images (image
embedding, plus the title embedding for image+title classifiers; scikit-learn ``LabelSpreading``),
and every unlabelled image whose spread label holds at least ``min_p`` of its distribution joins the
training rows with that label, for that field only. The held-out rows never join.

Measured (bench/classify_semi.py, lock-box part, bench/RESULTS.md "classify: from few labels"): it
wins articleType at 100 and 300 labels (every size, image and image+title) and ties at 1,000; it
*loses* gender and baseColour (labels spread along the look of a
product type, not its colour), and self-training with the classifier's own calibrated labels did not
win anywhere - so propagation is opt-in, per field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from catalens.classify.labels import LabelSet
from catalens.errors import LabelsError

if TYPE_CHECKING:
    from catalens.catalog_base import CatalogParts

NEIGHBOURS = 10
ALPHA = 0.2
MIN_P = 0.9
MAX_UNLABELLED = 20_000  # a seeded sample of the catalog beyond this (the graph is built in memory)


def spread(
    F_lab: np.ndarray,
    y_lab: Sequence[str | None],
    F_unl: np.ndarray,
    *,
    neighbours: int = NEIGHBOURS,
    alpha: float = ALPHA,
    min_p: float = MIN_P,
) -> list[str | None]:
    """The spread label of each unlabelled row (None where it holds under ``min_p``)."""
    from sklearn.semi_supervised import LabelSpreading

    names = sorted({y for y in y_lab if y is not None})
    if len(names) < 2 or len(F_unl) == 0:
        return [None] * len(F_unl)
    y = np.array([names.index(v) if v is not None else -1 for v in y_lab] + [-1] * len(F_unl))
    F = np.vstack([F_lab, F_unl]).astype(np.float32)
    k = max(1, min(neighbours, len(F) - 1))
    model = LabelSpreading(kernel="knn", n_neighbors=k, alpha=alpha, max_iter=100)
    model.fit(F, y)
    dist = np.nan_to_num(model.label_distributions_[len(F_lab) :])
    best, p = dist.argmax(1), dist.max(1)
    return [names[b] if q >= min_p else None for b, q in zip(best, p, strict=True)]


def propagate(
    cat: CatalogParts,
    labels: LabelSet,
    fields: Sequence[str],
    *,
    model: str,
    text_model: str | None = None,
    exclude: Iterable[str] = (),
    seed: int = 0,
) -> tuple[LabelSet, dict[str, Any]]:
    """``labels`` plus the catalog's other images (with an embedding for ``model``, not in
    ``exclude``) whose spread label is confident for at least one of ``fields`` (labelled for those
    fields only); and what joined."""
    from catalens.classify.labels import catalog_titles
    from catalens.classify.train import fuse, image_matrix, text_matrix

    unknown = [f for f in fields if f not in labels.labels]
    if unknown:
        raise LabelsError(f"--propagate names fields not trained: {', '.join(unknown)}")
    hashes, _ = cat.vectors(model)
    skip = set(labels.shas) | set(exclude)
    unl = sorted({h for h in hashes if h not in skip})
    if len(unl) > MAX_UNLABELLED:
        unl = sorted(np.random.default_rng(seed).choice(unl, MAX_UNLABELLED, replace=False).tolist())
    if not unl:
        return labels, {"unlabelled": 0, "joined": {f: 0 for f in fields}}
    pid_title = catalog_titles(cat.db, unl)
    titles = [pid_title.get(s, (None, None))[1] for s in unl]
    F_lab, _ = image_matrix(cat, labels.shas, model)
    F_unl, _ = image_matrix(cat, unl, model)
    if text_model:
        F_lab = fuse(F_lab, text_matrix(labels.titles, text_model))
        F_unl = fuse(F_unl, text_matrix(titles, text_model))
    guesses = {f: spread(F_lab, labels.labels[f], F_unl) for f in fields}
    keep = [j for j in range(len(unl)) if any(guesses[f][j] is not None for f in fields)]
    new = {
        f: list(v) + [guesses[f][j] if f in guesses else None for j in keep] for f, v in labels.labels.items()
    }
    joined = {f: sum(guesses[f][j] is not None for j in keep) for f in fields}
    extended = LabelSet(
        labels.shas + [unl[j] for j in keep],
        labels.product_ids + [pid_title.get(unl[j], (None, None))[0] for j in keep],
        labels.titles + [titles[j] for j in keep],
        new,
        labels.source,
        {k: list(v) + [None] * len(keep) for k, v in labels.extra.items()},
    )
    return extended, {"unlabelled": len(unl), "joined": joined}
