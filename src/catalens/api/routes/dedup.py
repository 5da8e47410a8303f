"""Duplicates: an uploaded image checked against the catalog (nothing is stored); the catalog's
duplicate groups and variant families, paged."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse

from catalens.api import security
from catalens.api.routes import ERRORS, UPLOAD_ERRORS, catalog, read_upload

if TYPE_CHECKING:
    from catalens.api.service_catalog import ServiceCatalog

router = APIRouter(prefix="/api/v1", tags=["search"])
WAIT_S = 5.0  # how long a request waits for a report being computed before answering 202
RETRY_AFTER_S = 5


@router.post("/dedup/check", responses=UPLOAD_ERRORS)
def dedup_check(
    file: Annotated[UploadFile, File(description="image to check")],
    model: Annotated[str | None, Form(max_length=200)] = None,
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Any:
    """Catalog images that duplicate the upload: same bytes, same pixels or near-duplicates."""
    upload = read_upload(file, cat)
    with cat.uploaded_image(upload) as path:
        result = cat.dedup_image(path, model=model or None)
    data = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    data["query"] = upload.filename  # not the temporary file's path
    return data


@router.get(
    "/dedup/groups",
    responses=ERRORS
    | {
        202: {"description": "the first report is being computed: ask again after Retry-After seconds"},
        409: {**ERRORS[400], "description": "no vectors for the model"},
    },
)
def dedup_groups(
    view: Annotated[
        Literal["duplicates", "variants"],
        Query(description="duplicates (copies of one photo) or variants (families of one style)"),
    ] = "duplicates",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    model: Annotated[str | None, Query(max_length=200)] = None,
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Any:
    """One page of the catalog's duplicate groups (or variant families), largest first, each with
    its images (sha256, source, products) and the pairs that joined them. The report is computed
    once per catalog state, in the background, and reused by later pages (images added or
    removed: computed again). Until the first one is ready the answer is 202 ``computing``; while a
    newer one is computed, the last one is served with ``status`` ``updating`` (and
    ``retry_after_s``: when to ask again)."""
    report, fresh = cat.dedup_poll(model or None, wait_s=WAIT_S)
    if report is None:
        return JSONResponse(
            {"view": view, "status": "computing", "retry_after_s": RETRY_AFTER_S},
            status_code=202,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    groups = list(report.groups if view == "duplicates" else getattr(report, "families", []))
    page: dict[str, Any] = {} if fresh else {"retry_after_s": RETRY_AFTER_S}  # ask again for the new one
    return page | {
        "view": view,
        "status": "ready" if fresh else "updating",
        "total": len(groups),
        "offset": offset,
        "limit": limit,
        "stats": report.stats,
        "groups": [
            {"group": offset + i + 1, **g.to_dict()} for i, g in enumerate(groups[offset : offset + limit])
        ],
    }
