"""One router per feature; each route calls catalog methods only.

The app serves every feature router (see ``FEATURE_ROUTERS``); one whose catalog method or imports
are missing makes it refuse to start (ConfigError naming the feature), never a silently dropped route.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request, UploadFile

from catalens.api.errors import ApiError, ErrorResponse
from catalens.api.uploads import Upload, receive_upload
from catalens.errors import TooLargeError

if TYPE_CHECKING:
    from catalens.api.service_catalog import ServiceCatalog

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


async def catalog(request: Request) -> ServiceCatalog:
    """The app's :class:`~catalens.api.service_catalog.ServiceCatalog` (async: no thread hop)."""
    cat: ServiceCatalog = request.app.state.catalog
    return cat


def read_upload(file: UploadFile, cat: ServiceCatalog) -> Upload:
    """An uploaded file streamed to disk under the catalog's upload cap (never whole in memory);
    more than the cap is refused (413) as soon as it is passed."""
    try:
        return receive_upload(file.file, file.filename or "upload", cat.settings.home, cat.max_upload_bytes)
    except TooLargeError as exc:
        raise ApiError(413, "too-large", f"{exc.source}: {exc.reason}") from exc


def read_uploads(files: list[UploadFile], cat: ServiceCatalog) -> list[Upload]:
    """:func:`read_upload` of every file; none is kept when one is refused."""
    out: list[Upload] = []
    try:
        for f in files:
            out.append(read_upload(f, cat))
    except BaseException:
        for up in out:
            up.discard()
        raise
    return out
