"""One router per feature; each route calls catalog methods only.

Feature routers whose catalog methods are not there yet are skipped (see ``FEATURE_ROUTERS``).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, UploadFile

from catalens.api.errors import ApiError, ErrorResponse
from catalens.api.uploads import Upload

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "bad request"},
    401: {"model": ErrorResponse, "description": "missing or wrong API key"},
    403: {"model": ErrorResponse, "description": "the key's role is too low"},
    404: {"model": ErrorResponse, "description": "unknown id"},
    422: {"model": ErrorResponse, "description": "invalid input"},
    429: {"model": ErrorResponse, "description": "rate limited"},
}
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = ERRORS | {
    413: {"model": ErrorResponse, "description": "file or pixels over the limit"},
    415: {"model": ErrorResponse, "description": "not an image / unsupported format"},
}


async def catalog(request: Request) -> Any:
    """The app's :class:`~catalens.api.service.ServiceCatalog` (async: no thread hop)."""
    return request.app.state.catalog


def read_upload(file: UploadFile, max_bytes: int) -> Upload:
    """The bytes of an uploaded file, refusing more than ``max_bytes`` without reading it all."""
    data = file.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ApiError(
            413, "too-large", f"{file.filename or 'upload'}: over the {max_bytes}-byte upload limit"
        )
    return Upload(filename=file.filename or "upload", data=data)
