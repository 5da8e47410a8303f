"""Event ingestion (views, carts, purchases) for recommendations."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from catalens.api import security
from catalens.api.errors import ApiError
from catalens.api.routes import ERRORS, catalog
from catalens.errors import CatalensError

if TYPE_CHECKING:
    from catalens.api.service_catalog import ServiceCatalog

router = APIRouter(prefix="/api/v1", tags=["recommend"])


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=512)
    product_id: str = Field(min_length=1, max_length=512)
    event: str = Field(min_length=1, max_length=50, description="view | click | cart | purchase | ...")
    timestamp: datetime | float | None = Field(None, description="ISO 8601 or epoch seconds; default now")
    weight: float | None = Field(None, ge=0)
    session: str | None = Field(None, max_length=512)


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventIn] = Field(min_length=1, max_length=1000)


class EventError(BaseModel):
    index: int
    message: str


class EventsOut(BaseModel):
    inserted: int
    duplicates: int
    errors: list[EventError]
    total_events: int


@router.post("/events", response_model=EventsOut, responses=ERRORS)
def post_events(
    body: EventsIn, cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.write)
) -> Any:
    """Record up to 1000 events (idempotent: a repeated event is counted as a duplicate)."""
    inserted = duplicates = 0
    problems: list[dict[str, Any]] = []
    for i, ev in enumerate(body.events):
        try:
            new = cat.record_event(
                ev.user_id, ev.product_id, ev.event, ev.timestamp, weight=ev.weight, session=ev.session
            )
        except CatalensError as exc:
            problems.append({"index": i, "message": str(exc)})
            continue
        inserted += int(new)
        duplicates += int(not new)
    if inserted:  # one background refit for the whole request (readers never fit)
        cat.recommend_changed()
    if problems and inserted + duplicates == 0:
        raise ApiError(422, "invalid", f"no event recorded: {problems[0]['message']}")
    return {
        "inserted": inserted,
        "duplicates": duplicates,
        "errors": problems,
        "total_events": cat.event_count(),
    }
