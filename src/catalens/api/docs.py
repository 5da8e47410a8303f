"""``/docs`` (Swagger UI) and ``/redoc`` served with their JavaScript and CSS from this machine.

FastAPI's default pages load Swagger UI and ReDoc from a CDN, so they are blank offline. The
assets come from the ``fastapi-offline`` package (in the ``api`` extra; it ships Swagger UI's
bundle and CSS and ReDoc's standalone bundle) and are served under ``/docs-assets``. Without that
package the pages fall back to the CDN, with a warning in the log.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

log = logging.getLogger("catalens.api")

ASSETS_PATH = "/docs-assets"
SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
REDOC_JS = "redoc.standalone.js"
FAVICON = "favicon.png"


def assets_dir() -> Path | None:
    """The folder holding the Swagger UI and ReDoc assets, or None when the package is missing."""
    try:
        from importlib.resources import files

        folder = Path(str(files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        return None
    needed = (SWAGGER_JS, SWAGGER_CSS, REDOC_JS)
    return folder if all((folder / n).is_file() for n in needed) else None


def install(app: FastAPI, title: str) -> None:
    """Add ``/docs``, ``/docs/oauth2-redirect`` and ``/redoc`` (create the app with
    ``docs_url=None, redoc_url=None``)."""
    folder = assets_dir()
    openapi_url = app.openapi_url or "/openapi.json"
    redirect = "/docs/oauth2-redirect"
    local: dict[str, str] = {}
    if folder is not None:
        app.mount(ASSETS_PATH, StaticFiles(directory=folder), name="docs-assets")
        local = {
            "swagger_js_url": f"{ASSETS_PATH}/{SWAGGER_JS}",
            "swagger_css_url": f"{ASSETS_PATH}/{SWAGGER_CSS}",
            "swagger_favicon_url": f"{ASSETS_PATH}/{FAVICON}",
        }
        redoc = {"redoc_js_url": f"{ASSETS_PATH}/{REDOC_JS}", "redoc_favicon_url": f"{ASSETS_PATH}/{FAVICON}"}
    else:
        log.warning(
            "fastapi-offline is not installed: /docs and /redoc load their assets from a CDN "
            "(pip install 'catalens[api]')"
        )
        redoc = {}

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{title} - API", oauth2_redirect_url=redirect, **local
        )

    @app.get(redirect, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc_page() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url, title=f"{title} - API", with_google_fonts=False, **redoc
        )
