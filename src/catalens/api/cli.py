"""``catalens serve`` and ``catalens keys`` (create / list / revoke API keys)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from catalens.cli_common import _catalog, _fail, err, out, print_json, state
from catalens.errors import CatalensError

keys_app = typer.Typer(help="Create, list and revoke API keys (stored hashed).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command(
        epilog=(
            "Examples:\n\n"
            "  catalens serve\n\n"
            "  catalens --home shop-home serve --host 0.0.0.0 --port 8080 --cors-origin https://shop.example\n\n"
            "  CATALENS_API_OPEN_READS=0 catalens serve   # every request needs a key\n\n"
            "  catalens serve --workers 4   # 4 processes over one catalog\n\n"
            "Then open http://127.0.0.1:8000/ (web page) or /docs (OpenAPI)."
        )
    )(serve)
    app.add_typer(keys_app, name="keys")


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    open_reads: Annotated[
        bool | None,
        typer.Option("--open-reads/--closed-reads", help="Allow reads without a key (default: open)."),
    ] = None,
    cors_origin: Annotated[
        list[str] | None, typer.Option(help="Allowed CORS origin (repeatable; '*' for any).")
    ] = None,
    rate_per_minute: Annotated[float | None, typer.Option(help="Requests per minute per key.")] = None,
    request_timeout: Annotated[float | None, typer.Option(help="Request timeout in seconds.")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes over the one catalog; each sees the others' writes within "
            "CATALENS_API_REFRESH_S (1 s) plus one index catch-up.",
        ),
    ] = 1,
) -> None:
    """Run the REST API and the web page over the catalog (FastAPI + uvicorn)."""
    try:
        import uvicorn
    except ImportError:
        err.print("[red]error:[/red] the service needs `pip install 'catalens[api]'`")
        raise typer.Exit(2) from None
    from catalens.api.app import check_features, create_app
    from catalens.api.service_catalog import ServiceCatalog
    from catalens.api.settings import load_api_settings
    from catalens.config import load_settings

    try:
        api = load_api_settings(
            open_reads=open_reads,
            cors_origins=tuple(cors_origin) if cors_origin else None,
            rate_per_minute=rate_per_minute,
            request_timeout_s=request_timeout,
        )
        settings = load_settings(state.home, db_url=state.db, device=state.device, index_uri=state.index)
        if workers > 1:  # check the catalog opens and every feature loads here, once, before the workers
            cat = ServiceCatalog(settings, api)
            try:
                check_features(cat)
            finally:
                cat.close()
        else:
            app = create_app(catalog=ServiceCatalog(settings, api), api_settings=api)
    except CatalensError as exc:
        _fail(exc)
    if workers > 1:
        _serve_workers(settings, api, host, port, workers, log_level)
        return
    _one_blas_thread()
    err.print(f"catalens serving {settings.home} on http://{host}:{port}/  (API docs: /docs)")
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug")


def _serve_workers(settings: Any, api: Any, host: str, port: int, workers: int, log_level: str) -> None:
    """``workers`` uvicorn processes over one catalog: each builds its own app from the settings
    passed in the environment (see :func:`catalens.api.app.create_app_from_environment`)."""
    import dataclasses
    import json
    import os

    import uvicorn

    from catalens.api.app import SERVE_ENV

    config = {
        "settings": {
            "home": str(settings.home),
            "db_url": state.db,
            "device": state.device,
            "index_uri": state.index,
        },
        "api": dataclasses.asdict(api),
    }
    os.environ[SERVE_ENV] = json.dumps(config)
    err.print(
        f"catalens serving {settings.home} on http://{host}:{port}/ with {workers} workers  (API docs: /docs)"
    )
    uvicorn.run(
        "catalens.api.app:create_app_from_environment",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level=log_level,
        access_log=log_level == "debug",
    )


def _one_blas_thread() -> None:
    """One BLAS thread per caller in the service: requests run concurrently in the thread pool, and
    OpenBLAS's own threads, called from several request threads at once, spin and contend (a
    1x1280 @ 1280x1000 classifier head cost 4.8 ms of CPU instead of 0.18 ms with 8 concurrent
    callers on 2 cores). ONNX Runtime and FAISS keep their own thread settings."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - comes with scikit-learn
        return
    threadpool_limits(1, user_api="blas")


@keys_app.command(
    "create",
    epilog="Examples:\n\n  catalens keys create --role read --name shop-frontend\n\n  catalens keys create --role admin --json",
)
def keys_create(
    role: Annotated[str, typer.Option(help="read | write | admin")] = "read",
    name: Annotated[str | None, typer.Option(help="A label to recognise the key by.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Create an API key. The key is printed once; only its hash is stored."""
    from catalens.api.keys import create_key

    try:
        key, info = create_key(_catalog().db, role, name)
    except CatalensError as exc:
        _fail(exc)
    if as_json:
        print_json(info.to_dict() | {"key": key})
        return
    out.print(
        f"created {info.role} key #{info.id} (prefix {info.prefix}); store it now, it is not shown again:"
    )
    typer.echo(key)


@keys_app.command("list", epilog="Example:\n\n  catalens keys list --json")
def keys_list(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """List API keys (id, prefix, role, name, revoked); never the keys themselves."""
    from rich.table import Table

    from catalens.api.keys import list_keys

    try:
        keys = list_keys(_catalog().db)
    except CatalensError as exc:
        _fail(exc)
    if as_json:
        print_json([k.to_dict() for k in keys])
        return
    table = Table(title="API keys")
    for col in ("id", "prefix", "role", "name", "created", "revoked"):
        table.add_column(col)
    for k in keys:
        d = k.to_dict()
        table.add_row(
            str(d["id"]), d["prefix"], d["role"], d["name"] or "", str(d["created_at"]), str(d["revoked"])
        )
    out.print(table)


@keys_app.command("revoke", epilog="Example:\n\n  catalens keys revoke 3\n\n  catalens keys revoke 1a2b3c4d")
def keys_revoke(key: Annotated[str, typer.Argument(help="Key id or prefix.")]) -> None:
    """Revoke an API key (by id or prefix); it stops working at once."""
    from catalens.api.keys import revoke_key

    try:
        info = revoke_key(_catalog().db, key)
    except CatalensError as exc:
        _fail(exc)
    out.print(f"revoked key #{info.id} ({info.prefix})")
