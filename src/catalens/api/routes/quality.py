"""Quality and compliance checks: an uploaded image against a profile; stored results."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile

from catalens.api import security
from catalens.api.catalogue import check_sha
from catalens.api.routes import ERRORS, UPLOAD_ERRORS, catalog, read_upload

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
    cat: Any = Depends(catalog),
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
    cat: Any = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Any:
    """Stored results of `catalens qc --all` (latest per image and profile)."""
    return cat.qc_results(profile, verdict)


PROFILE = Query(max_length=100, pattern=r"^[A-Za-z0-9_.-]+$", description="a profile name")


@router.get("/images/{sha256}/quality", responses=ERRORS)
def image_quality(
    sha256: str,
    profile: Annotated[str | None, PROFILE] = None,
    cat: Any = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Any:
    """Verdicts with reasons for a catalogued image: stored results (every profile, or ``profile``);
    a profile not run on it yet is computed now (not stored)."""
    return cat.image_quality(check_sha(sha256), profile)


@router.get("/qc/summary", responses=ERRORS)
def qc_summary(
    profile: Annotated[str | None, PROFILE] = None,
    worst: Annotated[int, Query(ge=0, le=500)] = 24,
    cat: Any = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Any:
    """Quality dashboard: counts by verdict and by issue, the worst images with reasons, profiles."""
    return cat.qc_summary(profile, worst)
