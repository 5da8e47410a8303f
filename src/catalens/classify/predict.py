"""Prediction: calibrated probabilities, hierarchy-consistent decoding, top-k, abstain, ensembles.

Hierarchy decoding (``hierarchy=``):

* ``"joint"`` (default): every observed path (e.g. master > sub > article) is scored by the sum of
  its levels' log-probabilities; the best path is the answer for all levels at once.
* ``"mask"``: top-down; the best parent is chosen, then children of other parents are masked.
* ``"none"``: each field independently (may be inconsistent).

``bench/classify_myntra.py`` scores ``joint`` and ``none`` (consistency of the decoded paths).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from catalens.classify.classifier import Classifier, softmax
from catalens.classify.results import FieldPrediction
from catalens.errors import ClassifierError

HIERARCHY_MODES = ("joint", "mask", "none")


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

    def proba(self, inputs: Sequence[np.ndarray], sizes: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """``inputs[i]`` are the embeddings for member ``i``; returns averaged probabilities.
        ``sizes``: (N, 2) photo widths and heights (small photos get a member's small heads)."""
        total = float(sum(self.weights))
        out: dict[str, np.ndarray] = {}
        masks = [small_rows(m, sizes) for m in self.members]
        for f in self.fields:
            order = self.members[0].classes(f)
            acc = None
            for m, x, w, small in zip(self.members, inputs, self.weights, masks, strict=True):
                h = m.head(f)
                p = h.proba(x)
                if small is not None and h.small is not None:
                    p[small] = h.small.proba(x[small])
                idx = [m.classes(f).index(c) for c in order]
                p = p[:, idx] * (w / total)
                acc = p if acc is None else acc + p
            out[f] = acc  # type: ignore[assignment]
        return out


def small_rows(clf: Classifier, sizes: np.ndarray | Sequence[tuple[int, int]] | None) -> np.ndarray | None:
    """Rows whose photo is small enough for the classifier's small heads (thumbnail-trained,
    :mod:`catalens.classify.thumbnail_views`): shorter side at most ``SMALL_FACTOR`` x the view's; ``None``
    when there are no such heads, sizes or rows. Unknown sizes (0) count as large."""
    from catalens.classify.thumbnail_views import SMALL_FACTOR, VIEWS

    view = VIEWS.get(str(clf.extra.get("small_view") or ""))
    if view is None or sizes is None or len(sizes) == 0:
        return None
    wh = np.asarray(sizes, np.int64).reshape(-1, 2)
    short = wh.min(axis=1)
    mask = (short > 0) & (short <= SMALL_FACTOR * view.box[0])
    return mask if mask.any() else None


def field_probas(
    clf: Classifier,
    emb: np.ndarray,
    *,
    scale: np.ndarray | None = None,
    fields: Sequence[str] | None = None,
    sizes: np.ndarray | Sequence[tuple[int, int]] | None = None,
) -> dict[str, np.ndarray]:
    """Calibrated probabilities per field for (N, dim) inputs (L2-normalised image embeddings,
    or the fused input for image+text classifiers).

    The plain affine heads of all fields are scored with one matrix multiply (their ``W`` stacked
    once per classifier and cached); heads sharing one ``W`` (the built-in taxonomy levels) are
    scored once. ``sizes`` ((N, 2) widths and heights of the photos): rows of small photos are
    scored by the fields' small heads where the classifier has them (:func:`small_rows`).
    """
    x = np.ascontiguousarray(emb, np.float32)
    if x.ndim != 2 or x.shape[1] != clf.dim:
        raise ClassifierError(
            f"classifier {clf.name!r} expects ({clf.dim})-d inputs from model {clf.model!r}, got shape {x.shape}"
        )
    use = list(fields or clf.fields)
    out: dict[str, np.ndarray] = {}
    plain = [f for f in use if clf.head(f).aggregate is None and clf.head(f).input_scale == 1.0]
    if plain:
        W, b, offsets = _stacked(clf, tuple(plain))
        z = x @ W.T
        z += b
        for f in plain:
            lo, hi = offsets[f]
            h = clf.head(f)
            zf = z[:, lo:hi]
            zf *= np.float32(1.0 / max(h.temperature, 1e-6))
            out[f] = softmax(zf, inplace=True)
    shared: dict[tuple[int, float], np.ndarray] = {}
    for f in use:
        if f in out:
            continue
        h = clf.head(f)
        if h.aggregate is not None and scale is not None:
            out[f] = h.proba(x, scale=scale)
            continue
        key = (id(h.W), h.input_scale)
        if key not in shared:
            shared[key] = h.logits(x)
        z = shared[key] * np.float32(1.0 / max(h.temperature, 1e-6))
        p = softmax(z, inplace=True)
        out[f] = p if h.aggregate is None else p @ h.aggregate
    small = small_rows(clf, sizes)
    if small is not None:
        for f in use:
            h = clf.head(f)
            if h.small is not None:
                out[f][small] = h.small.proba(x[small])
    return {f: out[f] for f in use}


def _stacked(
    clf: Classifier, fields: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[int, int]]]:
    cache = clf.__dict__.setdefault("_stack_cache", {})
    if fields not in cache:
        offsets, lo = {}, 0
        for f in fields:
            n = len(clf.head(f).classes)
            offsets[f] = (lo, lo + n)
            lo += n
        W = np.ascontiguousarray(np.vstack([clf.head(f).W for f in fields]), np.float32)
        b = np.concatenate([clf.head(f).b for f in fields]).astype(np.float32)
        cache[fields] = (W, b, offsets)
    return cache[fields]


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
    levels = [f for f in hierarchy if f in probs]
    joint = mode == "joint" and len(levels) >= 2 and bool(paths)
    chosen = {f: p.argmax(axis=1) for f, p in probs.items() if not (joint and f in levels)}
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
        return {f: p.argmax(axis=1) for f, p in probs.items()}
    idx = np.asarray(usable, np.int64)  # (P, L)
    if mode == "joint":
        # path score = sum of the levels' log-probabilities: one (N, C_l) @ (C_l, P) one-hot product per level
        score = None
        for j, f in enumerate(levels):
            onehot = np.zeros((probs[f].shape[1], len(idx)), np.float32)
            onehot[idx[:, j], np.arange(len(idx))] = 1.0
            part = np.log(np.maximum(probs[f], np.float32(1e-12))) @ onehot
            score = part if score is None else score + part
        best = score.argmax(axis=1)  # type: ignore[union-attr]
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


@dataclass
class FieldArrays:
    """Vectorised predictions of one field for N rows (see :func:`predict_arrays`)."""

    classes: list[str]
    label: np.ndarray  # (N,) chosen class index (hierarchy-consistent)
    prob: np.ndarray  # (N,) its calibrated probability
    top_idx: np.ndarray  # (N, k) class indices, most probable first
    top_prob: np.ndarray  # (N, k)
    review: np.ndarray  # (N,) bool: below the abstain threshold
    unknown_label: str | None = None

    def labels(self) -> list[str]:
        names = np.asarray(self.classes + [self.unknown_label or ""], dtype=object)
        idx = self.label.copy()
        if self.unknown_label:
            idx[self.review] = len(self.classes)
        return names[idx].tolist()


def topk(p: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest entries per row, sorted (argpartition, no full sort)."""
    k = min(k, p.shape[1])
    if k <= 4 and k < p.shape[1]:  # a few argmax passes beat argpartition for small k
        q = p.copy()
        rows = np.arange(len(p))
        idx = np.empty((len(p), k), np.int64)
        for j in range(k):
            idx[:, j] = q.argmax(axis=1)
            q[rows, idx[:, j]] = -np.inf
        return idx, np.take_along_axis(p, idx, axis=1)
    if k < p.shape[1]:
        part = np.argpartition(-p, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(p.shape[1]), p.shape).copy()
    vals = np.take_along_axis(p, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


def predict_arrays(
    clf: Classifier | Ensemble,
    probs: dict[str, np.ndarray],
    *,
    top_k: int = 3,
    hierarchy: str = "joint",
    threshold: float | None = None,
    sizes: np.ndarray | Sequence[tuple[int, int]] | None = None,
) -> dict[str, FieldArrays]:
    """Hierarchy decoding, top-k and abstain flags for all rows at once (no per-row Python).

    The abstain threshold is the field head's (``threshold`` overrides it); with ``sizes``, rows of
    small photos use the small head's (see :func:`small_rows`)."""
    base = clf.members[0] if isinstance(clf, Ensemble) else clf
    classes = {f: clf.classes(f) for f in probs}
    chosen = decode(probs, classes, hierarchy_fields(clf), base.paths, hierarchy)
    unknown_label = base.extra.get("unknown_label")
    small = small_rows(base, sizes) if threshold is None else None
    out = {}
    for f, p in probs.items():
        h = base.head(f)
        thr: float | np.ndarray = h.threshold if threshold is None else threshold
        if small is not None and h.small is not None:
            thr = np.where(small, np.float32(h.small.threshold), np.float32(h.threshold))
        lab = np.asarray(chosen[f], np.int64)
        prob = np.take_along_axis(p, lab[:, None], axis=1)[:, 0]
        ti, tp = topk(p, top_k)
        out[f] = FieldArrays(classes[f], lab, prob, ti, tp, prob < thr, unknown_label)
    return out


def rows_from_arrays(arrays: dict[str, FieldArrays]) -> list[dict[str, FieldPrediction]]:
    """Per-row objects from :func:`predict_arrays` output (for JSON/API answers)."""
    n = len(next(iter(arrays.values())).label) if arrays else 0
    rows: list[dict[str, FieldPrediction]] = [{} for _ in range(n)]
    for f, a in arrays.items():
        names = a.classes
        labels = a.labels()
        probs = a.prob.tolist()
        review = a.review.tolist()
        ti = a.top_idx.tolist()
        tp = a.top_prob.tolist()
        for i in range(n):
            rows[i][f] = FieldPrediction(
                labels[i], probs[i], [(names[j], v) for j, v in zip(ti[i], tp[i], strict=True)], review[i]
            )
    return rows


def predict_rows(
    clf: Classifier | Ensemble,
    probs: dict[str, np.ndarray],
    *,
    top_k: int = 3,
    hierarchy: str = "joint",
    threshold: float | None = None,
    sizes: np.ndarray | Sequence[tuple[int, int]] | None = None,
) -> list[dict[str, FieldPrediction]]:
    """Per row, per field: label, calibrated probability, top-k and the needs-review flag.

    A prediction whose probability is below the field's abstain threshold (``threshold`` overrides
    it; small photos: the small head's, given ``sizes``) is flagged ``needs_review``; the built-in
    taxonomy answers ``"unknown"`` instead.
    """
    arrays = predict_arrays(clf, probs, top_k=top_k, hierarchy=hierarchy, threshold=threshold, sizes=sizes)
    return rows_from_arrays(arrays)
