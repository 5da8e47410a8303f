"""Operations: health, readiness, Prometheus metrics, the model list and catalog info."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from catalens import __version__
from catalens.api import security
from catalens.api.errors import ApiError
from catalens.api.routes import ERRORS, catalog
from catalens.api.schemas import Health, ModelOut, Ready

if TYPE_CHECKING:
    from catalens.api.service_catalog import ServiceCatalog

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health)
def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok", "version": __version__}


@router.get("/ready", response_model=Ready, responses={503: ERRORS[400]})
def ready(cat: ServiceCatalog = Depends(catalog)) -> dict[str, Any]:
    """Readiness: the database answers."""
    try:
        info = cat.ready()
    except Exception as exc:  # noqa: BLE001 - any database failure means "not ready"
        raise ApiError(503, "unavailable", f"database not ready: {type(exc).__name__}: {exc}") from exc
    return {"status": "ok"} | info


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    """Prometheus metrics (requests, latency, in-flight requests, jobs)."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/models", response_model=list[ModelOut], responses=ERRORS)
def models(cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.read)) -> list[dict[str, Any]]:
    """Registered models, with how many vectors this catalog holds for each."""
    from catalens.models import list_models

    stored: dict[str, int] = {}
    for m in cat.info()["models"]:
        stored[m["model_id"]] = stored.get(m["model_id"], 0) + int(m["embeddings"] or 0)
    return [{"name": s.name, "spec": s.to_dict(), "embedded": stored.get(s.name, 0)} for s in list_models()]


@router.get("/api/v1/info", responses=ERRORS)
def info(cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.read)) -> dict[str, Any]:
    """Catalog summary: counts, models, recent jobs and failures (as ``catalens info --json``)."""
    data = cat.info()
    data.pop("home", None)
    data.pop("database", None)
    data["default_model"] = cat.settings.default_model
    return data
