"""Offline evaluation: leave-last-out over each user's last purchase(s).

For every user with a purchase preceded by other events, the last ``n_holdout`` distinct
purchased products (not bought before) are held out, together with everything the user did
from the first event on a held-out product on (so the views and carts that led to the purchase
do not give it away: the task is to find the product before the shopper did). Recommenders are fitted on what remains (all other
users' events included) and asked for ``k`` items per user, excluding what the user had
already bought. Reported per recommender: Recall@k, NDCG@k, catalog coverage, intra-list
diversity, Recall@k of held-out items with and without training interactions (cold / warm),
and the time per user.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from catalens.recommend.config import RecommendConfig
from catalens.recommend.engine import RecommendEngine
from catalens.recommend.events import EVENT_KINDS, EventArrays
from catalens.recommend.items import ItemSpace
from catalens.recommend.rules import intra_list_diversity

BASELINES = ("random", "popular")
DEFAULT_RECOMMENDERS = ("random", "popular", "visual", "item2item", "cf", "attributes", "hybrid")


@dataclass
class Split:
    train: EventArrays
    test: dict[str, list[str]]  # user -> held-out product ids


def leave_last_out(events: EventArrays, n_holdout: int = 1) -> Split:
    purchase = EVENT_KINDS.index("purchase")
    order = np.lexsort((events.ts_ms, events.user.astype(str)))
    users = events.user[order].astype(str)
    bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    keep = np.ones(len(order), dtype=bool)
    test: dict[str, list[str]] = {}
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        kinds = events.kind[order[a:b]]
        prods = events.product[order[a:b]]
        buys = np.flatnonzero(kinds == purchase)
        held: list[str] = []
        first = None
        for j in buys[::-1]:
            if len(held) >= n_holdout:
                break
            p = str(prods[j])
            earlier = prods[:j][kinds[:j] == purchase]
            if p in held or p in set(map(str, earlier)):
                continue
            held.append(p)
            first = j
        if not held or first is None or first == 0:
            continue
        on_held = np.flatnonzero(np.isin(prods.astype(str), held))
        ts_first = events.ts_ms[order[a + on_held[0]]]  # the first time the user met a held-out product
        cut = np.flatnonzero(events.ts_ms[order[a:b]] >= ts_first)
        if len(cut) == b - a:
            continue  # nothing would be left to learn the user's taste from
        keep[a + cut] = False
        test[str(users[a])] = held
    return Split(events.subset(order[keep]), test)


@dataclass
class EvalRow:
    recommender: str
    recall: float
    ndcg: float
    coverage: float
    diversity: float
    recall_warm: float | None
    recall_cold: float | None
    users: int
    ms_per_user: float


@dataclass
class EvalReport:
    k: int
    users: int
    held_out: int
    cold_held_out: int
    train_events: int
    items: int
    rows: list[EvalRow] = field(default_factory=list)
    hybrid: dict[str, Any] = field(default_factory=dict)
    fit_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def row(self, name: str) -> EvalRow:
        return next(r for r in self.rows if r.recommender == name)


def evaluate(
    items: ItemSpace,
    events: EventArrays,
    *,
    recommenders: tuple[str, ...] | list[str] = DEFAULT_RECOMMENDERS,
    k: int = 10,
    n_holdout: int = 1,
    max_users: int | None = None,
    config: RecommendConfig | None = None,
    seed: int = 0,
) -> EvalReport:
    known = np.fromiter((p in items.index for p in events.product), dtype=bool, count=len(events))
    split = leave_last_out(events.subset(known), n_holdout)
    t0 = time.perf_counter()
    engine = RecommendEngine(items, split.train, config)
    test_users = sorted(split.test)
    if max_users and len(test_users) > max_users:
        rng = np.random.default_rng(seed)
        test_users = sorted(rng.choice(test_users, max_users, replace=False).tolist())
    warm = engine.inter.item_events > 0
    held_total = sum(len(split.test[u]) for u in test_users)
    cold_total = sum(not warm[items.index[p]] for u in test_users for p in split.test[u])
    report = EvalReport(
        k=k,
        users=len(test_users),
        held_out=held_total,
        cold_held_out=int(cold_total),
        train_events=len(engine.inter),
        items=len(items),
    )
    for name in recommenders:
        engine.recommender(name)  # fit outside the timed loop
    report.fit_s = round(time.perf_counter() - t0, 2)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for name in recommenders:
        recalls, ndcgs, divs = [], [], []
        hits_w = hits_c = n_w = n_c = 0
        seen = np.zeros(len(items), dtype=bool)
        t1 = time.perf_counter()
        for user in test_users:
            q = engine.query_for_user(user)
            chosen, *_ = engine.rank(q, k, recommender=name)
            target = {items.index[p] for p in split.test[user]}
            hit = np.array([int(j) in target for j in chosen[:k]], dtype=bool)
            recalls.append(hit.sum() / len(target))
            ideal = discounts[: min(len(target), k)].sum()
            ndcgs.append(float(discounts[: len(hit)][hit].sum() / ideal))
            divs.append(intra_list_diversity(items.vectors, chosen[:k]))
            seen[chosen[:k]] = True
            top = set(map(int, chosen[:k]))
            for j in target:
                if warm[j]:
                    n_w += 1
                    hits_w += j in top
                else:
                    n_c += 1
                    hits_c += j in top
        per_user = (time.perf_counter() - t1) * 1000 / max(1, len(test_users))
        report.rows.append(
            EvalRow(
                recommender=name,
                recall=_r(np.mean(recalls)) if recalls else 0.0,
                ndcg=_r(np.mean(ndcgs)) if ndcgs else 0.0,
                coverage=_r(seen.sum() / max(1, len(items))),
                diversity=_r(np.mean(divs)) if divs else 0.0,
                recall_warm=_r(hits_w / n_w) if n_w else None,
                recall_cold=_r(hits_c / n_c) if n_c else None,
                users=len(test_users),
                ms_per_user=round(per_user, 3),
            )
        )
    if "hybrid" in recommenders:
        report.hybrid = engine.recommender("hybrid").describe()  # type: ignore[attr-defined]
    return report


def _r(x: float) -> float:
    return round(float(x), 4)
