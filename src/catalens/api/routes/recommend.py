"""Recommendations for a user or for a basket/session of product ids."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from catalens.api import security
from catalens.api.routes import ERRORS, catalog

if TYPE_CHECKING:
    from catalens.api.service_catalog import ServiceCatalog

router = APIRouter(prefix="/api/v1", tags=["recommend"])


class RecommendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str | None = Field(None, min_length=1, max_length=512, description="a user id (from the events)")
    products: list[str] | None = Field(
        None, min_length=1, max_length=500, description="product ids of a basket or session"
    )
    k: int = Field(20, ge=1, le=200)
    recommender: str = Field("hybrid", max_length=50)
    where: str | None = Field(None, max_length=2000)
    exclude: list[str] = Field([], max_length=1000)
    include_out_of_stock: bool = False
    diversity: str | None = Field(None, max_length=50)
    max_per_category: int | None = Field(None, ge=1, le=200)


class RecommendationOut(BaseModel):
    product_id: str
    title: str | None = None
    score: float
    reason: str
    because: str | None = None
    signal: str


class RecommendOut(BaseModel):
    items: list[RecommendationOut]
    recommender: str
    user: str | None = None
    products: list[str] = []
    note: str | None = None
    interests: int = 0
    history: int = 0
    took_ms: float = 0.0
    stale: bool = Field(
        False,
        description="the catalog changed since the engine's last fit and its refit is still running: "
        "these come from the last engine (deleted products left out)",
    )


@router.post(
    "/recommend", response_model=RecommendOut, responses=ERRORS | {409: ERRORS[400], 503: ERRORS[400]}
)
def recommend(
    body: RecommendIn, cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.read)
) -> Any:
    """Give exactly one of ``user`` or ``products``. Each item says why it is recommended."""
    res = cat.recommend(
        body.user,
        body.products,
        k=body.k,
        recommender=body.recommender,
        where=body.where or None,
        exclude=body.exclude,
        include_out_of_stock=body.include_out_of_stock,
        diversity=body.diversity,
        max_per_category=body.max_per_category,
    )
    return res.to_dict() | {"stale": bool((res.engine or {}).get("stale"))}


@router.post("/recommend/refit", status_code=202, responses=ERRORS)
def refit(
    model: Annotated[str | None, Query(max_length=256)] = None,
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.write),
) -> dict[str, Any]:
    """Schedule a refit of the recommendation engine in the background (a writer's request)."""
    cat.recommend_changed(model)
    return {"scheduled": True, "model": model}
