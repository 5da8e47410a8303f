"""Recommendation benchmark: a documented shopper simulator over the real myntra-dev catalog.

No public event log exists for these images, so synthetic shoppers browse the real products
(their real attributes and real efficientnet-lite0 embeddings from a catalens home):

* Two taste models (settings), reported side by side; the recommenders use the SAME default
  settings (``RecommendConfig()``) in both, nothing is tuned per setting:
  - ``attribute``: a shopper has a gender, 1-3 favourite articleTypes, 1-2 colours, a usage and
    1-2 favourite brands (brand = first word of the title); utility is a weighted sum of matches.
  - ``visual``: a shopper has 1-3 taste directions in embedding space (a random product's vector
    plus noise); utility is the best cosine similarity to a direction. Attributes play no role.
* Behaviour: every item has a popularity (log-normal, sigma 1); utility adds 0.5 * log(popularity).
  A shopper has 1-8 sessions over 90 days; each session focuses one interest, views 3-12 items
  drawn by Gumbel-top-k on utility + session focus (10 % of views are random popular items:
  noise); a viewed item is carted with probability sigmoid(utility - cut) and a carted item is
  bought with probability 0.6.
* Cold start: 8 % of items are "new arrivals": all their events are dropped except purchases
  that are a shopper's last purchase, so leave-last-out training never sees them.
* Evaluation: ``catalens.recommend.evaluate`` (leave last purchase out) on a sample of users;
  latency: full ``recommend_user`` (scores, rules, diversity, reasons) on the engine fitted on
  all events, timed per user; persistence: that engine saved with ``EngineStore`` and loaded back
  (median of 3 loads) against the time of fitting it.

Run: ``python bench/recommend_sim.py --home /work/bench-home`` (the home is copied to a temp
folder; it is not written). Prints one JSON line per result.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one BLAS thread per request: small products
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from catalens.core import Catalog  # noqa: E402
from catalens.recommend.config import RecommendConfig  # noqa: E402
from catalens.recommend.engine import RecommendEngine  # noqa: E402
from catalens.recommend.evaluate import evaluate  # noqa: E402
from catalens.recommend.events import EVENT_KINDS, EventArrays  # noqa: E402
from catalens.recommend.items import ItemSpace, load_item_space  # noqa: E402
from catalens.recommend.store import EngineStore, EventState  # noqa: E402

DAY_MS = 86_400_000
T0 = 1_700_000_000_000


def emit(**data: object) -> None:
    print(json.dumps(data), flush=True)


def _codes(items: ItemSpace, key: str) -> np.ndarray:
    return items.facets.get(key, np.full(len(items), -1, np.int32))


class Shoppers:
    """Latent tastes: ``utility(u)`` (n_items,) and ``interests(u)`` (list of (n_items,) focus bonuses)."""

    def __init__(self, items: ItemSpace, setting: str, rng: np.random.Generator) -> None:
        self.items, self.setting, self.rng = items, setting, rng
        self.pop = rng.lognormal(0.0, 1.0, len(items))
        self.log_pop = 0.5 * np.log(self.pop)
        self.gender = _codes(items, "gender")
        self.type = _codes(items, "articleType")
        self.colour = _codes(items, "baseColour")
        self.usage = _codes(items, "usage")
        self.brand = _codes(items, "brand")
        self.usable = items.has_vector

    def taste(self) -> tuple[np.ndarray, list[np.ndarray]]:
        rng, n = self.rng, len(self.items)
        if self.setting == "attribute":
            pick = rng.choice(np.flatnonzero(self.usable))
            g = self.gender[pick]
            ok = self.usable & ((self.gender == g) | (self.gender < 0))
            types = np.unique(rng.choice(self.type[ok], rng.integers(1, 4)))
            in_types = ok & np.isin(self.type, types)
            colours = np.unique(rng.choice(self.colour[in_types], rng.integers(1, 3)))
            usage = rng.choice(self.usage[in_types])
            brands = np.unique(rng.choice(self.brand[in_types], rng.integers(1, 3)))
            util = (
                2.0 * np.isin(self.type, types)
                + 1.0 * np.isin(self.colour, colours)
                + 0.6 * (self.usage == usage)
                + 0.8 * np.isin(self.brand, brands)
                - 3.0 * ~ok
            )
            interests = [2.0 * (self.type == t) for t in types]
        else:
            vec = self.items.vectors
            anchors = rng.choice(np.flatnonzero(self.usable), rng.integers(1, 4), replace=False)
            noise = rng.standard_normal((len(anchors), vec.shape[1])).astype(np.float32)
            noise /= np.linalg.norm(noise, axis=1, keepdims=True)
            dirs = vec[anchors] + 0.5 * noise
            dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
            sims = dirs @ vec.T  # (m, n)
            z = (sims - sims.mean(axis=1, keepdims=True)) / (sims.std(axis=1, keepdims=True) + 1e-6)
            util = 1.2 * z.max(axis=0) - 3.0 * ~self.usable
            interests = [1.2 * zz for zz in z]
        return util + self.log_pop + 0.3 * rng.standard_normal(n), interests


def simulate(items: ItemSpace, setting: str, n_users: int, seed: int) -> tuple[EventArrays, np.ndarray]:
    rng = np.random.default_rng(seed)
    shoppers = Shoppers(items, setting, rng)
    n = len(items)
    cold = np.zeros(n, dtype=bool)
    cold[rng.choice(np.flatnonzero(items.has_vector), int(0.08 * n), replace=False)] = True
    pop_p = shoppers.pop * items.has_vector
    pop_p /= pop_p.sum()
    users, prods, kinds, times = [], [], [], []
    view, cart, buy = (EVENT_KINDS.index(k) for k in ("view", "cart", "purchase"))
    for u in range(n_users):
        util, interests = shoppers.taste()
        n_sessions = int(rng.integers(1, 9))
        starts = np.sort(rng.uniform(0, 90, n_sessions))
        for s_day in starts:
            focus = interests[int(rng.integers(len(interests)))]
            g = util + focus + rng.gumbel(size=n)
            n_views = int(rng.integers(3, 13))
            viewed = np.argpartition(-g, n_views)[:n_views]
            noise = rng.random(n_views) < 0.1
            viewed[noise] = rng.choice(n, int(noise.sum()), p=pop_p)
            t = T0 + int(s_day * DAY_MS)
            for j in viewed:
                users.append(u), prods.append(j), kinds.append(view), times.append(t)
                t += int(rng.integers(10_000, 120_000))
                p_cart = 1.0 / (1.0 + np.exp(-(util[j] + focus[j] - 3.0)))
                if rng.random() < p_cart:
                    users.append(u), prods.append(j), kinds.append(cart), times.append(t)
                    t += 30_000
                    if rng.random() < 0.6:
                        users.append(u), prods.append(j), kinds.append(buy), times.append(t)
                        t += 30_000
    u_arr, p_arr = np.asarray(users), np.asarray(prods)
    k_arr, t_arr = np.asarray(kinds, np.int8), np.asarray(times, np.int64)
    # new arrivals: keep only purchases that are the shopper's last purchase
    keep = ~cold[p_arr]
    is_buy = k_arr == buy
    last_buy = {}
    for idx in np.flatnonzero(is_buy):
        last_buy[u_arr[idx]] = idx  # events are appended in time order per user
    for idx in last_buy.values():
        if cold[p_arr[idx]]:
            keep[idx] = True
    ids = np.asarray(items.ids, dtype=object)
    ev = EventArrays(
        user=np.asarray([f"s{u}" for u in u_arr[keep]], dtype=object),
        product=ids[p_arr[keep]],
        kind=k_arr[keep],
        ts_ms=t_arr[keep],
        weight=np.ones(int(keep.sum()), np.float32),
    )
    return ev, cold


def latency(engine: RecommendEngine, users: list[str], k: int) -> dict[str, float]:
    times = []
    for u in users:
        t = time.perf_counter()
        engine.recommend_user(u, k)
        times.append((time.perf_counter() - t) * 1000)
    arr = np.asarray(times)
    return {"p50_ms": round(float(np.median(arr)), 3), "p99_ms": round(float(np.quantile(arr, 0.99)), 3)}


def _median_latency(engine: RecommendEngine, users: list[str], k: int, repeats: int) -> dict[str, float]:
    runs = [latency(engine, users, k) for _ in range(max(1, repeats))]
    return {key: round(float(np.median([r[key] for r in runs])), 3) for key in runs[0]} | {
        "passes": len(runs)
    }


def report(items: ItemSpace, events: EventArrays, setting: str, args: argparse.Namespace) -> None:
    """Leave-last-out evaluation of every recommender, one JSON line each, then the ratios."""
    rep = evaluate(items, events, k=10, max_users=args.eval_users, config=RecommendConfig(), seed=args.seed)
    rows = {r.recommender: r for r in rep.rows}
    for r in rep.rows:
        emit(setting=setting, **r.__dict__)
    h, p, rnd = rows["hybrid"], rows["popular"], rows["random"]
    best = max(
        (r for r in rep.rows if r.recommender not in ("hybrid", "random", "popular")), key=lambda r: r.recall
    )
    emit(
        setting=setting,
        eval_users=rep.users,
        held_out=rep.held_out,
        cold_held_out=rep.cold_held_out,
        fit_s=rep.fit_s,
        hybrid_vs_popular=round(h.recall / max(p.recall, 1e-9), 2),
        hybrid_vs_random=round(h.recall / max(rnd.recall, 1e-9), 2),
        best_component=best.recommender,
        hybrid_vs_best_component=round(h.recall / max(best.recall, 1e-9), 3),
        cold_vs_warm=round((h.recall_cold or 0) / max(h.recall_warm or 0, 1e-9), 2),
        hybrid={k: v for k, v in rep.hybrid.items() if k != "weights"},
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", default="/work/bench-home")
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--eval-users", type=int, default=2000)
    ap.add_argument("--latency-users", type=int, default=1000)
    ap.add_argument("--settings", default="attribute,visual")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-eval", action="store_true", help="only fit, store/load and time (no evaluation)")
    ap.add_argument(
        "--latency-repeats", type=int, default=1, help="timing passes; the median p50/p99 is kept"
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="catalens-recbench-"))
    shutil.copy(Path(args.home) / "catalog.db", tmp / "catalog.db")
    shutil.copytree(Path(args.home) / "vectors", tmp / "vectors")
    try:
        with Catalog.open(tmp) as cat:
            items = load_item_space(cat)
        emit(
            items=len(items),
            with_vectors=int(items.has_vector.sum()),
            facets=list(items.facets),
            model=items.model,
        )
        for n, setting in enumerate(args.settings.split(",")):
            t = time.perf_counter()
            events, cold = simulate(items, setting, args.users, args.seed + n)
            counts = np.bincount(events.kind, minlength=len(EVENT_KINDS))
            emit(
                setting=setting,
                users=args.users,
                events=len(events),
                **{k: int(c) for k, c in zip(EVENT_KINDS, counts, strict=True)},
                cold_items=int(cold.sum()),
                simulate_s=round(time.perf_counter() - t, 1),
            )
            if not args.skip_eval:
                report(items, events, setting, args)
            t = time.perf_counter()
            engine = RecommendEngine(items, events, RecommendConfig()).fit_all()
            fit_s = time.perf_counter() - t
            store = EngineStore(tmp / "recommend")
            t = time.perf_counter()
            store.save(setting, engine, EventState(len(events), len(events)))
            save_s = time.perf_counter() - t
            loads = []
            for _ in range(3):
                t = time.perf_counter()
                loaded = store.load(setting)
                loads.append(time.perf_counter() - t)
            assert loaded is not None
            engine = loaded[0]  # latency below is measured on the loaded engine
            size_mb = sum(f.stat().st_size for f in store.path(setting).iterdir()) / 1e6
            rng = np.random.default_rng(args.seed)
            sample = rng.choice(
                engine.inter.users, min(args.latency_users, engine.inter.n_users), replace=False
            )
            emit(
                setting=setting,
                latency_users=len(sample),
                n_users=engine.inter.n_users,
                n_items=len(items),
                fit_all_s=round(fit_s, 1),
                save_s=round(save_s, 2),
                load_s=round(float(np.median(loads)), 3),
                stored_mb=round(size_mb, 1),
                **_median_latency(engine, [str(u) for u in sample], 20, args.latency_repeats),
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
