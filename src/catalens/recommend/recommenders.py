"""The recommender registry: each recommender scores every item for one query.

Built in: ``random`` and ``popular`` (baselines), ``visual`` (multi-interest visual taste
profile), ``item2item`` ("more like this": visual similarity to the most recent items),
``cf`` (implicit ALS with fold-in), ``attributes`` (the history's attribute preference
profile) and ``hybrid`` (learned ranking over visual, CF,
popularity and attribute-match signals; see :mod:`catalens.recommend.hybrid`).
Add one with :func:`register_recommender`.
"""

from __future__ import annotations

import zlib
from typing import ClassVar

import numpy as np

from catalens.recommend.interactions import Interactions, Query
from catalens.recommend.signals import Interests, Signals
from catalens.registry import Registry


class QueryContext:
    """Per-query values computed once and shared by scoring, re-ranking and reasons."""

    def __init__(self, q: Query, signals: Signals) -> None:
        self.q = q
        self.signals = signals
        self._interests: Interests | None = None
        self._features: np.ndarray | None = None
        self.cache: dict[str, object] = {}  # recommender-specific per-query values

    @property
    def interests(self) -> Interests:
        if self._interests is None:
            self._interests = self.signals.interests(self.q)
        return self._interests

    @property
    def features(self) -> np.ndarray:
        """Every signal's score per item, one row per name of ``signals.feature_names``."""
        if self._features is None:
            self._features = self.signals.features(self.q, self.interests)
        return self._features

    def feature(self, name: str) -> np.ndarray:
        """One signal's scores by name (``vis_max``, ``vis_mean``, ``vis_recent``, ``cf``, ``pop``,
        ``attr``, ``attr_<facet>``)."""
        return self.features[self.signals.feature_names.index(name)]


class Recommender:
    """Base class. ``fit`` once per event log, ``score`` per query (higher is better)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, signals: Signals) -> None:
        self.signals = signals

    def fit(self, inter: Interactions) -> Recommender:
        return self

    def score(self, ctx: QueryContext) -> np.ndarray:
        raise NotImplementedError

    def reason_signal(self, ctx: QueryContext, item: int) -> str:
        """Which signal explains ``item``: visual | cf | attr | pop | random."""
        return "visual"


RECOMMENDERS: Registry[type[Recommender]] = Registry("recommender")


def register_recommender(cls: type[Recommender]) -> type[Recommender]:
    """Class decorator: make a recommender available by its ``name``."""
    return RECOMMENDERS.decorator()(cls)


def get_recommender(name: str) -> type[Recommender]:
    return RECOMMENDERS.get(name)


def list_recommenders() -> list[dict[str, str]]:
    return [{"name": n, "description": c.description} for n, c in RECOMMENDERS.items()]


@register_recommender
class RandomRecommender(Recommender):
    name = "random"
    description = "uniformly random items (baseline)"

    def score(self, ctx: QueryContext) -> np.ndarray:
        seed = zlib.crc32((ctx.q.user or ",".join(map(str, ctx.q.items[:20]))).encode())
        return np.random.default_rng(seed).random(len(self.signals.items)).astype(np.float32)

    def reason_signal(self, ctx: QueryContext, item: int) -> str:
        return "random"


@register_recommender
class PopularRecommender(Recommender):
    name = "popular"
    description = "most engaged-with items, time-decayed (baseline)"

    def score(self, ctx: QueryContext) -> np.ndarray:
        return self.signals.pop

    def reason_signal(self, ctx: QueryContext, item: int) -> str:
        return "pop"


@register_recommender
class VisualRecommender(Recommender):
    name = "visual"
    description = "multi-interest visual taste profile (event-weighted, time-decayed)"

    def score(self, ctx: QueryContext) -> np.ndarray:
        return ctx.feature("vis_max")


@register_recommender
class ItemToItemRecommender(Recommender):
    name = "item2item"
    description = "more like this: visual similarity to the most recent items"

    def score(self, ctx: QueryContext) -> np.ndarray:
        return ctx.feature("vis_recent")


@register_recommender
class CFRecommender(Recommender):
    name = "cf"
    description = "collaborative filtering: implicit ALS on the event matrix, folded in per query"

    def score(self, ctx: QueryContext) -> np.ndarray:
        return ctx.feature("cf")

    def reason_signal(self, ctx: QueryContext, item: int) -> str:
        return "cf"


@register_recommender
class AttributeRecommender(Recommender):
    name = "attributes"
    description = "attribute match: the history's preference for each facet value (type, colour, brand, ...)"

    def score(self, ctx: QueryContext) -> np.ndarray:
        return ctx.feature("attr")

    def reason_signal(self, ctx: QueryContext, item: int) -> str:
        return "attr"
