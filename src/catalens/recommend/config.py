"""Settings of the recommenders (one set for every catalogue; nothing is tuned per data set)."""

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
    # hybrid learning to rank
    hybrid_train_users: int = 3000
    hybrid_negatives: int = 40
    hybrid_min_users: int = 20  # fewer training users: a fixed blend instead of a learned model
    # re-ranking
    diversity: str = "interests"  # interests | mmr | none
    mmr_lambda: float = 0.8
    max_per_category: int | None = None
    candidate_pool: int = 200
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
