"""The hybrid recommender: a two-stage ranker over the visual, CF, attribute-match and popularity signals.

Stage 1 (candidates): the union of each component signal's top ``candidate_per_signal`` items
(``vis_max``, ``vis_recent``, ``cf``, ``attr``, ``pop``), so every component's own top list is in
the pool. Stage 2 (ranking): a linear model over per-query normalised features of every signal:
its rank among all items (``1 - log(1 + rank) / log(1 + n)``), its z-score (CF and popularity are
standardised separately among items with and without events, since the values of new items are
predicted from content and have another scale) and the per-facet attribute shares, plus a
new-item flag and its product with every rank feature: items without events get rank weights of
their own (their CF and popularity are guesses, their visual and attribute match are not).

Training uses the event log it is fitted on and nothing else. Each sampled user's last purchase
(the strongest event kind present when there are no purchases) is held out with everything from
the user's first contact with that product on, and a random share of items
(``hybrid_pseudo_cold``) loses all its events, so the model also learns to rank items without
events; the signals are refitted on the rest. The model is a listwise softmax regression (the
bought item against sampled candidates, L-BFGS). A validation cut of the training users then
compares, by Recall@10, the learned ranker with each component signal alone; the best of them is
kept, so the hybrid does not rank worse than its best component on held-out training data. With
too few training users it uses a fixed blend of the rank features.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from catalens.recommend.events import EVENT_KINDS
from catalens.recommend.interactions import Interactions, make_query
from catalens.recommend.recommenders import QueryContext, Recommender, register_recommender
from catalens.recommend.signals import Signals

log = logging.getLogger(__name__)

# component signals: candidate generators and the single-signal alternatives of the learned blend
COMPONENTS = ("vis_max", "vis_recent", "cf", "attr", "pop")
GROUPS = {"vis_max": "visual", "vis_mean": "visual", "vis_recent": "visual", "cf": "cf", "pop": "pop"}
RANKED = ("vis_max", "vis_mean", "vis_recent", "cf", "pop", "attr")
GROUP_Z = ("cf", "pop")  # standardised separately among items with and without events
BLEND = {"vis_max": 1.0, "vis_recent": 0.5, "cf": 1.0, "attr": 0.5, "pop": 0.5}
EVAL_K = 10
NEW_ITEM_BOOSTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)  # score offsets tried for new items (logits)
MIN_NEW = 10  # fewer new (or warm) validation purchases: no new-item constraint


def _summary(hits: np.ndarray, is_new: list[bool]) -> tuple[float, float, float]:
    new = np.asarray(is_new, dtype=bool)
    return (
        float(hits.mean()) if len(hits) else 0.0,
        float(hits[new].mean()) if new.any() else 0.0,
        float(hits[~new].mean()) if (~new).any() else 0.0,
    )


def group_of(feature: str) -> str:
    """The signal group a feature explains: visual | cf | attr | pop (None for the new-item flag)."""
    base = feature.split(":", 1)[0].replace("new*", "")
    return GROUPS.get(base, "attr")


@dataclass
class RankFeatures:
    """The ranker's features of one query for the first-stage candidates (computed for them only)."""

    x: np.ndarray  # (n_features, n_candidates) float32
    candidates: np.ndarray  # (n_items,) bool
    cols: np.ndarray  # (n_candidates,) item indices, ascending

    def col(self, item: int) -> int:
        """The column of a candidate item."""
        return int(np.searchsorted(self.cols, item))


def feature_names(signals: Signals) -> list[str]:
    names = [f"{s}:rank" for s in RANKED] + [f"{s}:z" for s in RANKED]
    names += [f"attr_{k}" for k in signals.facet_keys]
    return names + ["new"] + [f"new*{s}:rank" for s in RANKED]


def _standardise(v: np.ndarray, cols: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """z-scores of ``v[cols]`` against all items (or against the item's group: with / without events)."""
    if groups is None:
        return (v[cols] - v.mean()) / (v.std() + 1e-6)
    out = np.empty(len(cols), dtype=np.float32)
    for g in (False, True):
        sel = groups[cols] == g
        ref = v[groups == g]
        out[sel] = (v[cols][sel] - ref.mean()) / (ref.std() + 1e-6)
    return out


def rank_features(f: np.ndarray, signals: Signals, per_signal: int) -> RankFeatures:
    """Per-query normalised features from the raw signal matrix ``f`` (see the module docstring)."""
    names = signals.feature_names
    n = f.shape[1]
    row = {name: f[i] for i, name in enumerate(names)}
    cold = ~signals.warm
    both = bool(cold.any() and signals.warm.any())
    m = min(per_signal, n)
    cand = np.zeros(n, dtype=bool)
    for s in COMPONENTS:
        cand[np.argpartition(-row[s], m - 1)[:m] if m < n else slice(None)] = True
    cols = np.flatnonzero(cand)
    out = np.empty((len(feature_names(signals)), len(cols)), dtype=np.float32)
    denom = np.log1p(n)
    base = len(RANKED)
    for r, s in enumerate(RANKED):
        v = row[s]
        rank = n - np.searchsorted(np.sort(v), v[cols], side="right")  # items scored strictly higher
        out[r] = 1.0 - np.log1p(rank) / denom
        out[base + r] = _standardise(v, cols, cold if (s in GROUP_Z and both) else None)
    n_facets = len(signals.facet_keys)
    start = 2 * base
    if n_facets:
        out[start : start + n_facets] = f[len(names) - n_facets :][:, cols]
    d0 = start + n_facets
    out[d0] = cold[cols]
    out[d0 + 1 :] = out[:base] * out[d0]  # new items get rank weights of their own
    return RankFeatures(out, cand, cols)


def _softmax_fit(xs: np.ndarray, mask: np.ndarray, l2: float) -> np.ndarray:
    """Listwise softmax regression: column 0 of each query is the bought item; returns weights."""
    from scipy.optimize import minimize

    nq, _, d = xs.shape

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = np.where(mask, xs @ w, -np.inf)
        top = s.max(axis=1, keepdims=True)
        e = np.exp(s - top)
        z = e.sum(axis=1, keepdims=True)
        p = e / z
        val = float(np.mean(np.log(z[:, 0]) + top[:, 0] - s[:, 0])) + 0.5 * l2 / nq * float(w @ w)
        grad = np.einsum("qm,qmd->d", p, xs) / nq - xs[:, 0].mean(axis=0) + l2 / nq * w
        return val, grad

    res = minimize(loss, np.zeros(d), jac=True, method="L-BFGS-B", options={"maxiter": 300})
    return res.x.astype(np.float32)


@dataclass
class TrainingSet:
    """Per training query: the bought item's and sampled candidates' features; full candidate sets
    of validation queries (to compare the learned ranker with each component at Recall@10)."""

    fit_x: np.ndarray  # (q, m, d) bought item first
    fit_mask: np.ndarray  # (q, m) bool
    val: list[tuple[np.ndarray, np.ndarray, int]]  # (features (d, c), raw component scores (5, c), pos col)
    val_new: list[bool]  # validation query's bought item has no events in the training cut
    users: int
    pos_in_candidates: float


def training_set(inter: Interactions, signals: Signals) -> TrainingSet | None:
    """Hold out each sampled user's last purchase, refit the signals on the rest, collect features."""
    items, config = signals.items, signals.config
    purchase = EVENT_KINDS.index("purchase")
    target_kind = purchase if (inter.kind == purchase).any() else int(inter.kind.max(initial=0))
    rng = np.random.default_rng(config.seed)
    picks: list[tuple[int, int]] = []  # (user, index of the first event on the held-out product)
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
        return None
    # pseudo-new items: a random share of the items with events loses all of them
    with_events = np.flatnonzero(inter.item_events > 0)
    n_cold = int(round(config.hybrid_pseudo_cold * len(with_events)))
    pseudo = np.zeros(len(items), dtype=bool)
    if n_cold and len(with_events) > 2 * n_cold:
        pseudo[rng.choice(with_events, n_cold, replace=False)] = True
    inner = Interactions(inter.events.subset(~held & ~pseudo[inter.i]), items, config)
    sig = Signals(items, config)
    sig.content = signals.content
    sig.fit(inner)
    n_val = int(round(config.hybrid_validation * len(picks)))
    comp_rows = [sig.feature_names.index(c) for c in COMPONENTS]
    fit_x: list[np.ndarray] = []
    val: list[tuple[np.ndarray, np.ndarray, int]] = []
    val_new: list[bool] = []
    found = 0
    m = config.hybrid_negatives
    for n, (u, t) in enumerate(picks):
        s = inter.events_of(u)
        hist = slice(s.start, t)
        pos = int(inter.i[t])
        q = make_query(
            inter.i[hist], inter.kind[hist], inter.ts[hist], inter.row_weight[hist], config, inner.now_ms
        )
        f = sig.features(q, sig.interests(q))
        rf = rank_features(f, sig, config.candidate_per_signal)
        cand = rf.candidates.copy()
        cand[inter.i[hist][inter.kind[hist] == purchase]] = False  # as at query time: bought is excluded
        if n < n_val:
            val_new.append(not sig.warm[pos])
        if not cand[pos]:
            if n < n_val:
                val.append((np.zeros((rf.x.shape[0], 0), np.float32), np.zeros((len(COMPONENTS), 0)), -1))
            continue
        found += 1
        cand[pos] = False
        others = np.flatnonzero(cand)
        if n < n_val:
            items_ = np.r_[pos, others]
            val.append((rf.x[:, np.searchsorted(rf.cols, items_)], f[comp_rows][:, items_], 0))
            continue
        negs = rng.choice(others, min(m, len(others)), replace=False)
        fit_x.append(rf.x[:, np.searchsorted(rf.cols, np.r_[pos, negs])].T)
    if len(fit_x) < config.hybrid_min_users:
        return None
    d = fit_x[0].shape[1]
    width = max(len(x) for x in fit_x)
    xs = np.zeros((len(fit_x), width, d), np.float32)
    mask = np.zeros((len(fit_x), width), dtype=bool)
    for k, x in enumerate(fit_x):
        xs[k, : len(x)] = x
        mask[k, : len(x)] = True
    return TrainingSet(xs, mask, val, val_new, len(picks), found / len(picks))


def _recall_at(scores: np.ndarray, pos: int, k: int = EVAL_K) -> float:
    if pos < 0:
        return 0.0
    return float((scores > scores[pos]).sum() < k)


@register_recommender
class HybridRecommender(Recommender):
    name = "hybrid"
    description = "two-stage ranker over visual, CF, attribute-match and popularity signals (learned)"

    def __init__(self, signals: Signals) -> None:
        super().__init__(signals)
        self.names = feature_names(signals)
        self.weights = np.zeros(len(self.names), np.float32)
        for s, w in BLEND.items():
            self.weights[self.names.index(f"{s}:rank")] = w
        self.mean = np.zeros(len(self.names), np.float32)
        self.scale = np.ones(len(self.names), np.float32)
        self.mode = "blend"  # blend (fixed) | learned | one of COMPONENTS (the best single signal)
        self.n_train_users = 0
        self.validation: dict[str, float] = {}
        self.validation_new: dict[str, float] = {}
        self.new_boost = 0.0  # added to the learned score of items without events
        self.chosen = "blend"  # the validation option kept
        self.feasible: list[str] = []  # validation options that met the new-item rule
        self.pos_in_candidates: float | None = None

    def fit(self, inter: Interactions) -> HybridRecommender:
        ts = training_set(inter, self.signals)
        if ts is None:
            log.info("hybrid: too few training users, using a fixed blend")
            return self
        self.n_train_users = ts.users
        self.pos_in_candidates = round(ts.pos_in_candidates, 4)
        flat = ts.fit_x[ts.fit_mask]
        self.mean = flat.mean(axis=0).astype(np.float32)
        self.scale = np.maximum(flat.std(axis=0), 1e-6).astype(np.float32)
        xs = (ts.fit_x - self.mean) / self.scale
        w = _softmax_fit(xs, ts.fit_mask, self.signals.config.hybrid_l2)
        self.choose(ts, w)
        log.info("hybrid: %s (validation Recall@%d %s)", self.mode, EVAL_K, self.validation)
        return self

    def choose(self, ts: TrainingSet, w: np.ndarray) -> None:
        """Pick, on the validation cut, the learned ranker (with a score offset for new items) or the
        best single component: the best Recall@10 among the options whose new-item recall is at
        least ``new_item_parity`` times their recall of items with events (new items must reach
        shoppers); when no option meets it, the one closest to it."""
        cfg = self.signals.config
        new_col = self.names.index("new")
        options: dict[str, tuple[float, float, float]] = {}  # name -> (recall, new recall, warm recall)
        n_new = sum(ts.val_new)
        n_warm = len(ts.val) - n_new
        learned = [
            (w @ ((x.T - self.mean) / self.scale).T, x[new_col] > 0) if pos >= 0 else (None, None)
            for x, _, pos in ts.val
        ]
        for boost in NEW_ITEM_BOOSTS:
            hits = np.array(
                [
                    _recall_at(sc + boost * isn, pos) if pos >= 0 else 0.0
                    for (sc, isn), (_, _, pos) in zip(learned, ts.val, strict=True)
                ]
            )
            options[f"learned+{boost:g}"] = _summary(hits, ts.val_new)
        for c, name in enumerate(COMPONENTS):
            hits = np.array([_recall_at(comp[c], pos) if pos >= 0 else 0.0 for _, comp, pos in ts.val])
            options[name] = _summary(hits, ts.val_new)
        if n_new < MIN_NEW or n_warm < MIN_NEW or cfg.new_item_parity <= 0:
            feasible = list(options)
        else:
            feasible = [o for o, (_, new, warm) in options.items() if new >= cfg.new_item_parity * warm]
        if feasible:
            best = max(feasible, key=lambda o: (options[o][0], o.startswith("learned")))
        else:
            best = max(options, key=lambda o: (options[o][1] / max(options[o][2], 1e-9), options[o][0]))
        self.validation = {o: round(v[0], 4) for o, v in options.items()}
        self.validation_new = {o: round(v[1], 4) for o, v in options.items()}
        self.validation_new["n"] = n_new
        self.chosen, self.feasible = best, feasible
        if best.startswith("learned"):
            self.mode = "learned"
            self.weights = w
            self.new_boost = float(best.split("+", 1)[1])
        else:
            self.mode = best

    # ---- scoring --------------------------------------------------------------------------------
    def _features(self, ctx: QueryContext) -> RankFeatures:
        if "rank_features" not in ctx.cache:
            ctx.cache["rank_features"] = rank_features(
                ctx.features, self.signals, self.signals.config.candidate_per_signal
            )
        return ctx.cache["rank_features"]

    def score(self, ctx: QueryContext) -> np.ndarray:
        if self.mode in COMPONENTS:
            return ctx.feature(self.mode)
        rf = self._features(ctx)
        wv = self.weights / self.scale
        sc = wv @ rf.x - float(wv @ self.mean)
        if self.new_boost:
            sc = sc + self.new_boost * (rf.x[self.names.index("new")] > 0)
        # items outside the candidates (reached only under narrow filters) follow, ordered by the
        # mean of the components' z-scores
        f = ctx.features
        rows = [self.signals.feature_names.index(c) for c in COMPONENTS]
        z = f[rows] - f[rows].mean(axis=1, keepdims=True)
        fb = (z / (z.std(axis=1, keepdims=True) + 1e-6)).mean(axis=0)
        fb = (fb - fb.min()) / (float(fb.max() - fb.min()) + 1e-6)
        low = float(sc.min()) if len(sc) else 0.0
        out = (low - 2.0 + fb).astype(np.float32)
        out[rf.cols] = sc
        return out

    def contributions(self, ctx: QueryContext, item: int) -> dict[str, float]:
        if self.mode in COMPONENTS:
            return {group_of(self.mode): 1.0}
        rf = self._features(ctx)
        if not rf.candidates[item]:
            return {"visual": 0.0}
        if "rank_ref" not in ctx.cache:
            ctx.cache["rank_ref"] = rf.x.mean(axis=1)
        contrib = self.weights / self.scale * (rf.x[:, rf.col(item)] - ctx.cache["rank_ref"])
        out: dict[str, float] = {}
        for name, c in zip(self.names, contrib, strict=True):
            if name == "new":
                continue
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
            "learned": self.mode == "learned",
            "mode": self.mode,
            "train_users": self.n_train_users,
            "bought_in_candidates": self.pos_in_candidates,
            "chosen": self.chosen,
            "meets_new_item_rule": self.feasible,
            "new_item_boost": self.new_boost,
            "validation_recall": self.validation,
            "validation_recall_new_items": self.validation_new,
            "weights": {self.mode: 1.0}
            if self.mode in COMPONENTS
            else {
                n: round(float(w / s), 4)
                for n, w, s in zip(self.names, self.weights, self.scale, strict=True)
            },
        }
