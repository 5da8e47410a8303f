"""Duplicate check of an uploaded image against the catalogue (nothing is stored)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile

from catalens.api import security
from catalens.api.routes import UPLOAD_ERRORS, catalog, read_upload

router = APIRouter(prefix="/api/v1", tags=["search"])


@router.post("/dedup/check", responses=UPLOAD_ERRORS)
def dedup_check(
    file: Annotated[UploadFile, File(description="image to check")],
    model: Annotated[str | None, Form(max_length=200)] = None,
    cat: Any = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Any:
    """Catalogue images that duplicate the upload: same bytes, same pixels or near-duplicates."""
    upload = read_upload(file, cat)
    with cat.uploaded_image(upload) as path:
        result = cat.dedup_image(path, model=model or None)
    data = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    data["query"] = upload.filename  # not the temporary file's path
    return data
