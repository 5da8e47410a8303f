"""API keys over HTTP (admin only); ``catalens keys`` does the same from the shell."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends

from catalens.api import security
from catalens.api.routes import ERRORS, catalog
from catalens.api.schemas import KeyCreated, KeyIn, KeyOut

if TYPE_CHECKING:
    from catalens.api.service_catalog import ServiceCatalog

router = APIRouter(prefix="/api/v1", tags=["keys"])


@router.get("/keys", response_model=list[KeyOut], responses=ERRORS)
def list_keys(cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.admin)) -> Any:
    """Every key (never the key itself)."""
    return [k.to_dict() for k in cat.list_keys()]


@router.post("/keys", response_model=KeyCreated, status_code=201, responses=ERRORS)
def create_key(body: KeyIn, cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.admin)) -> Any:
    """Create a key; the response holds the key, shown only this once."""
    key, info = cat.create_key(body.role, body.name)
    return info.to_dict() | {"key": key}


@router.delete("/keys/{key_id}", response_model=KeyOut, responses=ERRORS)
def revoke_key(key_id: str, cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.admin)) -> Any:
    """Revoke a key by id or prefix."""
    return cat.revoke_key(key_id).to_dict()
