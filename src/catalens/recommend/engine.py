"""The recommendation engine: fitted signals + recommenders + rules, for users and sessions."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

import catalens.recommend.hybrid  # noqa: F401  (registers the hybrid recommender)
from catalens.errors import NotFoundError
from catalens.recommend import rules
from catalens.recommend.config import RecommendConfig
from catalens.recommend.events import EVENT_KINDS, EventArrays
from catalens.recommend.interactions import Interactions, Query, make_query
from catalens.recommend.items import ItemSpace, reduce_vectors
from catalens.recommend.recommenders import RECOMMENDERS, QueryContext, Recommender, get_recommender
from catalens.recommend.signals import Signals


@dataclass
class Recommendation:
    product_id: str
    title: str | None
    score: float
    reason: str
    because: str | None  # the history product the reason names
    signal: str  # visual | cf | attr | pop | random


@dataclass
class RecommendResult:
    items: list[Recommendation]
    recommender: str
    user: str | None = None
    products: list[str] = field(default_factory=list)
    note: str | None = None
    interests: int = 0
    history: int = 0
    took_ms: float = 0.0
    engine: dict[str, Any] | None = None  # how the fitted engine was obtained (fitted | loaded, seconds)
    fallback: str | None = None  # "popularity" when there was no history to personalise from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RecommendEngine:
    """Fits once per event log; ``recommend_*`` then take a few milliseconds per call."""

    def __init__(self, items: ItemSpace, events: EventArrays, config: RecommendConfig | None = None) -> None:
        self.config = config or RecommendConfig()
        self.items = items = reduce_vectors(items, self.config.vector_dim)
        self.inter = Interactions(events, items, self.config)
        self.signals = Signals(items, self.config).fit(self.inter)
        self._recommenders: dict[str, Recommender] = {}
        self._where_cache: dict[str, np.ndarray] = {}
        cat = items.category
        self._pop_by_cat = self._popular_by_category(cat)

    # ---- recommenders -------------------------------------------------------------------------
    def recommender(self, name: str) -> Recommender:
        if name not in self._recommenders:
            self._recommenders[name] = get_recommender(name)(self.signals).fit(self.inter)
        return self._recommenders[name]

    def fit_all(self) -> RecommendEngine:
        """Fit every registered recommender (before storing the engine)."""
        for name in RECOMMENDERS:
            self.recommender(name)
        return self

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_where_cache"] = {}
        return state

    # ---- queries ------------------------------------------------------------------------------
    def query_for_user(self, user: str, extra: EventArrays | None = None) -> Query:
        """The user's history from the fitted log, plus ``extra`` events (e.g. newer ones)."""
        items = [np.zeros(0, np.int64)]
        kinds = [np.zeros(0, np.int8)]
        ts = [np.zeros(0, np.int64)]
        rw = [np.zeros(0, np.float32)]
        if user in self.inter.user_index:
            s = self.inter.events_of(self.inter.user_index[user])
            items.append(self.inter.i[s])
            kinds.append(self.inter.kind[s])
            ts.append(self.inter.ts[s])
            rw.append(self.inter.row_weight[s])
        if extra is not None and len(extra):
            idx = np.fromiter((self.items.index.get(p, -1) for p in extra.product), np.int64, len(extra))
            ok = idx >= 0
            items.append(idx[ok])
            kinds.append(extra.kind[ok])
            ts.append(extra.ts_ms[ok])
            rw.append(extra.weight[ok])
        all_ts = np.concatenate(ts)
        now = max(self.inter.now_ms, float(all_ts.max()) if len(all_ts) else 0.0)
        return make_query(
            np.concatenate(items), np.concatenate(kinds), all_ts, np.concatenate(rw), self.config, now, user
        )

    def query_for_products(self, product_ids: Sequence[str]) -> Query:
        """An anonymous session: the products in order, later ones more recent, all as views."""
        idx = []
        missing = []
        for p in product_ids:
            if p in self.items.index:
                idx.append(self.items.index[p])
            else:
                missing.append(p)
        if missing:
            raise NotFoundError(f"unknown product id(s): {', '.join(missing[:10])}")
        n = len(idx)
        ts = self.inter.now_ms - (n - 1 - np.arange(n, dtype=np.int64)) * 1000
        view = EVENT_KINDS.index("view")
        return make_query(
            np.asarray(idx, np.int64),
            np.full(n, view, np.int8),
            ts,
            np.ones(n, np.float32),
            self.config,
            self.inter.now_ms,
        )

    # ---- recommending -------------------------------------------------------------------------
    def recommend_user(
        self, user: str, k: int = 20, *, extra: EventArrays | None = None, **kw: Any
    ) -> RecommendResult:
        q = self.query_for_user(user, extra)
        note = None
        if len(q) == 0:
            note = (
                f"unknown user {user!r} (no events for catalog products): showing popular items by category"
            )
        res = self.recommend_query(q, k, **kw)
        res.user = user
        res.note = note or res.note
        return res

    def recommend_products(self, product_ids: Sequence[str], k: int = 20, **kw: Any) -> RecommendResult:
        q = self.query_for_products(product_ids)
        kw.setdefault("exclude_seen", True)
        res = self.recommend_query(q, k, **kw)
        res.products = list(product_ids)
        return res

    def rank(
        self,
        q: Query,
        k: int,
        *,
        recommender: str = "hybrid",
        where: str | None = None,
        exclude: Sequence[str] = (),
        exclude_purchased: bool = True,
        exclude_seen: bool = False,
        include_out_of_stock: bool = False,
        diversity: str | None = None,
        max_per_category: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, QueryContext | None, Recommender | None]:
        """(item indices, scores, context, recommender): the core used by recommend and evaluation."""
        ex = [self.items.index[p] for p in exclude if p in self.items.index]
        purchase = EVENT_KINDS.index("purchase")
        if exclude_seen:
            ex.extend(q.items.tolist())
        elif exclude_purchased:
            ex.extend(q.items[q.kind == purchase].tolist())
        allowed = rules.allowed_mask(
            self.items,
            exclude=ex,
            include_out_of_stock=include_out_of_stock,
            where=rules.where_mask(self.items, where, self._where_cache) if where else None,
        )
        if len(q) == 0:
            return self._popular_cold(allowed, k), np.zeros(0), None, None
        rec = self.recommender(recommender)
        ctx = QueryContext(q, self.signals)
        scores = rec.score(ctx)
        pool = rules.top_candidates(scores, allowed, max(self.config.candidate_pool, 5 * k))
        method = diversity or self.config.diversity
        interests = ctx.interests if method == "interests" else None
        chosen = rules.diversify(
            pool,
            scores,
            self.items,
            interests,
            k,
            method=method,
            lam=self.config.mmr_lambda,
            max_per_category=max_per_category
            if max_per_category is not None
            else self.config.max_per_category,
        )
        return chosen, scores, ctx, rec

    def recommend_query(self, q: Query, k: int = 20, **kw: Any) -> RecommendResult:
        t0 = time.perf_counter()
        name = kw.get("recommender", "hybrid")
        chosen, scores, ctx, rec = self.rank(q, k, **kw)
        if ctx is None or rec is None:
            # no history: the most popular items of each category, scored by their popularity
            # (log of the weighted event count, 1 = the most popular item)
            pop = self.signals.pop_imputed
            out = [self._item(int(j), float(pop[j]), "pop", None, None) for j in chosen]
            out.sort(key=lambda r: -r.score)
            return RecommendResult(
                out, "popular-by-category", note=None, took_ms=_ms(t0), fallback="popularity"
            )
        out = self._explain_all(ctx, rec, chosen, scores)
        out.sort(key=lambda r: -r.score)  # diversity picks the set; the list reads best first
        return RecommendResult(
            out, name, interests=len(ctx.interests.centroids), history=len(q), took_ms=_ms(t0)
        )

    # ---- helpers ------------------------------------------------------------------------------
    def _popular_by_category(self, cat: np.ndarray) -> list[np.ndarray]:
        pop = self.signals.pop
        order = np.argsort(-pop, kind="stable")
        cats = np.unique(cat)
        totals = {int(c): float(pop[cat == c].sum()) for c in cats}
        ranked_cats = sorted(totals, key=lambda c: -totals[c])
        return [order[cat[order] == c] for c in ranked_cats]

    def _popular_cold(self, allowed: np.ndarray, k: int) -> np.ndarray:
        """Round-robin over categories (most popular first), each category's most popular items."""
        queues = [q[allowed[q]] for q in self._pop_by_cat]
        out: list[int] = []
        depth = 0
        while len(out) < k and any(depth < len(q) for q in queues):
            for q in queues:
                if depth < len(q) and len(out) < k:
                    out.append(int(q[depth]))
            depth += 1
        return np.asarray(out, dtype=np.int64)

    def _item(
        self, j: int, score: float, signal: str, anchor: int | None, verb: str | None, facet: Any = None
    ) -> Recommendation:
        return Recommendation(
            product_id=self.items.ids[j],
            title=self.items.titles[j],
            score=round(score, 6),
            reason=rules.reason_text(signal, self.items, j, anchor, verb, facet),
            because=self.items.ids[anchor]
            if anchor is not None and signal not in ("pop", "random")
            else None,
            signal=signal,
        )

    def _explain_all(
        self, ctx: QueryContext, rec: Recommender, chosen: np.ndarray, scores: np.ndarray
    ) -> list[Recommendation]:
        """Score, reason and the history item the reason names, for every chosen item at once.

        Each row gets its own reason where it can: the candidate explanations of a row under its
        signal (collaborative: the history items closest in the factor space; attributes: the shared
        facets, each with the most similar history item that has it, then the most similar history
        items; visual: the most similar history items) are tried in order and the first whose text no
        earlier row used is taken."""
        q = ctx.q
        vec = self.items.vectors
        if not len(chosen):
            return []
        vis_order = np.argsort(-(vec[chosen] @ vec[q.items].T), axis=1, kind="stable")[:, :5]
        cf_order = vis_order
        if self.signals.cf.fitted:
            v = self.signals.cf.item_factors
            cf_order = np.argsort(-(v[chosen] @ v[q.items].T), axis=1, kind="stable")[:, :3]
        n_base = len(self.signals.FEATURES_BASE)
        used: set[str] = set()
        out = []
        for pos, j in enumerate(map(int, chosen)):
            signal = rec.reason_signal(ctx, j)
            options: list[tuple[str, int, Any]] = []
            if signal == "cf":
                options += [("cf", int(q.items[h]), None) for h in cf_order[pos]]
            if signal == "attr":
                aff = ctx.features[n_base:, j]
                for f in np.argsort(-aff, kind="stable")[:3] if len(aff) else ():
                    key = self.signals.facet_keys[int(f)]
                    code = int(self.items.facets[key][j])
                    if code < 0:
                        continue
                    same = set(np.flatnonzero(self.items.facets[key][q.items] == code).tolist())
                    facet = self.items.facet_values[key][code]
                    options += [("attr", int(q.items[h]), facet) for h in vis_order[pos] if int(h) in same]
            if signal in ("attr", "visual"):
                options += [("visual", int(q.items[h]), None) for h in vis_order[pos]]
            if not options:  # pop, random: one reason that names no history item
                options.append((signal, int(q.items[vis_order[pos][0]]), None))
            items = [
                self._item(j, float(scores[j]), sig, anchor, self._verb(q, anchor), facet)
                for sig, anchor, facet in options
            ]
            pick = next((it for it in items if it.reason not in used), items[0])
            used.add(pick.reason)
            out.append(pick)
        return out

    @staticmethod
    def _verb(q: Query, anchor: int) -> str:
        return rules.VERBS[EVENT_KINDS[int(q.kind[np.searchsorted(q.items, anchor)])]]


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)
