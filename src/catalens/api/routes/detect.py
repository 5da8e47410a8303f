"""Product detection: the products in an uploaded photo, optionally with similar products for each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from pydantic import BaseModel

from catalens.api import security
from catalens.api.routes import ERRORS, UPLOAD_ERRORS, catalog, read_upload
from catalens.api.routes.search import SearchHit

if TYPE_CHECKING:
    from catalens.api.service_catalog import ServiceCatalog

router = APIRouter(prefix="/api/v1", tags=["detect"])


class DetectedProduct(BaseModel):
    item: int
    box: list[float]  # x0, y0, x1, y1 in the photo's pixels
    score: float
    category: str
    mask_area: float | None = None  # share of the photo the product's mask covers
    results: list[SearchHit] | None = None  # with search=true


class DetectResponse(BaseModel):
    upload: str
    width: int
    height: int
    count: int
    items: list[DetectedProduct]


@router.post("/detect", response_model=DetectResponse, responses=UPLOAD_ERRORS)
def detect(
    file: Annotated[UploadFile, File(description="photo")],
    search: Annotated[bool, Form(description="also search for each product found")] = False,
    limit: Annotated[int, Form(ge=1, le=200, description="results per product (with search)")] = 12,
    threshold: Annotated[float | None, Form(gt=0.0, lt=1.0, description="score threshold")] = None,
    max_items: Annotated[int, Form(ge=1, le=50)] = 10,
    where: Annotated[str | None, Form(max_length=2000)] = None,
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Any:
    """Find the products in an uploaded photo (nothing is stored): box, score, coarse category and
    mask area for each; with ``search=true`` also the ``limit`` most similar catalog products of each."""
    if where:
        cat.check_where(where)
    upload = read_upload(file, cat)
    with cat.uploaded_image(upload) as path:
        if search:
            found = cat.search_image_each(
                path, limit, where=where or None, threshold=threshold, max_items=max_items
            )
        else:
            found = cat.detect(path, threshold=threshold, max_items=max_items)
    data = found.to_dict()
    data.pop("source", None)
    return {"upload": upload.filename, **data}


@router.get("/images/{sha256}/regions", responses=ERRORS)
def image_regions(
    sha256: str, cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.read)
) -> Any:
    """Products cut out of this photo by ``ingest --detect`` (``crops``: crop image, box, score,
    category), and the photo and box this image was cut from when it is such a crop (``crop_of``)."""
    return cat.image_regions(sha256)
