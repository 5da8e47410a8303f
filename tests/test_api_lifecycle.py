"""Data lifecycle through the service: deleting a product or an image removes everything derived
from it (rows of every table, vectors, thumbnails, upload files, index entries), and afterwards no
route of the app's route table serves it."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("catalog_backend")  # on SQLite and on PostgreSQL

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import text  # noqa: E402

from catalens.api.app import create_app, route_table  # noqa: E402
from catalens.api.service_catalog import ServiceCatalog  # noqa: E402
from catalens.api.settings import ApiSettings  # noqa: E402
from catalens.catalog.schema import Base  # noqa: E402
from catalens.config import load_settings  # noqa: E402
from tests.conftest import make_product_image  # noqa: E402

N = 6
# pages that are no catalog content: documentation, and the job log (a record that an upload
# happened, by id: it serves no title, attribute, file, vector or result of the deleted product)
NOT_CONTENT = ("/openapi.json", "/docs", "/redoc", "/", "/api/v1/jobs", "/api/v1/jobs/{job_id}")


def _wait(c: TestClient, job_id: str) -> dict[str, Any]:
    end = time.time() + 30
    while time.time() < end:
        job = c.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError("job did not finish")


@pytest.fixture
def served(home: Path, fake_encoder: object):  # type: ignore[no-untyped-def]
    folder = home.parent / "shots"
    rows = ["image,id,title"]
    for i in range(N):
        make_product_image(folder / f"p{i}.png", i)
        rows.append(f"p{i}.png,P{i},Product {i}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    cat = ServiceCatalog(load_settings(home, default_model="fake-encoder"), ApiSettings())
    assert cat.ingest(folder / "labels.csv", id_col="id", text_col="title").embedded == N
    client = TestClient(create_app(catalog=cat, api_settings=cat.api_settings))
    yield cat, client
    client.close()
    cat.close()


def _rows_mentioning(cat: ServiceCatalog, values: set[str]) -> dict[str, int]:
    """Per table: rows whose image_sha256 / product_id / source column holds one of ``values``."""
    out: dict[str, int] = {}
    with cat.db.session() as s:
        for table in Base.metadata.sorted_tables:
            for col in ("image_sha256", "product_id", "sha256", "id"):
                if col in table.c and str(table.c[col].type).startswith(("VARCHAR", "TEXT", "String")):
                    n = s.execute(table.select().where(table.c[col].in_(sorted(values)))).all()
                    if n:
                        out[f"{table.name}.{col}"] = len(n)
    return out


def _fill(path: str, sha: str, pid: str, job_id: str) -> str:
    return re.sub(
        r"\{([a-z_]+)(?::path)?\}",
        lambda m: {"sha256": sha, "product_id": pid, "job_id": job_id}.get(m.group(1), "x"),
        path,
    )


def test_delete_removes_everything_derived_and_no_route_serves_it(served) -> None:  # type: ignore[no-untyped-def]
    cat, c = served
    key, _ = cat.create_key("admin", "t")
    auth = {"Authorization": f"Bearer {key}"}
    png = (cat.settings.home.parent / "shots" / "p0.png").read_bytes()
    # an upload (a file under <home>/uploads) of a new product, with derived data of every kind
    from PIL import Image

    Image.new("RGB", (90, 120), (200, 30, 30)).save(cat.settings.home.parent / "new.png")
    data = (cat.settings.home.parent / "new.png").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    r = c.post("/api/v1/ingest/upload", files=[("files", ("IMG_0001.png", data, "image/png"))], headers=auth)
    job = _wait(c, r.json()["id"])
    (pid,) = job["products"]
    assert c.get(f"/api/v1/images/{sha}/thumb", params={"size": 64}).status_code == 200
    assert c.get(f"/api/v1/images/{sha}/file").status_code == 200
    cat.qc(all_images=True, profile=str(_pixels_profile(cat)), store=True)
    events = [{"user_id": "u1", "product_id": p, "event": "view"} for p in (pid, "P1", "P2")]
    assert c.post("/api/v1/events", json={"events": events}, headers=auth).status_code == 200
    with cat.db.session() as s:  # a stored prediction (classify needs a real model; the row is what matters)
        s.execute(
            text(
                "INSERT INTO classify_predictions (image_sha256, classifier, version, field, label, prob, "
                "needs_review, top_k, created_at) VALUES (:h, 'c', '1', 'f', 'l', 0.9, false, '[]', "
                "CURRENT_TIMESTAMP)"
            ),
            {"h": sha},
        )
    emb = cat.db.embedding_positions("fake-encoder", cat.db.models()[0].version)
    position = dict(emb)[sha]
    before = _rows_mentioning(cat, {sha, pid})
    for table in ("images.sha256", "embeddings.image_sha256", "product_images.image_sha256",
                  "quality_results.image_sha256", "classify_predictions.image_sha256", "events.product_id",
                  "products.id"):  # fmt: skip
        assert before.get(table), (table, before)
    upload_file = Path(cat.db.image(sha).source)
    assert upload_file.is_file() and upload_file.is_relative_to(cat.settings.home / "uploads")
    thumb = cat.settings.home / "thumbs" / "64" / sha[:2] / f"{sha}.jpg"
    assert thumb.is_file()
    # a search engine is open (it caches the catalog), then the product is deleted
    assert c.get("/api/v1/search", params={"product_id": "P1", "limit": 50}).status_code == 200

    assert c.delete(f"/api/v1/products/{pid}", headers=auth).status_code == 204

    assert _rows_mentioning(cat, {sha, pid}) == {}
    assert not thumb.exists() and not upload_file.exists() and not upload_file.parent.exists()
    with cat.db.session() as s:
        vec_rows = s.execute(
            text("SELECT count(*) FROM embedding_vectors WHERE position = :p"), {"p": position}
        )
        assert vec_rows.scalar() == 0
    vec_file = next((cat.settings.home / "vectors").glob("*.f32"), None)
    if vec_file is not None:  # file store: the row is an unused hole of zeros
        dim = cat.db.models()[0].dim
        row = np.fromfile(vec_file, dtype=np.float32, count=dim, offset=position * dim * 4)
        assert not row.any()
    # every GET route of the app, with the deleted ids wherever it takes one: none serves them
    served_paths = []
    for method, path in route_table(c.app):
        if method != "GET":
            continue
        url = _fill(path, sha, pid, job["id"])
        # only parameters the route declares (an unknown one is a 422 unknown-parameter)
        params = {"product_id": pid} if path == "/api/v1/search" else {"size": 64} if "thumb" in path else {}
        resp = c.get(url, params=params, headers=auth)
        if "{sha256}" in path or "{product_id" in path or path == "/api/v1/search":
            assert resp.status_code == 404, (path, resp.status_code, resp.text[:200])
        elif resp.status_code == 200 and path not in NOT_CONTENT:
            assert sha not in resp.text and pid not in resp.text, path
        served_paths.append(path)
    assert "/api/v1/images/{sha256}/thumb" in served_paths and "/api/v1/products" in served_paths
    # and the other products' search never returns it, in this process or in a fresh one
    res = c.get("/api/v1/search", params={"product_id": "P1", "limit": 50}).json()["results"]
    assert pid not in {x["product_id"] for x in res}
    fresh = ServiceCatalog(cat.settings, ApiSettings())  # opens the index: it syncs with the database
    try:
        hits = fresh.search_image(cat.settings.home.parent / "new.png", k=50, all_images=True)
        assert sha not in {h.image_sha256 for h in hits} and len(hits) == N
        assert pid not in {h.product_id for h in hits}
    finally:
        fresh.close()
    assert png  # the catalog's own files are untouched


def _pixels_profile(cat: ServiceCatalog) -> Path:
    path = cat.settings.home.parent / "pixels.yaml"
    path.write_text("checks:\n  file: {}\n  blur: {}\n  resolution: {}\n")
    return path


def test_deleting_an_image_keeps_other_products_images(served) -> None:  # type: ignore[no-untyped-def]
    cat, c = served
    key, _ = cat.create_key("write", "t")
    auth = {"Authorization": f"Bearer {key}"}
    sha0 = c.get("/api/v1/products/P0").json()["images"][0]["sha256"]
    sha1 = c.get("/api/v1/products/P1").json()["images"][0]["sha256"]
    assert c.delete(f"/api/v1/images/{sha0}", headers=auth).status_code == 204
    assert c.get(f"/api/v1/images/{sha0}/thumb").status_code == 404
    assert c.get("/api/v1/products/P0").json()["images"] == []
    assert c.get(f"/api/v1/images/{sha1}/thumb").status_code == 200
    # the shop's own source files are never deleted (only what lives under the home)
    assert (cat.settings.home.parent / "shots" / "p0.png").is_file()
