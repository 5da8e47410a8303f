"""Classification of an uploaded image (category, tags with confidences) and its dominant colours."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile

from catalens.api import security
from catalens.api.routes import UPLOAD_ERRORS, catalog, read_upload

router = APIRouter(prefix="/api/v1", tags=["classify"])


@router.get("/classifiers", responses=UPLOAD_ERRORS)
def classifiers(cat: Any = Depends(catalog), _p: Any = Depends(security.read)) -> Any:
    """Trained classifiers of this catalogue (``builtin`` is always there)."""
    return cat.classifiers()


@router.post("/classify", responses=UPLOAD_ERRORS)
def classify(
    file: Annotated[UploadFile, File(description="image to classify")],
    classifier: Annotated[str, Form(max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")] = "builtin",
    cat: Any = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Any:
    """Predicted fields and tags with confidences for an uploaded image (nothing is stored)."""
    upload = read_upload(file, cat.max_upload_bytes)
    with cat.uploaded_image(upload) as path:
        result = cat.classify([path], classifier)
    out = dict(result[0]) if result else {}
    for key in ("path", "source"):
        if key in out:
            out[key] = upload.filename  # not the temporary file's path
    return out


@router.post("/colours", responses=UPLOAD_ERRORS)
def colours(
    file: Annotated[UploadFile, File(description="image")],
    cat: Any = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Any:
    """Dominant product colours (foreground) named against the retail palette, with shares."""
    upload = read_upload(file, cat.max_upload_bytes)
    with cat.uploaded_image(upload) as path:
        return cat.colours(path)
