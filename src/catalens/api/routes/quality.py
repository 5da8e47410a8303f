"""Quality and compliance checks: an uploaded image against a profile; stored results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from catalens.api import security
from catalens.api.routes import ERRORS, UPLOAD_ERRORS, catalog, read_upload
from catalens.catalog.products import check_sha

if TYPE_CHECKING:
    from catalens.api.service_catalog import ServiceCatalog

router = APIRouter(prefix="/api/v1", tags=["quality"])


@router.post("/qc", responses=UPLOAD_ERRORS)
def qc_upload(
    file: Annotated[UploadFile, File(description="image to check")],
    profile: Annotated[
        str,
        Form(
            max_length=100,
            pattern=r"^[A-Za-z0-9_.-]+$",
            description="a profile name, e.g. general, marketplace-main-image (never a server path)",
        ),
    ] = "general",
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Any:
    """Verdicts with reasons for an uploaded image under a profile (nothing is stored)."""
    upload = read_upload(file, cat)
    with cat.uploaded_image(upload) as path:
        report = cat.qc([path], profile=profile, store=False)
    data = report.to_dict()
    for res in data.get("results", []):
        if isinstance(res, dict) and "source" in res:
            res["source"] = upload.filename  # not the temporary file's path
    return data


@router.get("/qc/results", responses=ERRORS)
def qc_results(
    profile: Annotated[str | None, Query(max_length=200)] = None,
    verdict: Annotated[str | None, Query(max_length=20)] = None,
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Any:
    """Stored results of `catalens qc --all` (latest per image and profile)."""
    return cat.qc_results(profile, verdict)


PROFILE = Query(max_length=100, pattern=r"^[A-Za-z0-9_.-]+$", description="a profile name")


@router.get("/images/{sha256}/quality", responses=ERRORS)
def image_quality(
    sha256: str,
    profile: Annotated[str | None, PROFILE] = None,
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Any:
    """Verdicts with reasons for a cataloged image: stored results (every profile, or ``profile``);
    a profile not run on it yet is computed now (not stored)."""
    return cat.image_quality(check_sha(sha256), profile)


@router.get("/qc/summary", responses=ERRORS)
def qc_summary(
    profile: Annotated[str | None, PROFILE] = None,
    worst: Annotated[int, Query(ge=0, le=500, description="page size of the worst images")] = 24,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="first worst image of the page")] = 0,
    check: Annotated[str | None, Query(max_length=128, description="only images failing this check")] = None,
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Any:
    """Quality dashboard: counts by verdict and by issue, one page of the worst images with reasons
    (``worst_total`` in all), profiles. Dismissed checks count as passing."""
    return cat.qc_summary(profile, worst, offset, check)


class DismissIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    check: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")
    note: str = Field("", max_length=1000)


@router.get("/qc/exceptions", responses=ERRORS)
def qc_exceptions(cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.read)) -> Any:
    """Accepted exceptions: (image, check) pairs dismissed as false positives."""
    from catalens.quality.exceptions import list_exceptions

    return list_exceptions(cat.db)


@router.post("/qc/exceptions", status_code=201, responses=ERRORS)
def qc_dismiss(
    body: DismissIn, cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.write)
) -> Any:
    """Dismiss a check's warning or failure on an image as a false positive: stored results (this
    run's and later runs') show it as dismissed, not failing."""
    from catalens.quality.exceptions import dismiss

    check_sha(body.sha256)
    cat.image_info(body.sha256)  # 404 for an image the catalog does not have
    return dismiss(cat.db, body.sha256, body.check, body.note)


@router.delete("/qc/exceptions/{sha256}/{check}", status_code=204, response_class=Response, responses=ERRORS)
def qc_undismiss(
    sha256: str, check: str, cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.write)
) -> Response:
    """Forget a dismissal (the check counts again)."""
    from catalens.quality.exceptions import undismiss

    undismiss(cat.db, check_sha(sha256), check)
    return Response(status_code=204)
