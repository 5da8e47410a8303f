"""The event log as index arrays over users and items, with event weights and time decay."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from catalens.recommend.config import RecommendConfig
from catalens.recommend.events import EVENT_KINDS, EventArrays
from catalens.recommend.items import ItemSpace

DAY_MS = 86_400_000.0


@dataclass
class Query:
    """One shopper's (or one anonymous session's) history, aggregated per item.

    ``weights`` are event-weighted and time-decayed; ``kind`` is the strongest event on the item;
    ``order`` ranks items by recency (0 = most recent).
    """

    items: np.ndarray
    weights: np.ndarray
    kind: np.ndarray
    last_ts: np.ndarray
    user: str | None = None

    def __len__(self) -> int:
        return len(self.items)

    def recent(self, n: int) -> np.ndarray:
        return self.items[np.argsort(-self.last_ts, kind="stable")[:n]]


def make_query(
    items: np.ndarray,
    kinds: np.ndarray,
    ts_ms: np.ndarray,
    row_weight: np.ndarray,
    config: RecommendConfig,
    now_ms: float,
    user: str | None = None,
) -> Query:
    """Aggregate raw events (item index, kind code, time, row weight) into a :class:`Query`."""
    if len(items) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Query(empty, np.zeros(0, np.float32), empty.astype(np.int8), empty.astype(np.float64), user)
    kw = np.array([config.event_weights.get(k, 1.0) for k in EVENT_KINDS], dtype=np.float64)
    age = np.maximum(now_ms - ts_ms.astype(np.float64), 0.0) / DAY_MS
    w = kw[kinds] * row_weight * 0.5 ** (age / max(config.half_life_days, 1e-6))
    uniq, inv = np.unique(items, return_inverse=True)
    weights = np.bincount(inv, weights=w, minlength=len(uniq)).astype(np.float32)
    kind = np.zeros(len(uniq), dtype=np.int8)
    np.maximum.at(kind, inv, kinds.astype(np.int8))
    last = np.full(len(uniq), -np.inf)
    np.maximum.at(last, inv, ts_ms.astype(np.float64))
    return Query(uniq.astype(np.int64), weights, kind, last, user)


class Interactions:
    """Events mapped to (user index, item index), sorted by user then time."""

    def __init__(self, events: EventArrays, items: ItemSpace, config: RecommendConfig) -> None:
        self.config = config
        self.n_items = len(items)
        idx = np.fromiter((items.index.get(p, -1) for p in events.product), dtype=np.int64, count=len(events))
        known = idx >= 0
        self.dropped_unknown = int((~known).sum())
        ev = events.subset(known)
        idx = idx[known]
        if len(ev):
            self.users, uinv = np.unique(ev.user.astype(str), return_inverse=True)
        else:
            self.users, uinv = np.array([], dtype=str), np.array([], dtype=np.int64)
        self.user_index = {u: i for i, u in enumerate(self.users.tolist())}
        order = np.lexsort((ev.ts_ms, uinv)) if len(ev) else np.zeros(0, dtype=np.int64)
        self._events: EventArrays | None = ev.subset(order)
        self._product_ids = items.ids
        self.u = np.asarray(uinv, dtype=np.int64)[order]
        self.i = idx[order]
        self.kind = ev.kind[order]
        self.ts = ev.ts_ms[order]
        self.row_weight = ev.weight[order]
        self.indptr = np.searchsorted(self.u, np.arange(len(self.users) + 1))
        self.now_ms = float(self.ts.max()) if len(self.ts) else 0.0
        kw = np.array([config.event_weights.get(k, 1.0) for k in EVENT_KINDS], dtype=np.float64)
        age = np.maximum(self.now_ms - self.ts.astype(np.float64), 0.0) / DAY_MS
        self.w = (kw[self.kind] * self.row_weight * 0.5 ** (age / max(config.half_life_days, 1e-6))).astype(
            np.float32
        )
        self.item_events = np.bincount(self.i, minlength=self.n_items)

    def __len__(self) -> int:
        return len(self.i)

    @property
    def events(self) -> EventArrays:
        """The known-product events, sorted by user then time (rebuilt from the index arrays after
        unpickling: a stored engine does not carry the id strings twice)."""
        if self._events is None:
            ids = np.asarray(self._product_ids, dtype=object)
            self._events = EventArrays(
                self.users.astype(object)[self.u], ids[self.i], self.kind, self.ts, self.row_weight
            )
        return self._events

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_events"] = None
        return state

    @property
    def n_users(self) -> int:
        return len(self.users)

    def matrix(self) -> sp.csr_matrix:
        """Users x items, summed decayed event weights."""
        m = sp.csr_matrix((self.w, (self.u, self.i)), shape=(self.n_users, self.n_items), dtype=np.float32)
        m.sum_duplicates()
        return m

    def events_of(self, user: int) -> slice:
        return slice(int(self.indptr[user]), int(self.indptr[user + 1]))

    def query(self, user: int) -> Query:
        s = self.events_of(user)
        return make_query(
            self.i[s],
            self.kind[s],
            self.ts[s],
            self.row_weight[s],
            self.config,
            self.now_ms,
            str(self.users[user]),
        )

    def purchased(self, user: int) -> np.ndarray:
        s = self.events_of(user)
        return np.unique(self.i[s][self.kind[s] == EVENT_KINDS.index("purchase")])
