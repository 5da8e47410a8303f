"""The fitted signals the recommenders share: popularity, visual taste, CF factors, attribute taste.

``Signals.fit`` runs once per event log; ``Signals.features`` turns one :class:`Query` into a
feature matrix over every item (numpy only, a few milliseconds for thousands of items).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from catalens.recommend.config import RecommendConfig
from catalens.recommend.interactions import Interactions, Query
from catalens.recommend.items import ItemSpace

log = logging.getLogger(__name__)


@dataclass
class Interests:
    """A query's history clustered into interests: unit centroids and weight shares."""

    centroids: np.ndarray  # (m, d)
    shares: np.ndarray  # (m,), sums to 1
    members: list[np.ndarray]  # item indices per interest


def similarity_threshold(
    vectors: np.ndarray, has_vector: np.ndarray, quantile: float, seed: int = 0
) -> float:
    """The ``quantile`` of cosine similarities between random pairs of items (a model-free scale)."""
    rows = np.flatnonzero(has_vector)
    if len(rows) < 3:
        return 0.8
    rng = np.random.default_rng(seed)
    a = rng.choice(rows, size=min(4000, len(rows) * 4))
    b = rng.choice(rows, size=len(a))
    keep = a != b
    sims = np.einsum("ij,ij->i", vectors[a[keep]], vectors[b[keep]])
    return float(np.quantile(sims, quantile))


def cluster_interests(
    vectors: np.ndarray, items: np.ndarray, weights: np.ndarray, threshold: float, max_interests: int
) -> Interests:
    """Greedy weighted clustering by cosine: heaviest items first, joined to the nearest interest
    whose centroid is at least ``threshold`` similar, else a new interest; at most ``max_interests``
    (the lightest ones are merged into their nearest)."""
    dim = vectors.shape[1]
    if len(items) == 0:
        return Interests(np.zeros((0, dim), np.float32), np.zeros(0, np.float32), [])
    order = np.argsort(-weights, kind="stable")
    sums: list[np.ndarray] = []
    wsum: list[float] = []
    members: list[list[int]] = []
    cents = np.zeros((len(items), dim), dtype=np.float32)  # unit centroids, first len(sums) rows used
    for j in order:
        v = vectors[items[j]]
        if not v.any():
            continue
        w = float(weights[j])
        m = len(sums)
        if m:
            sims = cents[:m] @ v
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                sums[best] = sums[best] + w * v
                cents[best] = sums[best] / max(float(np.linalg.norm(sums[best])), 1e-12)
                wsum[best] += w
                members[best].append(int(items[j]))
                continue
        sums.append(w * v)
        cents[m] = v / max(float(np.linalg.norm(v)), 1e-12)
        wsum.append(w)
        members.append([int(items[j])])
    if not sums:
        return Interests(np.zeros((0, dim), np.float32), np.zeros(0, np.float32), [])
    while len(sums) > max_interests:
        k = int(np.argmin(wsum))
        cents = np.stack(sums)
        cents /= np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
        sims = cents @ cents[k]
        sims[k] = -np.inf
        t = int(np.argmax(sims))
        sums[t] = sums[t] + sums[k]
        wsum[t] += wsum[k]
        members[t].extend(members[k])
        del sums[k], wsum[k], members[k]
    cents = np.stack(sums).astype(np.float32)
    cents /= np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
    shares = np.asarray(wsum, dtype=np.float32)
    return Interests(cents, shares / shares.sum(), [np.asarray(m) for m in members])


def content_matrix(items: ItemSpace) -> np.ndarray:
    """(n_items, d) content features: the visual vector and one-hot facet values, scaled so that
    both blocks weigh alike (a unit visual vector against one 1 per known facet value)."""
    blocks = [items.vectors * np.sqrt(max(1, len(items.facets)))]
    for key, codes in items.facets.items():
        onehot = np.zeros((len(items), len(items.facet_values[key])), np.float32)
        ok = codes >= 0
        onehot[np.flatnonzero(ok), codes[ok]] = 1.0
        blocks.append(onehot)
    return np.hstack(blocks).astype(np.float32)


class ContentMap:
    """Ridge regression from content (visual vector + facet values) to values learnt from events
    (CF item factors, popularity), fitted on items with events and used for items without: a new
    item lands where items that look like it and share its attributes are. The ridge strength is
    chosen by generalised cross-validation, so the data decides whether the image or the
    attributes carry the signal."""

    ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)

    def __init__(self, items: ItemSpace) -> None:
        self.x = content_matrix(items)

    def fill(self, values: np.ndarray, warm: np.ndarray, has_content: np.ndarray) -> np.ndarray:
        """``values`` with the rows of cold items that have content replaced by predictions."""
        out = np.array(values, dtype=np.float32, copy=True)
        cold = np.flatnonzero(~warm & has_content)
        rows = np.flatnonzero(warm & has_content)
        if len(cold) == 0 or len(rows) < 5:
            return out
        from sklearn.linear_model import RidgeCV

        y = values[rows].reshape(len(rows), -1)
        model = RidgeCV(alphas=self.ALPHAS).fit(self.x[rows], y)
        out[cold] = model.predict(self.x[cold]).reshape((len(cold),) + values.shape[1:])
        return out


class CFModel:
    """Implicit-feedback matrix factorisation (``implicit`` ALS) with fold-in for any history.

    Items without interactions get factors predicted from their content (:class:`ContentMap`),
    so new items can be reached through the same scores as warm ones.
    """

    def __init__(self, config: RecommendConfig) -> None:
        self.config = config
        self.item_factors: np.ndarray | None = None
        self.gram: np.ndarray | None = None

    def fit(self, inter: Interactions, items: ItemSpace, content: ContentMap | None = None) -> CFModel:
        cfg = self.config
        mat = inter.matrix()
        if mat.nnz == 0:
            return self
        conf = mat.copy()
        conf.data = 1.0 + cfg.cf_alpha * conf.data
        factors = min(cfg.cf_factors, max(2, min(mat.shape) - 1))
        try:
            from implicit.als import AlternatingLeastSquares
            from threadpoolctl import threadpool_limits
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "collaborative filtering needs `pip install catalens[recommend]` (implicit)"
            ) from exc
        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # implicit's BLAS-threads advice: limited here
            model = AlternatingLeastSquares(
                factors=factors,
                regularization=cfg.cf_regularization,
                iterations=cfg.cf_iterations,
                random_state=cfg.seed,
                num_threads=2,
                calculate_training_loss=False,
            )
            model.fit(conf.tocsr(), show_progress=False)
        v = np.asarray(model.item_factors, dtype=np.float32)[:, :factors]
        warm = inter.item_events > 0
        content = content or ContentMap(items)
        has_content = items.has_vector | (content.x[:, items.vectors.shape[1] :].sum(axis=1) > 0)
        self.item_factors = content.fill(v, warm, has_content)
        self.gram = self.item_factors[warm].T @ self.item_factors[warm]
        return self

    @property
    def fitted(self) -> bool:
        return self.item_factors is not None

    def user_vector(self, q: Query) -> np.ndarray:
        """ALS fold-in: the least-squares user factors for the query's items and confidences."""
        assert self.item_factors is not None and self.gram is not None
        y = self.item_factors[q.items]
        c = 1.0 + self.config.cf_alpha * q.weights.astype(np.float32)
        a = (
            self.gram
            + (y.T * (c - 1.0)) @ y
            + self.config.cf_regularization * np.eye(y.shape[1], dtype=np.float32)
        )
        b = (y * c[:, None]).sum(axis=0)
        return np.linalg.solve(a, b).astype(np.float32)

    def scores(self, q: Query) -> np.ndarray:
        if not self.fitted or len(q) == 0:
            return np.zeros(0 if self.item_factors is None else len(self.item_factors), np.float32)
        return self.item_factors @ self.user_vector(q)


def impute_cold(values: np.ndarray, items: ItemSpace, warm: np.ndarray, k: int) -> np.ndarray:
    """Replace the rows of items without interactions by a similarity-weighted mean of their
    ``k`` most similar warm items (by visual vector)."""
    out = np.array(values, dtype=np.float32, copy=True)
    cold = np.flatnonzero(~warm & items.has_vector)
    warm_rows = np.flatnonzero(warm & items.has_vector)
    if len(cold) == 0 or len(warm_rows) == 0:
        return out
    k = min(k, len(warm_rows))
    for start in range(0, len(cold), 1024):
        block = cold[start : start + 1024]
        sims = items.vectors[block] @ items.vectors[warm_rows].T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        s = np.take_along_axis(sims, top, axis=1)
        w = np.maximum(s, 0.0) ** 4 + 1e-6
        w /= w.sum(axis=1, keepdims=True)
        nb = values[warm_rows[top]]  # (b, k, ...) rows of the neighbours
        out[block] = np.einsum("bk,bk...->b...", w, nb)
    return out


class Signals:
    """Everything fitted on one event log that scoring needs."""

    FEATURES_BASE = ("vis_max", "vis_mean", "vis_recent", "cf", "pop", "attr")

    def __init__(self, items: ItemSpace, config: RecommendConfig) -> None:
        self.items = items
        self.config = config
        self.cf = CFModel(config)
        self.threshold = similarity_threshold(
            items.vectors, items.has_vector, config.interest_quantile, config.seed
        )
        self.pop = np.zeros(len(items), np.float32)
        self.pop_imputed = self.pop
        self.warm = np.zeros(len(items), dtype=bool)
        self.facet_keys = list(items.facets)
        # catalog frequency of each facet value (the prior of the attribute match)
        self.facet_base = {
            k: (np.bincount(c[c >= 0], minlength=len(items.facet_values[k])) + 1.0)
            / (float((c >= 0).sum()) + len(items.facet_values[k]))
            for k, c in items.facets.items()
        }
        self.content: ContentMap | None = None
        self.feature_names = list(self.FEATURES_BASE) + [f"attr_{k}" for k in self.facet_keys]

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["content"] = None  # only fitting needs it; rebuilt from the items when refitting
        return state

    def fit(self, inter: Interactions) -> Signals:
        self.warm = inter.item_events > 0
        self.pop = np.bincount(inter.i, weights=inter.w, minlength=len(self.items)).astype(np.float32)
        self.content = self.content or ContentMap(self.items)
        has_content = np.ones(len(self.items), dtype=bool)
        logpop = np.log1p(self.pop)
        imputed = np.maximum(self.content.fill(logpop[:, None], self.warm, has_content)[:, 0], 0.0)
        self.pop_imputed = imputed / max(float(imputed.max()), 1e-6)
        if len(inter):
            self.cf.fit(inter, self.items, self.content)
        return self

    # ---- per-query pieces ---------------------------------------------------------------------
    def interests(self, q: Query) -> Interests:
        return cluster_interests(
            self.items.vectors, q.items, q.weights, self.threshold, self.config.max_interests
        )

    def visual(
        self, q: Query, interests: Interests | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(max similarity to any interest, similarity to the weighted mean, max similarity to recent items)."""
        vec = self.items.vectors
        n = len(vec)
        if len(q) == 0:
            z = np.zeros(n, np.float32)
            return z, z, z
        interests = interests if interests is not None else self.interests(q)
        mean = (q.weights[:, None] * vec[q.items]).sum(axis=0)
        mean /= max(float(np.linalg.norm(mean)), 1e-12)
        recent = vec[q.recent(self.config.recent_items)]
        probe = np.vstack([interests.centroids, mean[None, :], recent]).astype(np.float32)
        sims = probe @ vec.T
        m = len(interests.centroids)
        vis_max = sims[:m].max(axis=0) if m else sims[m]
        return vis_max, sims[m], sims[m + 1 :].max(axis=0)

    def attr_affinity(self, q: Query) -> np.ndarray:
        """(n_facets, n_items): the share of the query's weight on each item's facet value."""
        out = np.zeros((len(self.facet_keys), len(self.items)), np.float32)
        if len(q) == 0:
            return out
        total = float(q.weights.sum()) or 1.0
        for f, key in enumerate(self.facet_keys):
            codes = self.items.facets[key]
            hist = codes[q.items]
            ok = hist >= 0
            dist = np.bincount(
                hist[ok], weights=q.weights[ok], minlength=len(self.items.facet_values[key]) + 1
            )
            dist = np.append(dist[: len(self.items.facet_values[key])], 0.0) / total  # code -1 -> 0
            out[f] = dist[codes]
        return out

    def attr_match(self, q: Query) -> np.ndarray:
        """(n_items,) the query's attribute preference profile applied to every item: per facet, the
        log ratio of the history's smoothed share of the item's value to the value's catalog
        frequency (a naive-Bayes log-lift), summed over facets. New items are reached as well as
        old ones: it needs only their attributes."""
        out = np.zeros(len(self.items), np.float32)
        if len(q) == 0:
            return out
        prior = self.config.attr_prior
        for key in self.facet_keys:
            codes = self.items.facets[key]
            hist = codes[q.items]
            ok = hist >= 0
            n = float(ok.sum())
            if n == 0:
                continue
            base = self.facet_base[key]
            share = np.bincount(hist[ok], weights=q.weights[ok], minlength=len(base))
            share = share / max(float(share.sum()), 1e-12)
            lift = np.log((n * share + prior * base) / ((n + prior) * base))
            out += np.where(codes >= 0, lift[np.maximum(codes, 0)], 0.0).astype(np.float32)
        return out

    def features(self, q: Query, interests: Interests | None = None) -> np.ndarray:
        """(n_features, n_items) feature matrix of the hybrid ranker."""
        vis_max, vis_mean, vis_recent = self.visual(q, interests)
        cf = self.cf.scores(q) if self.cf.fitted and len(q) else np.zeros(len(self.items), np.float32)
        return np.vstack(
            [vis_max, vis_mean, vis_recent, cf, self.pop_imputed, self.attr_match(q), self.attr_affinity(q)]
        ).astype(np.float32)
