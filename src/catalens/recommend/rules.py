"""Business rules and re-ranking: exclusion masks, ``--where`` filters, diversity, reasons."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from catalens.errors import ConfigError
from catalens.recommend.items import ItemSpace
from catalens.recommend.signals import Interests

VERBS = {"view": "viewed", "click": "clicked", "like": "liked", "cart": "added to cart", "purchase": "bought"}


def where_mask(items: ItemSpace, where: str | None, cache: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Items whose attributes (plus ``id`` and ``title``) match a ``--where`` filter as in search."""
    if not where:
        return np.ones(len(items), dtype=bool)
    if cache is not None and where in cache:
        return cache[where]
    try:
        from catalens.search.filters import check_filter, parse_where
    except ImportError as exc:
        raise ConfigError(
            "--where needs catalens.search.filters, which is not available in this build"
        ) from exc
    flt = parse_where(where)
    rows = [
        {**a, "id": pid, "title": t or ""}
        for pid, t, a in zip(items.ids, items.titles, items.attrs, strict=True)
    ]
    check_filter(flt, rows)  # unknown field: error; value no item has: warning
    mask = np.fromiter((bool(flt.matches(r)) for r in rows), dtype=bool, count=len(items))
    if cache is not None:
        cache[where] = mask
    return mask


def allowed_mask(
    items: ItemSpace,
    *,
    exclude: Iterable[int] = (),
    include_out_of_stock: bool = False,
    where: np.ndarray | None = None,
) -> np.ndarray:
    mask = np.ones(len(items), dtype=bool) if where is None else where.copy()
    if not include_out_of_stock and items.out_of_stock is not None:
        mask &= ~items.out_of_stock
    ex = np.fromiter(exclude, dtype=np.int64)
    if len(ex):
        mask[ex] = False
    return mask


def top_candidates(scores: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` best allowed items, best first."""
    idx = np.flatnonzero(allowed)
    if len(idx) == 0:
        return idx
    s = scores[idx]
    n = min(n, len(idx))
    part = np.argpartition(-s, n - 1)[:n] if n < len(idx) else np.arange(len(idx))
    return idx[part[np.argsort(-s[part], kind="stable")]]


def _capped(cands: np.ndarray, category: np.ndarray, cap: int | None) -> np.ndarray:
    if not cap:
        return cands
    seen: dict[int, int] = {}
    keep = []
    for c in cands:
        cat = int(category[c])
        if cat >= 0 and seen.get(cat, 0) >= cap:
            continue
        seen[cat] = seen.get(cat, 0) + 1
        keep.append(c)
    return np.asarray(keep, dtype=np.int64)


def interleave_interests(cands: np.ndarray, vectors: np.ndarray, interests: Interests, k: int) -> np.ndarray:
    """Give each interest a share of the list proportional to its weight: candidates (best first)
    are assigned to their nearest interest, and each slot goes to the interest furthest below its
    share (a shopper of shoes and watches gets both)."""
    m = len(interests.centroids)
    if m <= 1 or len(cands) <= k:
        return cands[:k]
    owner = np.argmax(vectors[cands] @ interests.centroids.T, axis=1)
    queues = [list(cands[owner == i]) for i in range(m)]
    taken = np.zeros(m)
    out: list[int] = []
    while len(out) < k and any(queues):
        deficit = interests.shares * (len(out) + 1) - taken
        for i in np.argsort(-deficit, kind="stable"):
            if queues[i]:
                out.append(int(queues[i].pop(0)))
                taken[i] += 1
                break
    return np.asarray(out, dtype=np.int64)


def mmr(cands: np.ndarray, scores: np.ndarray, vectors: np.ndarray, k: int, lam: float) -> np.ndarray:
    """Maximal marginal relevance over visual similarity (relevance rescaled to [0, 1])."""
    if len(cands) <= 1:
        return cands[:k]
    rel = scores[cands].astype(np.float64)
    rel = (rel - rel.min()) / max(rel.max() - rel.min(), 1e-12)
    sims = vectors[cands] @ vectors[cands].T
    chosen = [0]
    best_sim = sims[0].copy()
    for _ in range(1, min(k, len(cands))):
        gain = lam * rel - (1 - lam) * best_sim
        gain[chosen] = -np.inf
        j = int(np.argmax(gain))
        chosen.append(j)
        best_sim = np.maximum(best_sim, sims[j])
    return cands[chosen]


def diversify(
    cands: np.ndarray,
    scores: np.ndarray,
    items: ItemSpace,
    interests: Interests | None,
    k: int,
    *,
    method: str = "interests",
    lam: float = 0.8,
    max_per_category: int | None = None,
) -> np.ndarray:
    cands = _capped(cands, items.category, max_per_category)
    if method == "interests" and interests is not None:
        return interleave_interests(cands, items.vectors, interests, k)
    if method == "mmr":
        return mmr(cands, scores, items.vectors, k, lam)
    if method not in ("none", "interests"):
        raise ConfigError(f"unknown diversity method {method!r}: use interests, mmr or none")
    return cands[:k]


def intra_list_diversity(vectors: np.ndarray, rec: np.ndarray) -> float:
    """Mean pairwise (1 - cosine similarity) within one list."""
    if len(rec) < 2:
        return 0.0
    v = vectors[rec]
    sims = v @ v.T
    n = len(rec)
    return float((n * n - sims.sum()) / (n * (n - 1)))


def reason_text(
    signal: str, items: ItemSpace, item: int, anchor: int | None, verb: str | None, facet: Any
) -> str:
    """A short human-readable reason."""
    cat = items.category_name(item)
    if signal == "random":
        return "random pick (baseline)"
    if signal == "pop" or anchor is None:
        return f"popular in {cat}" if cat else "popular right now"
    name = items.label(anchor)
    if signal == "cf":
        return f"because you {verb} {name}: shoppers with a similar history chose this"
    if signal == "attr" and facet:
        return f"matches your taste for {facet} (like {name}, which you {verb})"
    return f"because you {verb} {name} (similar look)"
