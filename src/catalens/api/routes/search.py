"""Visual search: by uploaded image, by product id ("more like this") or by text; filters and paging.

Search by product id is the hot path: one thread-pool hop (the search itself; FAISS releases the
GIL) and the page encoded once with orjson, without response-model validation (which FastAPI runs
in a second hop for sync routes). With ``CATALENS_API_SEARCH_INLINE=true``, a query that needs
nothing but memory (engine open; no filter, or one already evaluated) runs on the event loop
instead: no hop at all, but no overlap of FAISS with other requests' Python either; on a busy
2-core machine the thread pool gave more requests/s and a lower p99 at concurrency 8.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from catalens.api import security
from catalens.api.errors import ApiError
from catalens.api.responses import FastJSONResponse
from catalens.api.routes import ERRORS, UPLOAD_ERRORS, catalog, read_upload

if TYPE_CHECKING:
    from catalens.api.service_catalog import ServiceCatalog

router = APIRouter(prefix="/api/v1", tags=["search"])
MAX_DEPTH = 1000


class SearchHit(BaseModel):
    rank: int
    score: float
    product_id: str | None = None
    image_sha256: str
    image_source: str | None = None
    title: str | None = None
    attrs: dict[str, Any] = {}
    other_images: int = 0


class SearchPage(BaseModel):
    query: dict[str, Any]
    offset: int
    limit: int
    has_more: bool
    results: list[SearchHit]
    warnings: list[str] = []  # `where` values no product holds, with "did you mean"


def _page(
    found: list[Any], query: dict[str, Any], offset: int, limit: int, notes: list[str] | None = None
) -> FastJSONResponse:
    """The ``SearchPage`` of ``found`` (``SearchResult`` objects, whose ``to_dict`` has the
    ``SearchHit`` fields), encoded directly."""
    rows = [r.to_dict() for r in found[offset : offset + limit]]
    return FastJSONResponse(
        {
            "query": query,
            "offset": offset,
            "limit": limit,
            "has_more": len(found) > offset + limit,
            "results": rows,
            "warnings": notes or [],
        }
    )


def _depth(offset: int, limit: int) -> int:
    k = offset + limit + 1  # one more tells whether a next page exists
    if k > MAX_DEPTH + 1:
        raise ApiError(400, "bad-request", f"offset + limit may not pass {MAX_DEPTH}")
    return k


@router.get("/search", response_model=SearchPage, responses=ERRORS | {409: ERRORS[400]})
async def search(
    product_id: Annotated[str | None, Query(max_length=512, description="more like this product")] = None,
    text: Annotated[str | None, Query(max_length=1000, description="text query")] = None,
    where: Annotated[str | None, Query(max_length=2000, description="attribute filter")] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_DEPTH)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 24,
    all_images: Annotated[bool, Query(description="one result per image instead of per product")] = False,
    model: Annotated[str | None, Query(max_length=200)] = None,
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Any:
    """Search by product id or by text (exactly one of them)."""
    if (product_id is None) == (text is None) or (text is not None and not text.strip()):
        raise ApiError(400, "bad-request", "give exactly one of product_id or text (non-empty)")
    k = _depth(offset, limit)
    # the CLI's --where checks: unknown field 400 (known fields listed), absent value a warning
    notes = await run_in_threadpool(cat.check_where, where) if where else []
    where_q, model_q = where or None, model or None
    query: dict[str, str | None]
    if product_id is not None:
        if cat.search_in_memory(model_q, where_q):
            found = cat.search_product(product_id, k, where=where_q, all_images=all_images, model=model_q)
        else:
            found = await run_in_threadpool(
                cat.search_product, product_id, k, where=where_q, all_images=all_images, model=model_q
            )
        query = {"product_id": product_id}
    else:
        assert text is not None  # checked above: exactly one of product_id and text
        found = await run_in_threadpool(
            cat.search_text, text, k, where=where_q, all_images=all_images, model=model_q
        )
        query = {"text": text}
    return _page(found, query | {"where": where}, offset, limit, notes)


@router.post("/search", response_model=SearchPage, responses=UPLOAD_ERRORS)
def search_upload(
    file: Annotated[UploadFile, File(description="query image")],
    where: Annotated[str | None, Form(max_length=2000)] = None,
    offset: Annotated[int, Form(ge=0, le=MAX_DEPTH)] = 0,
    limit: Annotated[int, Form(ge=1, le=200)] = 24,
    all_images: Annotated[bool, Form()] = False,
    model: Annotated[str | None, Form(max_length=200)] = None,
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Any:
    """Search by an uploaded image (nothing is stored)."""
    k = _depth(offset, limit)
    notes = cat.check_where(where) if where else []
    upload = read_upload(file, cat)
    with cat.uploaded_image(upload) as path:
        found = cat.search_image(path, k, where=where or None, all_images=all_images, model=model or None)
    return _page(found, {"upload": upload.filename, "where": where}, offset, limit, notes)
