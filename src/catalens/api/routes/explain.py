"""Explanations as PNG: a heatmap of why an image gets its label."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from catalens.api import security
from catalens.api.routes import ERRORS, catalog
from catalens.catalog.products import check_sha

if TYPE_CHECKING:
    from catalens.api.service_catalog import ServiceCatalog

router = APIRouter(prefix="/api/v1", tags=["explain"])


@router.get(
    "/images/{sha256}/explain.png",
    response_class=Response,
    responses=ERRORS | {200: {"content": {"image/png": {}}}},
)
def explain_png(
    sha256: str,
    classifier: Annotated[str | None, Query(max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")] = None,
    field: Annotated[str | None, Query(max_length=200)] = None,
    label: Annotated[str | None, Query(max_length=200)] = None,
    method: Annotated[str | None, Query(max_length=50)] = None,
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Response:
    """Heatmap overlay (PNG) of the regions behind a label of a cataloged image."""
    cat.image_info(check_sha(sha256))  # 404 for unknown ids, before any model loads
    exp = cat.explain_label(sha256, classifier=classifier, field=field, label=label, method=method)
    buf = io.BytesIO()
    exp.overlay().save(buf, "PNG")
    headers = {"X-Label": str(exp.label)[:200], "X-Score": f"{exp.probability:.4f}"}
    return Response(buf.getvalue(), media_type="image/png", headers=headers)
