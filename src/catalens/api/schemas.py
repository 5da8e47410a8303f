"""Request and response bodies of the API (they make the OpenAPI document at /docs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ImageOut(BaseModel):
    sha256: str
    width: int | None = None
    height: int | None = None
    format: str | None = None
    n_bytes: int | None = None
    source: str | None = None


class ImageDetail(ImageOut):
    products: list[str] = []


class ProductSummary(BaseModel):
    id: str
    title: str | None = None
    attrs: dict[str, Any] = {}
    image_count: int = 0
    cover: str | None = None


class ProductPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[ProductSummary]
    warnings: list[str] = []  # `where` values no product holds, with "did you mean"


class ProductOut(BaseModel):
    id: str
    title: str | None = None
    attrs: dict[str, Any] = {}
    images: list[ImageOut] = []
    created_at: str | None = None
    updated_at: str | None = None


class ProductPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(None, max_length=10_000)
    attrs: dict[str, str | int | float | bool | None] | None = Field(
        None, description="merged into the attributes; a null value removes that attribute"
    )
    replace_attrs: bool = Field(False, description="replace all attributes instead of merging")


class FacetValue(BaseModel):
    value: str
    count: int


class JobOut(BaseModel):
    id: str
    kind: str
    status: str = Field(description="queued | running | done | failed | cancelled")
    total: int | None = None
    done: int = 0
    progress: float | None = None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    report: dict[str, Any] | None = None
    error: str | None = None
    products: list[str] | None = Field(
        None, description="an upload job: the product id of each file, in upload order"
    )


class UrlItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=4096)
    product_id: str | None = Field(None, min_length=1, max_length=512)
    title: str | None = Field(None, max_length=10_000)
    attrs: dict[str, str | int | float | bool | None] = {}


class UrlIngestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[UrlItemIn] = Field(min_length=1, max_length=10_000)
    embed: bool = True


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(pattern="^(read|write|admin)$")
    name: str | None = Field(None, max_length=200)


class KeyOut(BaseModel):
    id: int
    prefix: str
    role: str
    name: str | None = None
    created_at: str | None = None
    revoked: bool = False


class KeyCreated(KeyOut):
    key: str = Field(description="the key itself; shown only once")


class ModelOut(BaseModel):
    name: str
    spec: dict[str, Any]
    embedded: int = Field(0, description="vectors stored in this catalog")


class Health(BaseModel):
    status: str
    version: str


class Ready(BaseModel):
    status: str
    database: str
    schema_version: int
    jobs_active: int
    worker: int | None = None  # the serving process (one of `serve --workers N`)
