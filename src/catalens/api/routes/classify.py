"""Classification of an uploaded image (category, tags with confidences) and its dominant colours."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile

from catalens.api import security
from catalens.api.routes import ERRORS, UPLOAD_ERRORS, catalog, read_upload
from catalens.catalog.products import check_sha

if TYPE_CHECKING:
    from catalens.api.service_catalog import ServiceCatalog

router = APIRouter(prefix="/api/v1", tags=["classify"])


@router.get("/classifiers", responses=UPLOAD_ERRORS)
def classifiers(cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.read)) -> Any:
    """Trained classifiers of this catalog (``builtin`` is always there)."""
    return [c.to_dict() for c in cat.classifiers()]


@router.post("/classify", responses=UPLOAD_ERRORS)
def classify(
    file: Annotated[UploadFile, File(description="image to classify")],
    classifier: Annotated[str, Form(max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")] = "builtin",
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Any:
    """Predicted fields and tags with confidences for an uploaded image (nothing is stored)."""
    upload = read_upload(file, cat)
    with cat.uploaded_image(upload) as path:
        out = cat.classify_image(path, classifier)
    for key in ("path", "source"):
        if key in out:
            out[key] = upload.filename  # not the temporary file's path
    return out


@router.post("/colours", responses=UPLOAD_ERRORS)
def colours(
    file: Annotated[UploadFile, File(description="image")],
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Any:
    """Dominant product colours (foreground) named against the retail palette, with shares."""
    upload = read_upload(file, cat)
    with cat.uploaded_image(upload) as path:
        return cat.colours(path).to_dict()


@router.get("/images/{sha256}/tags", responses=ERRORS)
def image_tags(
    sha256: str,
    classifier: Annotated[str | None, Query(max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")] = None,
    top_k: Annotated[int, Query(ge=1, le=10)] = 3,
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Any:
    """Predicted fields with confidences for a cataloged image, from its stored embedding:
    the built-in taxonomy and every trained classifier (or just ``classifier``)."""
    return cat.image_tags(check_sha(sha256), [classifier] if classifier else None, top_k)


@router.get("/images/{sha256}/colours", responses=ERRORS)
def image_colours(sha256: str, cat: ServiceCatalog = Depends(catalog), _p: Any = Depends(security.read)) -> Any:
    """Dominant product colours of a cataloged image with percentages (computed once, cached)."""
    return cat.image_colours(check_sha(sha256))
