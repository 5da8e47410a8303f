"""Products and images: list, read, update, delete; files and thumbnails; attribute facets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from catalens.api import security
from catalens.api.routes import ERRORS, catalog
from catalens.api.schemas import FacetValue, ImageDetail, ProductOut, ProductPage, ProductPatch

if TYPE_CHECKING:
    from catalens.api.service_catalog import ServiceCatalog

router = APIRouter(prefix="/api/v1", tags=["catalog"])
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


@router.get("/products", response_model=ProductPage, responses=ERRORS)
def list_products(
    q: Annotated[str | None, Query(max_length=500, description="substring of id or title")] = None,
    where: Annotated[
        str | None,
        Query(max_length=2000, description="filter, e.g. articleType = 'Tshirts' and year >= 2012"),
    ] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    sort: Annotated[str, Query(pattern="^-?(id|title|created)$")] = "id",
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.read),
) -> dict[str, Any]:
    """One page of products, filtered by text and attributes."""
    return cat.list_products(q=q, where=where, offset=offset, limit=limit, sort=sort)


@router.get("/facets", response_model=dict[str, list[FacetValue]], responses=ERRORS)
def facets(cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.read)) -> dict[str, Any]:
    """Attributes with few distinct values and their counts (for filter menus)."""
    return {k: [{"value": v, "count": n} for v, n in vals] for k, vals in cat.facets().items()}


@router.get("/products/{product_id:path}", response_model=ProductOut, responses=ERRORS)
def get_product(
    product_id: str, cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.read)
) -> Any:
    """A product with its images."""
    return cat.product(product_id)


@router.patch("/products/{product_id:path}", response_model=ProductOut, responses=ERRORS)
def patch_product(
    product_id: str,
    body: ProductPatch,
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.write),
) -> Any:
    """Change a product's title or attributes."""
    return cat.update_product(
        product_id, title=body.title, attrs=body.attrs, replace_attrs=body.replace_attrs
    )


@router.delete("/products/{product_id:path}", status_code=204, response_class=Response, responses=ERRORS)
def delete_product(
    product_id: str, cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.write)
) -> Response:
    """Delete a product, everything keyed by it (image links, events) and every image of it that
    no other product shows, with all that is derived from them (see DELETE /images/{sha256})."""
    cat.delete_product(product_id)
    return Response(status_code=204)


@router.get("/images/{sha256}", response_model=ImageDetail, responses=ERRORS)
def get_image(sha256: str, cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.read)) -> Any:
    """An image's facts and its products."""
    return cat.image_info(sha256)


@router.delete("/images/{sha256}", status_code=204, response_class=Response, responses=ERRORS)
def delete_image(
    sha256: str, cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.write)
) -> Response:
    """Remove an image and everything derived from it: record, product links, embeddings and
    vectors, predictions, quality results, cached thumbnails, stored blob or upload file; search
    never returns it again (the index drops it on its next sync)."""
    cat.delete_image(sha256)
    return Response(status_code=204)


@router.get(
    "/images/{sha256}/file",
    response_class=FileResponse,
    responses=ERRORS | {200: {"content": {"image/*": {}}}},
)
def image_file(
    sha256: str, cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.read)
) -> FileResponse:
    """The stored image file, with its own content type."""
    path, media_type = cat.image_file(sha256)
    return FileResponse(
        path, media_type=media_type, headers=IMMUTABLE | {"X-Content-Type-Options": "nosniff"}
    )


@router.get(
    "/images/{sha256}/thumb",
    response_class=FileResponse,
    responses=ERRORS | {200: {"content": {"image/jpeg": {}}}},
)
def image_thumb(
    sha256: str,
    size: Annotated[int, Query(description="64, 128, 256 or 512")] = 256,
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.read),
) -> FileResponse:
    """A JPEG thumbnail, made on first use and cached."""
    path = cat.thumbnail(sha256, size)
    return FileResponse(
        path, media_type="image/jpeg", headers=IMMUTABLE | {"X-Content-Type-Options": "nosniff"}
    )


class BadgesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shas: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(min_length=1, max_length=200)
    profile: str | None = Field(None, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    classifier: str | None = Field(None, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")


@router.post("/images/badges", responses=ERRORS)
def image_badges(
    body: BadgesIn, cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.read)
) -> Any:
    """For a grid of images: each one's stored quality verdict and issues, and its top tags."""
    return cat.image_badges(body.shas, body.profile, body.classifier)
