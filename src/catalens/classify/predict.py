"""Prediction: calibrated probabilities, hierarchy-consistent decoding, top-k, abstain, ensembles.

Hierarchy decoding (``hierarchy=``):

* ``"joint"`` (default): every observed path (e.g. master > sub > article) is scored by the sum of
  its levels' log-probabilities; the best path is the answer for all levels at once.
* ``"mask"``: top-down; the best parent is chosen, then children of other parents are masked.
* ``"none"``: each field independently (may be inconsistent).

``bench/classify_myntra.py`` measures joint against mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from catalens.classify.artifact import Classifier
from catalens.classify.errors import ClassifierError

HIERARCHY_MODES = ("joint", "mask", "none")


@dataclass
class FieldPrediction:
    label: str
    prob: float
    top_k: list[tuple[str, float]]
    needs_review: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "prob": round(float(self.prob), 6),
            "needs_review": self.needs_review,
            "top_k": [{"label": c, "prob": round(float(p), 6)} for c, p in self.top_k],
        }


class Ensemble:
    """Probability averaging over classifiers sharing fields (each on its own model's embeddings)."""

    def __init__(self, members: Sequence[Classifier], weights: Sequence[float] | None = None) -> None:
        if not members:
            raise ClassifierError("an ensemble needs at least one classifier")
        self.members = list(members)
        self.weights = list(weights) if weights else [1.0] * len(self.members)
        first = self.members[0]
        self.fields = [f for f in first.fields if all(f in m.heads for m in self.members)]
        if not self.fields:
            raise ClassifierError("the ensembled classifiers share no field")
        for f in self.fields:
            for m in self.members[1:]:
                if sorted(m.classes(f)) != sorted(first.classes(f)):
                    raise ClassifierError(f"field {f!r}: ensembled classifiers have different classes")
        self.name = "+".join(m.name for m in self.members)

    def classes(self, field: str) -> list[str]:
        return self.members[0].classes(field)

    def proba(self, inputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """``inputs[i]`` are the embeddings for member ``i``; returns averaged probabilities."""
        total = float(sum(self.weights))
        out: dict[str, np.ndarray] = {}
        for f in self.fields:
            order = self.members[0].classes(f)
            acc = None
            for m, x, w in zip(self.members, inputs, self.weights, strict=True):
                p = m.head(f).proba(x)
                idx = [m.classes(f).index(c) for c in order]
                p = p[:, idx] * (w / total)
                acc = p if acc is None else acc + p
            out[f] = acc  # type: ignore[assignment]
        return out


def field_probas(
    clf: Classifier, emb: np.ndarray, *, scale: np.ndarray | None = None, fields: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Calibrated probabilities per field for (N, dim) inputs (L2-normalised image embeddings,
    or the fused input for image+text classifiers)."""
    x = np.asarray(emb, np.float32)
    if x.ndim != 2 or x.shape[1] != clf.dim:
        raise ClassifierError(
            f"classifier {clf.name!r} expects ({clf.dim})-d inputs from model {clf.model!r}, got shape {x.shape}"
        )
    out = {}
    for f in fields or clf.fields:
        h = clf.head(f)
        out[f] = h.proba(x, scale=scale if h.aggregate is not None else None)
    return out


def hierarchy_fields(clf: Classifier | Ensemble) -> list[str]:
    base = clf.members[0] if isinstance(clf, Ensemble) else clf
    return [f for f in base.extra.get("hierarchy", []) if f in base.heads]


def decode(
    probs: dict[str, np.ndarray],
    classes: dict[str, list[str]],
    hierarchy: list[str],
    paths: list[list[str]],
    mode: str = "joint",
) -> dict[str, np.ndarray]:
    """Chosen class index per field and row, consistent with the hierarchy unless ``mode="none"``."""
    if mode not in HIERARCHY_MODES:
        raise ClassifierError(f"unknown hierarchy mode {mode!r}; use one of {HIERARCHY_MODES}")
    chosen = {f: p.argmax(axis=1) for f, p in probs.items()}
    levels = [f for f in hierarchy if f in probs]
    if mode == "none" or len(levels) < 2 or not paths:
        return chosen
    all_levels = list(hierarchy)
    col = {f: {c: j for j, c in enumerate(classes[f])} for f in levels}
    usable = []
    for p in paths:
        vals = dict(zip(all_levels, p, strict=False))
        if all(vals.get(f) in col[f] for f in levels):
            usable.append([col[f][vals[f]] for f in levels])
    if not usable:
        return chosen
    idx = np.asarray(usable, np.int64)  # (P, L)
    if mode == "joint":
        score = np.zeros((next(iter(probs.values())).shape[0], len(idx)), np.float64)
        for j, f in enumerate(levels):
            score += np.log(np.clip(probs[f][:, idx[:, j]], 1e-12, None))
        best = score.argmax(axis=1)
        for j, f in enumerate(levels):
            chosen[f] = idx[best, j]
        return chosen
    # mask: top-down
    n = next(iter(probs.values())).shape[0]
    allowed = np.ones((n, len(idx)), bool)
    for j, f in enumerate(levels):
        p = probs[f]
        # probability of each path's class at this level, only for paths still allowed
        cand = np.where(allowed, p[:, idx[:, j]], -1.0)
        pick = idx[cand.argmax(axis=1), j]
        chosen[f] = pick
        allowed &= idx[None, :, j] == pick[:, None]
    return chosen


def predict_rows(
    clf: Classifier | Ensemble,
    probs: dict[str, np.ndarray],
    *,
    top_k: int = 3,
    hierarchy: str = "joint",
    threshold: float | None = None,
) -> list[dict[str, FieldPrediction]]:
    """Per row, per field: label, calibrated probability, top-k and the needs-review flag.

    A prediction whose probability is below the field's abstain threshold (``threshold`` overrides
    it) is flagged ``needs_review``; the built-in taxonomy answers ``"unknown"`` instead.
    """
    base = clf.members[0] if isinstance(clf, Ensemble) else clf
    classes = {f: clf.classes(f) for f in probs}
    chosen = decode(probs, classes, hierarchy_fields(clf), base.paths, hierarchy)
    unknown_label = base.extra.get("unknown_label")
    n = next(iter(probs.values())).shape[0] if probs else 0
    rows: list[dict[str, FieldPrediction]] = [{} for _ in range(n)]
    for f, p in probs.items():
        thr = base.head(f).threshold if threshold is None else threshold
        k = min(top_k, p.shape[1])
        top = np.argsort(-p, axis=1)[:, :k]
        for i in range(n):
            c = int(chosen[f][i])
            prob = float(p[i, c])
            label = classes[f][c]
            review = prob < thr
            if review and unknown_label:
                label = unknown_label
            rows[i][f] = FieldPrediction(
                label=label,
                prob=prob,
                top_k=[(classes[f][int(j)], float(p[i, j])) for j in top[i]],
                needs_review=bool(review),
            )
    return rows
