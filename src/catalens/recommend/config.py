"""Settings of the recommenders (one set for every catalog; nothing is tuned per data set)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def _default_weights() -> dict[str, float]:
    return {"view": 1.0, "click": 2.0, "like": 3.0, "cart": 4.0, "purchase": 8.0}


@dataclass
class RecommendConfig:
    """Event weights, time decay, model sizes and re-ranking rules."""

    event_weights: dict[str, float] = field(default_factory=_default_weights)
    half_life_days: float = 30.0  # time decay of an event's weight, relative to the newest event
    # visual vectors are projected on their top principal components for speed (0: keep all)
    vector_dim: int = 128
    # multi-interest visual profile
    max_interests: int = 4
    interest_quantile: float = 0.9  # cluster threshold: this quantile of random item-pair similarities
    recent_items: int = 3
    # collaborative filtering (implicit ALS)
    cf_factors: int = 64
    cf_iterations: int = 15
    cf_regularization: float = 0.05
    cf_alpha: float = 1.0  # confidence = 1 + alpha * decayed event weight
    cold_neighbours: int = 10  # visual neighbours used to place items that have no interactions
    # attribute match: prior strength (in history items) of the catalog's facet-value frequencies
    attr_prior: float = 2.0
    # hybrid learning to rank
    hybrid_train_users: int = 3000
    hybrid_negatives: int = 150  # candidates sampled per training query (besides the bought item)
    hybrid_min_users: int = 20  # fewer training users: a fixed blend instead of a learned model
    hybrid_validation: float = 0.3  # share of training queries kept to choose blend vs single signal
    hybrid_pseudo_cold: float = 0.1  # share of items made event-less while training (new-item practice)
    hybrid_l2: float = 1.0
    # product rule: items without events should reach at least this share of the Recall@10 of items
    # with events on the hybrid's validation cut (0: rank for overall recall only)
    new_item_parity: float = 0.5
    candidate_per_signal: int = 100  # first stage: union of each signal's top items
    # re-ranking
    diversity: str = "interests"  # interests | mmr | none
    mmr_lambda: float = 0.8
    max_per_category: int | None = None
    candidate_pool: int = 200
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
