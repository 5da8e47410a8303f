"""The one JSON error model of the API and the mapping from catalens errors to HTTP statuses.

Every error response is ``{"error": {"status", "code", "message", "detail"}}``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from catalens import errors as E

log = logging.getLogger("catalens.api")


class ErrorBody(BaseModel):
    status: int
    code: str
    message: str
    detail: Any | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """An error raised by the API layer itself (auth, limits)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


# first match wins: subclasses before their bases
_STATUS: list[tuple[type[E.CatalensError], int, str]] = [
    (E.BlockedAddressError, 400, "blocked-address"),
    (E.TooLargeError, 413, "too-large"),
    (E.DecompressionBombError, 413, "too-many-pixels"),
    (E.NotAnImageError, 415, "not-an-image"),
    (E.UnsupportedFormatError, 415, "unsupported-format"),
    (E.EmptyFileError, 422, "empty"),
    (E.FetchError, 400, "fetch"),
    (E.ImageError, 422, "bad-image"),
    (E.NotFoundError, 404, "not-found"),
    (E.EmptyCatalogError, 409, "empty-catalog"),
    (E.ManifestError, 422, "bad-manifest"),
    (E.WeightsUnavailableError, 503, "weights-unavailable"),
    (E.ModelError, 422, "model"),
    (E.ConfigError, 400, "bad-request"),
]
_OPTIONAL = {  # errors other packages add; mapped when they exist
    "FilterSyntaxError": (400, "bad-filter"),
    "TextSearchUnavailableError": (409, "text-search-unavailable"),
    "IndexCorruptError": (503, "index-corrupt"),
    "IndexUnavailableError": (503, "index-unavailable"),
    "EmptyEventsError": (409, "no-events"),
}
HTTP_CODES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "too-large",
    415: "unsupported-media-type",
    422: "invalid",
    429: "rate-limited",
    500: "internal",
    503: "unavailable",
    504: "timeout",
}


def error_json(
    status: int, code: str, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"status": status, "code": code, "message": message, "detail": detail}}
    return JSONResponse(body, status_code=status, headers=headers)


def status_for(exc: E.CatalensError) -> tuple[int, str]:
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            if isinstance(exc, E.ImageError) and code in {"bad-image", "fetch"}:
                return status, exc.kind
            return status, code
    for cls in type(exc).__mro__:
        if cls.__name__ in _OPTIONAL:
            return _OPTIONAL[cls.__name__]
    return 400, "bad-request"


def _clean(errors: list[Any]) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        out.append({"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")})
    return out


def _allowed_methods(app: FastAPI, req: Request) -> list[str]:
    from starlette.routing import Match

    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(req.scope)
        if match != Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(E.CatalensError)
    async def _catalens(_req: Request, exc: E.CatalensError) -> JSONResponse:
        status, code = status_for(exc)
        detail = {"source": exc.source, "kind": exc.kind} if isinstance(exc, E.ImageError) else None
        return error_json(status, code, str(exc), detail)

    @app.exception_handler(ApiError)
    async def _api(_req: Request, exc: ApiError) -> JSONResponse:
        return error_json(exc.status, exc.code, exc.message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errs = _clean(list(exc.errors()))
        first = errs[0] if errs else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(x) for x in first["loc"])
        return error_json(422, "invalid", f"{where}: {first['msg']}" if where else first["msg"], errs)

    @app.exception_handler(StarletteHTTPException)
    async def _http(req: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "error")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every method of every route on this path, not only the first route's
            headers["Allow"] = ", ".join(_allowed_methods(app, req))
        return error_json(exc.status_code, code, str(exc.detail), headers=headers or None)

    @app.exception_handler(Exception)
    async def _internal(req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", req.method, req.url.path)
        return error_json(500, "internal", f"internal error ({type(exc).__name__}); see the server log")
