"""The FastAPI application: routers, error model, auth, limits, metrics, CORS and the web page."""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from catalens import __version__
from catalens.api import docs, errors
from catalens.api.middleware import Metrics, ServiceMiddleware
from catalens.api.params import reject_unknown_query
from catalens.api.security import RateLimiter
from catalens.api.service_catalog import ServiceCatalog
from catalens.api.settings import ApiSettings, load_api_settings
from catalens.config import Settings, load_settings
from catalens.errors import ConfigError

log = logging.getLogger("catalens.api")

CORE_ROUTERS = ("ops", "products", "ingest", "keys", "export")
# feature routers: (module under catalens.api.routes, catalog method it needs)
FEATURE_ROUTERS = (
    ("search", "search_image"),
    ("dedup", "dedup_image"),
    ("classify", "classify"),
    ("quality", "qc"),
    ("recommend", "recommend"),
    ("events", "record_event"),
    ("explain", "explain_label"),
    ("detect", "detect"),
)
WEB_DIR = Path(__file__).resolve().parents[1] / "web" / "static"


# the extra that installs a module a route module imports (a missing one names the extra to install)
_EXTRA_OF_MODULE = {
    "fastapi": "api",
    "starlette": "api",
    "pydantic": "api",
    "multipart": "api",
    "python_multipart": "api",
    "prometheus_client": "api",
    "orjson": "api",
    "implicit": "recommend",
    "pytorch_grad_cam": "explain",
    "open_clip": "clip",
    "pymilvus": "milvus",
    "psycopg": "postgres",
}


def _missing_module_hint(module: str) -> str:
    top = module.split(".")[0]
    if top == "catalens":
        return f"module {module!r} is missing: this catalens install is incomplete (reinstall catalens)"
    extra = _EXTRA_OF_MODULE.get(top, "api")
    return f"module {module!r} is missing: pip install 'catalens[{extra}]'"


def _feature_routers(cat: object) -> list[tuple[str, Any]]:
    """The router of every feature in ``FEATURE_ROUTERS``. The service serves all of them, so one
    it cannot serve (its catalog method or a module its routes import is missing) is a
    ConfigError naming each such feature and what is missing; no route is dropped silently."""
    out: list[tuple[str, Any]] = []
    problems: list[str] = []
    for name, method in FEATURE_ROUTERS:
        if not callable(getattr(cat, method, None)):
            problems.append(
                f"feature {name!r} needs the catalog method {type(cat).__name__}.{method}(), which is missing"
            )
            continue
        try:
            module = importlib.import_module(f"catalens.api.routes.{name}")
        except ModuleNotFoundError as exc:
            problems.append(
                f"feature {name!r} cannot load its routes: {_missing_module_hint(exc.name or str(exc))}"
            )
            continue
        out.append((name, module.router))
    if problems:
        raise ConfigError("the service cannot start: " + "; ".join(problems))
    return out


def check_features(cat: object) -> None:
    """Raise ConfigError (as :func:`create_app` would) when a feature the service serves is missing."""
    _feature_routers(cat)


def create_app(
    home: str | Path | None = None,
    *,
    settings: Settings | None = None,
    api_settings: ApiSettings | None = None,
    catalog: ServiceCatalog | None = None,
) -> FastAPI:
    """Build the app over the catalog at ``home`` (or ``settings``, or an open ``catalog``)."""
    api = api_settings or load_api_settings()
    if catalog is None:
        catalog = ServiceCatalog(settings or load_settings(home), api)
    metrics = Metrics()

    refresher = getattr(catalog, "refresher", None)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if refresher is not None:  # search catches up with writes by other processes
            refresher.start()
        refits = getattr(catalog, "refits", None)
        if refits is not None and "recommend" in app.state.features:
            refits.changed()  # the first engine is fitted (or loaded) in the background
        sweep = getattr(catalog, "sweep_uploads", None)
        if sweep is not None:  # uploads left behind by a crash or a job that kept none of them
            try:
                sweep()
            except Exception:  # noqa: BLE001 - never refuse to start for it
                log.warning("sweeping unused uploads failed", exc_info=True)
        yield
        if refresher is not None:
            refresher.stop()
        catalog.jobs.shutdown()

    app = _new_app(lifespan)
    _install_state(app, catalog, api, metrics)
    _include_routes(app, catalog, api)
    _mount_web_page(app)
    _add_middleware(app, catalog, api, metrics)
    return app


def _new_app(lifespan: Any) -> FastAPI:
    """The bare FastAPI app: title, description, local docs, unknown query parameters refused."""
    app = FastAPI(
        title="catalens",
        version=__version__,
        description=(
            "Product-photo understanding over one catalog: products and images, ingest jobs, "
            "and the image tasks that are installed. Errors are always "
            '`{"error": {"status", "code", "message", "detail"}}`. Send a key as `Authorization: Bearer <key>`.'
        ),
        lifespan=lifespan,
        docs_url=None,  # served by catalens.api.docs with local assets (works offline)
        redoc_url=None,
        dependencies=[Depends(reject_unknown_query)],  # ?k=3 where the parameter is limit: 422
    )
    docs.install(app, "catalens")
    return app


def _install_state(app: FastAPI, catalog: ServiceCatalog, api: ApiSettings, metrics: Metrics) -> None:
    """The app's state (catalog, settings, metrics, rate limiter), job metrics and the error model."""
    app.state.catalog = catalog
    app.state.api_settings = api
    app.state.metrics = metrics
    app.state.rate_limiter = RateLimiter(api.rate_per_minute, api.burst)
    catalog.jobs._on_finish = _chain(
        catalog.jobs._on_finish, lambda j: metrics.jobs.labels(j.kind, j.status).inc()
    )
    errors.install(app)


def _include_routes(app: FastAPI, catalog: ServiceCatalog, api: ApiSettings) -> None:
    """The core routers, every feature router, then ``GET /api/v1/features``."""
    for name in CORE_ROUTERS:
        app.include_router(importlib.import_module(f"catalens.api.routes.{name}").router)
    app.state.features = []
    for name, router in _feature_routers(catalog):
        app.include_router(router)
        app.state.features.append(name)

    @app.get("/api/v1/features", tags=["operations"])
    def features() -> dict[str, Any]:
        """Which feature routes this server has (the web page adapts to them)."""
        return {
            "features": app.state.features,
            "open_reads": api.open_reads,
            "limits": catalog.request_limits,
        }


def _mount_web_page(app: FastAPI) -> None:
    """The web page: ``/static`` and ``/`` (or ``/`` redirecting to the docs without the page)."""
    if WEB_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

        @app.get("/", include_in_schema=False)
        def index() -> FileResponse:
            return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})
    else:  # pragma: no cover - the package always ships its page

        @app.get("/", include_in_schema=False)
        def index_docs() -> RedirectResponse:
            return RedirectResponse("/docs")


def _add_middleware(app: FastAPI, catalog: ServiceCatalog, api: ApiSettings, metrics: Metrics) -> None:
    """Limits, timeouts and metrics on every request; CORS when origins are configured."""
    max_up = catalog.max_upload_bytes
    app.add_middleware(
        ServiceMiddleware,
        metrics=metrics,
        timeout_s=api.request_timeout_s,
        max_body=max_up + (1 << 20),
        max_upload_body=max_up * api.max_upload_files + (1 << 20),
    )
    if api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(api.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
            max_age=600,
        )


def route_table(app: Any) -> list[tuple[str, str]]:
    """Every (method, path) the app answers, mounts as ("MOUNT", path), sorted; routers included
    with ``include_router`` are flattened (FastAPI keeps them as included-router entries)."""
    out: set[tuple[str, str]] = set()

    def walk(routes: Any) -> None:
        for r in routes:
            contexts = getattr(r, "effective_route_contexts", None)
            if callable(contexts):
                for ctx in contexts():
                    for m in getattr(ctx, "methods", None) or ():
                        out.add((m, ctx.path))
                continue
            methods = getattr(r, "methods", None)
            if methods:
                out.update((m, r.path) for m in methods if m != "HEAD")
            elif hasattr(r, "routes") and getattr(r, "path", None) is not None:
                out.add(("MOUNT", r.path))

    walk(app.routes)
    return sorted(out)


def _chain(first: Any, second: Any) -> Any:
    def both(job: Any) -> None:
        if first is not None:
            first(job)
        second(job)

    return both


SERVE_ENV = "CATALENS_SERVE_CONFIG"


def create_app_from_environment() -> FastAPI:
    """The app factory of ``catalens serve --workers N``: each worker process builds its app (its
    own catalog connection, engines and search refresher) from the JSON in ``$CATALENS_SERVE_CONFIG``
    (``settings``: arguments of :func:`catalens.config.load_settings`; ``api``: of
    :func:`catalens.api.settings.load_api_settings`)."""
    import json
    import os

    raw = os.environ.get(SERVE_ENV)
    if not raw:
        raise RuntimeError(f"${SERVE_ENV} is not set: start workers with `catalens serve --workers N`")
    config = json.loads(raw)
    api = load_api_settings(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["api"].items()})
    settings = load_settings(config["settings"].pop("home", None), **config["settings"])
    from catalens.api.cli import _one_blas_thread

    _one_blas_thread()
    return create_app(catalog=ServiceCatalog(settings, api), api_settings=api)
