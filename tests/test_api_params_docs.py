"""API edges a newcomer hits (issue 23, item 6): /docs and /redoc work offline (assets served
from the package), unknown query parameters are a 422 naming the known ones, and browse/search
apply the CLI's --where checks (unknown field: 400 listing the known fields; a value no product
holds: a warning with "did you mean")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from catalens.api.app import create_app  # noqa: E402
from catalens.api.service_catalog import ServiceCatalog  # noqa: E402
from catalens.config import load_settings  # noqa: E402
from tests.conftest import make_product_image  # noqa: E402


@pytest.fixture
def client(home: Path, fake_encoder: object):  # type: ignore[no-untyped-def]
    folder = home.parent / "shots"
    rows = ["image,id,title,colour,kind"]
    for i in range(6):
        make_product_image(folder / f"p{i}.png", i)
        rows.append(f"p{i}.png,P{i},Product {i},{'red' if i % 2 else 'blue'},{'shirt' if i < 3 else 'shoe'}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    cat = ServiceCatalog(load_settings(home, default_model="fake-encoder"))
    cat.ingest(folder / "labels.csv", id_col="id", text_col="title")
    with TestClient(create_app(catalog=cat)) as c:
        yield c
    cat.close()


def _urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html) + re.findall(
        r"""url:\s*['"]([^'"]+)['"]""", html
    )


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client: TestClient, page: str) -> None:
    resp = client.get(page)
    assert resp.status_code == 200 and "text/html" in resp.headers["content-type"]
    html = resp.text
    urls = _urls(html)
    assert urls, html
    assert "cdn." not in html and "fonts.googleapis" not in html and "://" not in " ".join(urls), urls
    assets = [u for u in urls if u.startswith("/docs-assets/")]
    assert any(u.endswith(".js") for u in assets), urls
    for url in urls:
        got = client.get(url)
        assert got.status_code == 200, (url, got.status_code)
        assert len(got.content) > 1000 or url == "/openapi.json", url
    if page == "/docs":
        assert any(u.endswith(".css") for u in assets)
        assert client.get("/docs/oauth2-redirect").status_code == 200


def test_unknown_query_parameter_is_422_listing_the_known_ones(client: TestClient) -> None:
    resp = client.get("/api/v1/search", params={"product_id": "P1", "k": 3})
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err["code"] == "unknown-parameter"
    assert "'k'" in err["message"]
    for known in ("limit", "offset", "product_id", "text", "where"):
        assert known in err["message"], err["message"]
    # a near miss says which one was meant
    msg = client.get("/api/v1/products", params={"lmit": 3}).json()["error"]["message"]
    assert "did you mean 'lmit' -> 'limit'" in msg, msg
    # declared ones still work, on routes with and without query parameters
    assert client.get("/api/v1/search", params={"product_id": "P1", "limit": 3}).status_code == 200
    assert client.get("/api/v1/products/P1").status_code == 200
    assert client.get("/api/v1/products/P1", params={"x": 1}).status_code == 422
    assert client.get("/api/v1/images/" + "0" * 64 + "/thumb", params={"size": 64}).status_code == 404


@pytest.mark.parametrize("route", ["/api/v1/products", "/api/v1/search"])
def test_where_unknown_field_and_absent_value(client: TestClient, route: str) -> None:
    base = {"product_id": "P1"} if route.endswith("search") else {}
    bad = client.get(route, params=base | {"where": "colr = 'red'"})
    assert bad.status_code == 400, bad.text
    err = bad.json()["error"]
    assert err["code"] == "bad-filter"
    assert "'colr'" in err["message"] and "did you mean 'colour'" in err["message"]
    assert "known fields:" in err["message"] and "kind" in err["message"]

    absent = client.get(route, params=base | {"where": "colour = 'rde'"})
    assert absent.status_code == 200, absent.text
    body = absent.json()
    assert body["warnings"] and "did you mean 'red'" in body["warnings"][0], body["warnings"]
    ok = client.get(route, params=base | {"where": "colour = 'red'"}).json()
    assert ok["warnings"] == []
    rows = ok["items"] if "items" in ok else ok["results"]
    assert rows and all(r["attrs"]["colour"] == "red" for r in rows)
