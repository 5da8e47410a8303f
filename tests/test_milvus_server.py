"""A catalog searched through a real Milvus server (``--index milvus://host:port/db``) answers as
FAISS exact search does; a Milvus that nothing serves is one clear error naming its URI, quickly,
from the Python API, the CLI and the REST API. The server comes from ``tests/services/milvus.py``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from catalens.cli import app
from catalens.core import Catalog
from catalens.errors import IndexUnavailableError
from catalens.index import open_index
from tests.test_search_catalog import N, build_catalog

QUERIES = ["P0", "P2", "P5", "P11", "P17"]
WHERE = "articleType = 'Tshirts'"


def _answers(cat: Catalog) -> list[list[tuple[str | None, str, float]]]:
    out = []
    for pid in QUERIES:
        for where in (None, WHERE):
            res = cat.search_product(pid, k=8, where=where)
            out.append([(r.product_id, r.image_sha256, r.score) for r in res])
        res = cat.search_product(pid, k=N, all_images=True)
        out.append([(r.product_id, r.image_sha256, r.score) for r in res])
    return out


def test_catalog_on_milvus_server_equals_faiss_exact(
    fake_encoder: object, home: Path, tmp_path: Path, milvus_database: str
) -> None:
    build_catalog(home, tmp_path / "imgs").close()
    with Catalog.open(home) as cat:
        assert cat.sync_index()["index"]["kind"] == "exact"
        faiss = _answers(cat)
    with Catalog.open(home, index_uri=milvus_database) as cat:
        rep = cat.sync_index()
        assert rep["sync"]["action"] == "rebuilt" and rep["index"]["backend"] == "milvus"
        assert rep["index"]["count"] == N + 1  # every image, P0's second one included
        milvus = _answers(cat)
    assert len(milvus) == len(faiss) == 3 * len(QUERIES)
    for got, want in zip(milvus, faiss, strict=True):
        assert [(p, h) for p, h, _ in got] == [(p, h) for p, h, _ in want]  # same products, same order
        assert all(abs(a[2] - b[2]) <= 1e-4 for a, b in zip(got, want, strict=True))
    # the CLI with --index milvus://host:port/db: the same answers, and the index is already in sync
    r = CliRunner()
    res = r.invoke(
        app, ["--home", str(home), "--index", milvus_database, "search", "--id", "P2", "-k", "8", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert [x["product_id"] for x in json.loads(res.stdout)["results"]] == [p for p, _, _ in faiss[3]]
    info = r.invoke(app, ["--home", str(home), "--index", milvus_database, "search", "index", "--json"])
    assert info.exit_code == 0 and json.loads(info.stdout)["sync"]["action"] == "none"


def test_unreachable_milvus_python_api(
    fake_encoder: object, home: Path, tmp_path: Path, closed_port_uri: str
) -> None:
    t0 = time.monotonic()
    with pytest.raises(IndexUnavailableError, match=closed_port_uri.replace(".", r"\.")):
        open_index(closed_port_uri, dim=8, name="x")
    with pytest.raises(IndexUnavailableError, match="unreachable"):
        open_index(closed_port_uri + "/shop", dim=8, name="x")
    build_catalog(home, tmp_path / "imgs", n=4).close()
    with Catalog.open(home, index_uri=closed_port_uri) as cat, pytest.raises(IndexUnavailableError) as err:
        cat.search_product("P1", k=3)
    assert closed_port_uri in str(err.value)
    assert time.monotonic() - t0 < 10  # refused at once: no retry loop, no 60 s hang


def test_unreachable_milvus_cli(
    fake_encoder: object, home: Path, tmp_path: Path, closed_port_uri: str
) -> None:
    build_catalog(home, tmp_path / "imgs", n=4).close()
    res = CliRunner().invoke(app, ["--home", str(home), "--index", closed_port_uri, "search", "--id", "P1"])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and closed_port_uri in lines[0], res.output


def test_unreachable_milvus_api(
    fake_encoder: object, home: Path, tmp_path: Path, closed_port_uri: str
) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from catalens.api.app import create_app
    from catalens.api.service_catalog import ServiceCatalog
    from catalens.config import load_settings

    build_catalog(home, tmp_path / "imgs", n=4).close()
    cat = ServiceCatalog(load_settings(home, index_uri=closed_port_uri))
    try:
        with TestClient(create_app(catalog=cat), raise_server_exceptions=False) as c:
            r = c.get("/api/v1/search", params={"product_id": "P1", "limit": 3})
        assert r.status_code == 503, r.text
        body = r.json()["error"]
        assert body["code"] == "index-unavailable" and closed_port_uri in body["message"]
        assert "Traceback" not in r.text
    finally:
        cat.close()
