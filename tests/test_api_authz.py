"""The service's route table and who may call each route.

* The app's full route table (method + path) is asserted, so a route that goes missing (a feature
  dropped at start-up) or appears unreviewed fails here.
* A feature the app should serve but cannot (its catalog method or a module its routes import is
  missing) stops start-up with a message naming it; ``catalens serve`` exits 2 with that message.
* Every route x {no key, read key, write key, admin key, revoked key}, with reads open and closed,
  gets the expected status class: 401/403 where refused, neither (and no 5xx) where allowed. The
  role each route needs is written down in ``ROUTES`` and checked against the security dependency
  the route actually declares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")

from fastapi.testclient import TestClient  # noqa: E402

from catalens.api import security  # noqa: E402
from catalens.api.app import FEATURE_ROUTERS, create_app, route_table  # noqa: E402
from catalens.api.service_catalog import ServiceCatalog  # noqa: E402
from catalens.api.settings import ApiSettings  # noqa: E402
from catalens.config import load_settings  # noqa: E402
from catalens.errors import ConfigError  # noqa: E402
from tests.conftest import FakeEncoder, make_product_image  # noqa: E402

PUBLIC, READ, WRITE, ADMIN = "public", "read", "write", "admin"

# every (method, path) the app answers and the role it needs; "public": no key dependency at all
ROUTES: dict[tuple[str, str], str] = {
    ("DELETE", "/api/v1/images/{sha256}"): WRITE,
    ("DELETE", "/api/v1/keys/{key_id}"): ADMIN,
    ("DELETE", "/api/v1/qc/exceptions/{sha256}/{check}"): WRITE,
    ("DELETE", "/api/v1/products/{product_id:path}"): WRITE,
    ("GET", "/"): PUBLIC,
    ("GET", "/api/v1/classifiers"): READ,
    ("GET", "/api/v1/dedup/groups"): READ,
    ("GET", "/api/v1/export/{kind}"): READ,
    ("GET", "/api/v1/facets"): READ,
    ("GET", "/api/v1/features"): PUBLIC,
    ("GET", "/api/v1/images/{sha256}"): READ,
    ("GET", "/api/v1/images/{sha256}/colours"): READ,
    ("GET", "/api/v1/images/{sha256}/explain.png"): READ,
    ("GET", "/api/v1/images/{sha256}/file"): READ,
    ("GET", "/api/v1/images/{sha256}/quality"): READ,
    ("GET", "/api/v1/images/{sha256}/regions"): READ,
    ("GET", "/api/v1/images/{sha256}/tags"): READ,
    ("GET", "/api/v1/images/{sha256}/thumb"): READ,
    ("GET", "/api/v1/info"): READ,
    ("GET", "/api/v1/jobs"): READ,
    ("GET", "/api/v1/jobs/{job_id}"): READ,
    ("GET", "/api/v1/keys"): ADMIN,
    ("GET", "/api/v1/models"): READ,
    ("GET", "/api/v1/products"): READ,
    ("GET", "/api/v1/products/{product_id:path}"): READ,
    ("GET", "/api/v1/qc/exceptions"): READ,
    ("GET", "/api/v1/qc/results"): READ,
    ("GET", "/api/v1/qc/summary"): READ,
    ("GET", "/api/v1/search"): READ,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/health"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("MOUNT", "/docs-assets"): PUBLIC,
    ("MOUNT", "/static"): PUBLIC,
    ("PATCH", "/api/v1/products/{product_id:path}"): WRITE,
    ("POST", "/api/v1/classify"): READ,
    ("POST", "/api/v1/colours"): READ,
    ("POST", "/api/v1/dedup/check"): READ,
    ("POST", "/api/v1/detect"): READ,
    ("POST", "/api/v1/events"): WRITE,
    ("POST", "/api/v1/images/badges"): READ,
    ("POST", "/api/v1/ingest/manifest"): WRITE,
    ("POST", "/api/v1/ingest/upload"): WRITE,
    ("POST", "/api/v1/ingest/urls"): WRITE,
    ("POST", "/api/v1/jobs/{job_id}/cancel"): WRITE,
    ("POST", "/api/v1/keys"): ADMIN,
    ("POST", "/api/v1/qc"): READ,
    ("POST", "/api/v1/qc/exceptions"): WRITE,
    ("POST", "/api/v1/recommend"): READ,
    ("POST", "/api/v1/recommend/refit"): WRITE,
    ("POST", "/api/v1/search"): READ,
}
# path parameters: ids that exist nowhere, so an allowed DELETE or PATCH changes nothing (404)
PARAMS = {
    "{sha256}": "0" * 64,
    "{key_id}": "999999",
    "{product_id:path}": "NO-SUCH-PRODUCT",
    "{job_id}": "no-such-job",
    "{kind}": "qc",
    "{check}": "no-such-check",
}
CALLERS = ("no key", "read key", "write key", "admin key", "revoked key")
RANK = {PUBLIC: 0, READ: 1, WRITE: 2, ADMIN: 3}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import catalens.models as models

    root: Path = tmp_path_factory.mktemp("authz")
    enc = FakeEncoder()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(models, "load_image_encoder", lambda name, **kw: enc, raising=False)
        folder = root / "photos"
        rows = ["image,id,title,colour"]
        for i in range(4):
            make_product_image(folder / f"p{i}.png", i)
            rows.append(f"p{i}.png,P{i},Item {i},{'red' if i % 2 else 'blue'}")
        (folder / "labels.csv").write_text("\n".join(rows) + "\n")
        limits = {"rate_per_minute": 1e7, "burst": 1_000_000}
        cat = ServiceCatalog(
            load_settings(root / "home", default_model="fake-encoder"), ApiSettings(**limits)
        )
        cat.ingest(folder / "labels.csv", id_col="id", text_col="title")
        headers = {"no key": {}}
        for role in (READ, WRITE, ADMIN):
            key, _ = cat.create_key(role, f"authz-{role}")
            headers[f"{role} key"] = {"Authorization": f"Bearer {key}"}
        key, info = cat.create_key(ADMIN, "authz-revoked")
        cat.revoke_key(str(info.id))
        headers["revoked key"] = {"Authorization": f"Bearer {key}"}
        clients = {
            open_reads: TestClient(
                create_app(catalog=cat, api_settings=ApiSettings(open_reads=open_reads, **limits))
            )
            for open_reads in (True, False)
        }
        yield cat, clients, headers
        for c in clients.values():
            c.close()
        cat.jobs.shutdown()
        cat.close()


def _contexts(app: Any) -> dict[tuple[str, str], Any]:
    """(method, path) -> the route context (with its dependant) for every API route of the app."""
    out: dict[tuple[str, str], Any] = {}
    for r in app.routes:
        contexts = getattr(r, "effective_route_contexts", None)
        for ctx in contexts() if callable(contexts) else [r]:
            for m in getattr(ctx, "methods", None) or ():
                if m != "HEAD":
                    out[(m, ctx.path)] = ctx
    return out


def _declared_role(ctx: Any) -> str:
    """The role a route's security dependency asks for (``public`` when it has none)."""
    known = {security.read: READ, security.write: WRITE, security.admin: ADMIN}
    found: set[str] = set()
    stack = [getattr(ctx, "dependant", None)]
    while stack:
        dep = stack.pop()
        if dep is None:
            continue
        if dep.call in known:
            found.add(known[dep.call])
        elif getattr(dep.call, "__qualname__", "").startswith("require.<locals>"):
            raise AssertionError(
                f"{ctx.path}: a security.require(...) dependency other than read/write/admin"
            )
        stack.extend(dep.dependencies)
    assert len(found) <= 1, f"{ctx.path} declares several roles: {found}"
    return found.pop() if found else PUBLIC


def test_full_route_table(served) -> None:  # type: ignore[no-untyped-def]
    cat, clients, _ = served
    app = clients[True].app
    assert route_table(app) == sorted(ROUTES)
    assert app.state.features == [name for name, _ in FEATURE_ROUTERS]
    assert clients[True].get("/api/v1/features").json()["features"] == app.state.features


def test_each_route_declares_the_role_in_the_table(served) -> None:  # type: ignore[no-untyped-def]
    contexts = _contexts(served[1][True].app)
    declared = {route: _declared_role(ctx) for route, ctx in contexts.items()}
    expected = {route: role for route, role in ROUTES.items() if route[0] != "MOUNT"}
    assert declared == expected


def _expected(role_needed: str, caller: str, open_reads: bool) -> int | None:
    """401 or 403 when the caller must be refused, None when it must get through."""
    if role_needed == PUBLIC:
        return None  # no key dependency: a key, even a revoked one, is not looked at
    if caller == "revoked key":
        return 401
    if caller == "no key":
        return None if role_needed == READ and open_reads else 401
    return None if RANK[caller.split()[0]] >= RANK[role_needed] else 403


@pytest.mark.parametrize("open_reads", [True, False], ids=["open-reads", "closed-reads"])
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", sorted(ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_route_key_matrix(served, route: tuple[str, str], caller: str, open_reads: bool) -> None:  # type: ignore[no-untyped-def]
    _, clients, headers = served
    method, path = route
    for template, value in PARAMS.items():
        path = path.replace(template, value)
    if method == "MOUNT":
        method, path = "GET", f"{path}/app.js"
    resp = clients[open_reads].request(method, path, headers=headers[caller])
    want = _expected(ROUTES[route], caller, open_reads)
    if want is None:
        assert resp.status_code not in (401, 403) and resp.status_code < 500, (route, caller, resp.text[:300])
    else:
        assert resp.status_code == want, (route, caller, resp.text[:300])
        assert resp.json()["error"]["code"] == ("unauthorized" if want == 401 else "forbidden")


# ---------------------------------------------------------------------------------- start-up


def test_missing_catalog_method_refuses_start(tmp_path: Path) -> None:
    cat = ServiceCatalog(load_settings(tmp_path / "home"))
    try:
        cat.explain_label = None  # type: ignore[method-assign,assignment]
        cat.record_event = None  # type: ignore[method-assign,assignment]
        with pytest.raises(ConfigError) as err:
            create_app(catalog=cat)
        msg = str(err.value)
        assert "feature 'explain'" in msg and "ServiceCatalog.explain_label()" in msg
        assert "feature 'events'" in msg and "ServiceCatalog.record_event()" in msg
    finally:
        cat.close()


def test_missing_module_of_a_feature_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import catalens.api.app as app_module

    real = app_module.importlib.import_module

    def import_module(name: str, *args: Any) -> Any:
        if name == "catalens.api.routes.recommend":
            raise ModuleNotFoundError("No module named 'implicit'", name="implicit")
        return real(name, *args)

    monkeypatch.setattr(app_module.importlib, "import_module", import_module)
    cat = ServiceCatalog(load_settings(tmp_path / "home"))
    try:
        with pytest.raises(ConfigError, match=r"feature 'recommend'.*'implicit'.*catalens\[recommend\]"):
            create_app(catalog=cat)
    finally:
        cat.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_refuses_to_start_without_a_feature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from catalens.cli import app as cli

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the server started")

    monkeypatch.setattr(uvicorn, "run", never)
    monkeypatch.setattr(ServiceCatalog, "dedup_image", None)
    res = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "serve", "--workers", str(workers)])
    assert res.exit_code == 2, res.output
    assert "feature 'dedup'" in res.output and "dedup_image()" in res.output
