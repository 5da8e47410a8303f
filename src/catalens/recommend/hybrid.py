"""The hybrid recommender: pairwise learning to rank over all signals.

Training uses the event log it is fitted on and nothing else. Inside that log, each sampled
user's last purchase (the strongest event kind present when there are no purchases) is held
out with everything from the user's first contact with that product on; the signals are refitted on the rest; the held-out item must outrank negatives drawn
from the candidate pool (the top items of the visual, recent-visual, CF and popularity
signals) plus a few random ones: a pairwise logistic regression on feature differences (a
linear RankNet). At query time the same candidate pool is ranked by the learned weights
(one matrix-vector product over all items). With too few training users it
falls back to a fixed blend of per-query standardised signals.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from catalens.recommend.events import EVENT_KINDS
from catalens.recommend.interactions import Interactions, make_query
from catalens.recommend.recommenders import QueryContext, Recommender, register_recommender
from catalens.recommend.signals import Signals

log = logging.getLogger(__name__)

GROUPS = {"vis_max": "visual", "vis_mean": "visual", "vis_recent": "visual", "cf": "cf", "pop": "pop"}
BLEND = {"vis_max": 1.0, "vis_mean": 0.5, "vis_recent": 0.5, "cf": 1.0, "pop": 0.5}


CANDIDATE_SIGNALS = (0, 2, 3, 4)  # vis_max, vis_recent, cf, pop
TRAIN_POOL = 50


def candidate_mask(features: np.ndarray, per_signal: int) -> np.ndarray:
    """Items among the top ``per_signal`` of any candidate signal (the ranker's first stage)."""
    n = features.shape[1]
    mask = np.zeros(n, dtype=bool)
    m = min(per_signal, n)
    for r in CANDIDATE_SIGNALS:
        mask[np.argpartition(-features[r], m - 1)[:m] if m < n else slice(None)] = True
    return mask


def group_of(feature: str) -> str:
    return GROUPS.get(feature, "attr")


def training_rows(
    inter: Interactions, items: Any, config: Any
) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    """(X, y, feature names, number of training users) built from ``inter`` alone."""
    purchase = EVENT_KINDS.index("purchase")
    target_kind = purchase if (inter.kind == purchase).any() else int(inter.kind.max(initial=0))
    rng = np.random.default_rng(config.seed)
    picks: list[tuple[int, int]] = []  # (user, index of the held-out event)
    held = np.zeros(len(inter), dtype=bool)
    for u in rng.permutation(inter.n_users):
        s = inter.events_of(int(u))
        hits = np.flatnonzero(inter.kind[s] == target_kind)
        if len(hits) == 0:
            continue
        target = inter.i[s.start + int(hits[-1])]
        # as in evaluation: the history ends at the first contact with the target product
        t = s.start + int(np.flatnonzero(inter.i[s] == target)[0])
        if t == s.start:
            continue
        held[t : s.stop] = True
        picks.append((int(u), t))
        if len(picks) >= config.hybrid_train_users:
            break
    if len(picks) < config.hybrid_min_users:
        return np.zeros((0, 0)), np.zeros(0), [], len(picks)
    inner = Interactions(inter.events.subset(~held), items, config)
    sig = Signals(items, config).fit(inner)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    n_items = len(items)
    n_neg = config.hybrid_negatives
    for u, t in picks:
        s = inter.events_of(u)
        hist = slice(s.start, t)
        pos = int(inter.i[t])
        bought = inter.i[hist][inter.kind[hist] == purchase]
        q = make_query(
            inter.i[hist], inter.kind[hist], inter.ts[hist], inter.row_weight[hist], config, inner.now_ms
        )
        ctx = QueryContext(q, sig)
        f = ctx.features
        pool = np.flatnonzero(candidate_mask(f, TRAIN_POOL))
        pool = pool[(pool != pos) & ~np.isin(pool, bought)]
        negs = np.unique(
            np.concatenate(
                [rng.choice(pool, min(len(pool), n_neg), replace=False), rng.integers(0, n_items, n_neg // 4)]
            )
        )
        negs = negs[(negs != pos) & ~np.isin(negs, bought)]
        diff = (f[:, [pos]] - f[:, negs]).T  # pairwise: the bought item should beat each negative
        xs.append(np.vstack([diff, -diff]))
        ys.append(np.r_[np.ones(len(negs)), np.zeros(len(negs))])
    return np.vstack(xs), np.concatenate(ys), sig.feature_names, len(picks)


@register_recommender
class HybridRecommender(Recommender):
    name = "hybrid"
    description = "learned ranking over visual, CF, popularity and attribute-match signals"

    def __init__(self, signals: Signals) -> None:
        super().__init__(signals)
        names = signals.feature_names
        self.weights = np.array([BLEND.get(n, 0.5 / max(1, len(names) - 5)) for n in names], np.float32)
        self.bias = 0.0
        self.mean = np.zeros(len(names), np.float32)
        self.learned = False
        self.n_train_users = 0

    def fit(self, inter: Interactions) -> HybridRecommender:
        x, y, names, n_users = training_rows(inter, self.signals.items, self.signals.config)
        self.n_train_users = n_users
        if len(y) == 0 or y.sum() < self.signals.config.hybrid_min_users:
            log.info("hybrid: %d training users, using a fixed blend", n_users)
            return self
        from sklearn.linear_model import LogisticRegression

        scale = np.maximum(x.std(axis=0), 1e-6)  # pairs are symmetric: mean 0, no intercept
        lr = LogisticRegression(C=1.0, max_iter=1000, fit_intercept=False).fit(x / scale, y)
        self.weights = (lr.coef_[0] / scale).astype(np.float32)
        self.mean = np.zeros_like(self.weights)
        self.bias = 0.0
        self.learned = True
        return self

    def score(self, ctx: QueryContext) -> np.ndarray:
        f = ctx.features
        if self.learned:
            score = self.weights @ f + self.bias
            keep = candidate_mask(f, self.signals.config.candidate_pool)
            return np.where(keep, score, score.min() - 1.0).astype(np.float32)
        mu = f.mean(axis=1, keepdims=True)
        sd = f.std(axis=1, keepdims=True) + 1e-6
        return self.weights @ ((f - mu) / sd)

    def contributions(self, ctx: QueryContext, item: int) -> dict[str, float]:
        f = ctx.features[:, item]
        ref = self.mean if self.learned else ctx.features.mean(axis=1)
        contrib = self.weights * (f - ref)
        out: dict[str, float] = {}
        for name, c in zip(self.signals.feature_names, contrib, strict=True):
            g = group_of(name)
            out[g] = out.get(g, 0.0) + float(c)
        return out

    def reason_signal(self, ctx: QueryContext, item: int) -> str:
        if len(ctx.q) == 0:
            return "pop"
        contrib = self.contributions(ctx, item)
        return max(contrib, key=lambda g: contrib[g])

    def describe(self) -> dict[str, Any]:
        return {
            "learned": self.learned,
            "train_users": self.n_train_users,
            "weights": dict(zip(self.signals.feature_names, map(float, self.weights), strict=True)),
        }
