"""Exports: the rows of ``catalens export KIND`` (see :mod:`catalens.exports`) as a CSV, JSON-lines
or Parquet download; a thin translation of the query to that module's options."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from catalens.api import security
from catalens.api.errors import ApiError
from catalens.api.routes import ERRORS, catalog

if TYPE_CHECKING:
    from catalens.api.service_catalog import ServiceCatalog

router = APIRouter(prefix="/api/v1", tags=["exports"])

Kind = Literal["predictions", "review", "disagreements", "qc", "dedup", "recommendations"]
MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
# the options each kind takes (query name -> keyword of catalens.exports.export_rows)
OPTIONS: dict[str, dict[str, str]] = {
    "predictions": {"classifier": "classifier", "field": "fields"},
    "review": {"classifier": "classifier", "field": "fields"},
    "disagreements": {"classifier": "classifier", "field": "fields"},
    "qc": {"profile": "profile", "verdict": "verdict"},
    "dedup": {"model": "model"},
    "recommendations": {"user": "users", "k": "k", "max_users": "max_users"},
}
NAME = Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_.:/-]+$")]


@router.get(
    "/export/{kind}",
    responses=ERRORS | {200: {"content": {m.split(";")[0]: {} for m in MEDIA.values()}}},
)
def export(
    kind: Kind,
    format: Annotated[Literal["csv", "jsonl", "parquet"], Query(description="file format")] = "csv",
    classifier: NAME = None,
    field: Annotated[list[str] | None, Query(max_length=200, description="predictions: these fields")] = None,
    profile: NAME = None,
    verdict: Annotated[Literal["pass", "warn", "fail", "error"] | None, Query()] = None,
    model: NAME = None,
    user: Annotated[
        list[str] | None, Query(max_length=500, description="recommendations: these users")
    ] = None,
    k: Annotated[int | None, Query(ge=1, le=200)] = None,
    max_users: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    cat: ServiceCatalog = Depends(catalog),
    _p: Any = Depends(security.read),
) -> Response:
    """Per-image rows of one export kind (the same rows and columns as ``catalens export``)."""
    from catalens.exports import COLUMNS, export_rows, write_rows

    given = {
        "classifier": classifier, "field": field, "profile": profile, "verdict": verdict,
        "model": model, "user": user, "k": k, "max_users": max_users,
    }  # fmt: skip
    allowed = OPTIONS[kind]
    wrong = sorted(n for n, v in given.items() if v is not None and n not in allowed)
    if wrong:
        raise ApiError(
            422,
            "invalid",
            f"export {kind} takes no {', '.join(wrong)} (its options: {', '.join(allowed) or 'none'})",
        )
    opts = {allowed[n]: v for n, v in given.items() if v is not None}
    rows = export_rows(cat, kind, **opts)
    headers = {"Content-Disposition": f'attachment; filename="catalens-{kind}.{format}"'}
    if format == "parquet":
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "export.parquet"
            n = write_rows(rows, "parquet", out, COLUMNS[kind])
            body = out.read_bytes()
    else:
        import io

        buf = io.StringIO()
        n = write_rows(rows, format, buf, COLUMNS[kind])
        body = buf.getvalue().encode("utf-8")
    return Response(body, media_type=MEDIA[format], headers=headers | {"X-Row-Count": str(n)})
