"""Ingest by upload, URL list or manifest, as background jobs with progress and cancellation."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile

from catalens.api import security
from catalens.api.errors import ApiError
from catalens.api.keys import role_allows
from catalens.api.routes import ERRORS, UPLOAD_ERRORS, catalog, read_upload, read_uploads
from catalens.api.schemas import JobOut, UrlIngestIn
from catalens.api.uploads import UrlItem

if TYPE_CHECKING:
    from catalens.api.service_catalog import ServiceCatalog

router = APIRouter(prefix="/api/v1", tags=["ingest"])


def _attrs(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(400, "bad-json", f"attrs is not valid JSON: {exc}") from exc
    if not isinstance(value, dict) or any(isinstance(v, dict | list) for v in value.values()):
        raise ApiError(400, "bad-json", "attrs must be a JSON object of plain values")
    return value


@router.post("/ingest/upload", response_model=JobOut, status_code=202, responses=UPLOAD_ERRORS)
def ingest_upload(
    files: Annotated[list[UploadFile], File(description="image files")],
    product_id: Annotated[
        str | None,
        Form(
            max_length=512,
            description="add every file to this product (created if new); without it each file "
            "becomes a new product with a fresh id (listed in the job's `products`)",
        ),
    ] = None,
    title: Annotated[str | None, Form(max_length=10_000)] = None,
    attrs: Annotated[str | None, Form(max_length=100_000, description="JSON object of attributes")] = None,
    embed: Annotated[bool, Form()] = True,
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.write),
) -> Any:
    """Upload images (checked now: size, format, pixels) and ingest them in the background."""
    limit = cat.request_limits["max_upload_files"]
    if len(files) > limit:
        raise ApiError(413, "too-many-files", f"at most {limit} files per request")
    extra = _attrs(attrs)
    uploads = read_uploads(files, cat)
    job = cat.submit_upload(uploads, product_id=product_id or None, title=title, attrs=extra, embed=embed)
    return job.to_dict()


@router.post("/ingest/urls", response_model=JobOut, status_code=202, responses=ERRORS)
def ingest_urls(
    body: UrlIngestIn, cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.write)
) -> Any:
    """Fetch and ingest images by URL; private/loopback addresses are refused unless the server allows them."""
    items = [UrlItem(i.url, i.product_id, i.title, dict(i.attrs)) for i in body.items]
    return cat.submit_urls(items, embed=body.embed).to_dict()


@router.post("/ingest/manifest", response_model=JobOut, status_code=202, responses=UPLOAD_ERRORS)
def ingest_manifest(
    manifest: Annotated[UploadFile, File(description=".csv .tsv .jsonl .parquet or .txt")],
    image_col: Annotated[str | None, Form(max_length=200)] = None,
    id_col: Annotated[str | None, Form(max_length=200)] = None,
    text_col: Annotated[str | None, Form(max_length=200)] = None,
    embed: Annotated[bool, Form()] = True,
    cat: ServiceCatalog = Depends(catalog),
    principal: Any = Depends(security.write),
) -> Any:
    """Ingest a manifest whose rows reference image URLs (local paths need an admin key)."""
    upload = read_upload(manifest, cat)
    job = cat.submit_manifest(
        upload,
        image_col=image_col or None,
        id_col=id_col or None,
        text_col=text_col or None,
        embed=embed,
        allow_local_paths=role_allows(principal.role, "admin"),
    )
    return job.to_dict()


@router.get("/jobs", response_model=list[JobOut], responses=ERRORS)
def list_jobs(cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.read)) -> Any:
    """Jobs of this server process, newest first."""
    return [j.to_dict() for j in cat.list_jobs()]


@router.get("/jobs/{job_id}", response_model=JobOut, responses=ERRORS)
def get_job(job_id: str, cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.read)) -> Any:
    """A job's status and progress; its report when done."""
    return cat.job(job_id).to_dict()


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, responses=ERRORS | {409: ERRORS[400]})
def cancel_job(job_id: str, cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.write)) -> Any:
    """Cancel a queued or running job; whole batches already written are kept."""
    return cat.cancel_job(job_id).to_dict()
