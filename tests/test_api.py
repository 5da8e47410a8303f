"""REST API tests with the FastAPI test client over a small synthetic catalog (FakeEncoder)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.usefixtures("catalog_backend")  # each test on SQLite and on PostgreSQL

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")

from fastapi.testclient import TestClient  # noqa: E402

from catalens.api.app import create_app  # noqa: E402
from catalens.api.service_catalog import ServiceCatalog  # noqa: E402
from catalens.api.settings import ApiSettings  # noqa: E402
from catalens.config import load_settings  # noqa: E402
from tests.conftest import make_product_image  # noqa: E402

N = 12


def _png(seed: int, size: tuple[int, int] = (120, 160)) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", size, (255, 255, 255))
    img.putpixel((seed % size[0], seed % size[1]), (seed % 255, 10, 10))
    img.save(buf, format="PNG")
    return buf.getvalue()


def _build(home: Path, fake_encoder: object, **api: object) -> tuple[ServiceCatalog, TestClient]:
    folder = home.parent / "shots"
    rows = ["image,id,title,colour,kind"]
    for i in range(N):
        make_product_image(folder / f"p{i}.png", i)
        rows.append(f"p{i}.png,P{i},Product {i},{'red' if i % 2 else 'blue'},{'shirt' if i < 6 else 'shoe'}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    cat = ServiceCatalog(load_settings(home, default_model="fake-encoder"), ApiSettings(**api))  # type: ignore[arg-type]
    report = cat.ingest(folder / "labels.csv", id_col="id", text_col="title")
    assert report.failed == 0 and report.embedded == N
    return cat, TestClient(create_app(catalog=cat, api_settings=cat.api_settings))


@pytest.fixture
def api(home: Path, fake_encoder: object) -> tuple[ServiceCatalog, TestClient]:
    cat, client = _build(home, fake_encoder)
    yield cat, client
    client.close()
    cat.close()


def _key(cat: ServiceCatalog, role: str) -> dict[str, str]:
    key, _ = cat.create_key(role, f"test-{role}")
    return {"Authorization": f"Bearer {key}"}


def _err(resp, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["status"] == status
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def _wait(client: TestClient, job_id: str, timeout: float = 20.0) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


# ---------------------------------------------------------------------------------- operations


def test_health_ready_metrics_features(api):
    _cat, c = api
    assert c.get("/health").json()["status"] == "ok"
    ready = c.get("/ready").json()
    assert ready["status"] == "ok" and ready["schema_version"] >= 1
    feats = c.get("/api/v1/features").json()
    assert "search" in feats["features"] and feats["open_reads"] is True
    c.get("/api/v1/products/nope")
    text = c.get("/metrics").text
    assert (
        'catalens_http_requests_total{method="GET",route="/api/v1/products/{product_id:path}",status="404"}'
        in text
    )
    assert "catalens_http_request_duration_seconds_bucket" in text
    models = c.get("/api/v1/models").json()
    assert any(m["name"] == "efficientnet-lite0" for m in models)
    assert c.get("/docs").status_code == 200
    assert "/api/v1/search" in c.get("/openapi.json").json()["paths"]


def test_web_page_is_served(api):
    _cat, c = api
    page = c.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script type="module" src="/static/app.js">' in page.text
    js = c.get("/static/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert c.get("/static/../api/keys.py").status_code == 404


# ---------------------------------------------------------------------------------- catalog


def test_products_list_filter_paging(api):
    _cat, c = api
    page = c.get("/api/v1/products", params={"limit": 5}).json()
    assert page["total"] == N and len(page["items"]) == 5 and page["items"][0]["cover"]
    page2 = c.get("/api/v1/products", params={"limit": 5, "offset": 10}).json()
    assert len(page2["items"]) == N - 10
    red = c.get("/api/v1/products", params={"where": "colour = 'red' and kind = 'shirt'"}).json()
    assert red["total"] == 3 and all(p["attrs"]["colour"] == "red" for p in red["items"])
    q = c.get("/api/v1/products", params={"q": "product 1"}).json()
    assert {p["id"] for p in q["items"]} == {"P1", "P10", "P11"}
    facets = c.get("/api/v1/facets").json()
    assert {f["value"] for f in facets["colour"]} == {"red", "blue"}
    _err(c.get("/api/v1/products", params={"where": "colour = "}), 400, "bad-filter")
    _err(c.get("/api/v1/products", params={"limit": 0}), 422, "invalid")
    _err(c.get("/api/v1/products", params={"sort": "drop table"}), 422)


def test_product_read_update_delete(api):
    cat, c = api
    p = c.get("/api/v1/products/P3").json()
    assert p["title"] == "Product 3" and len(p["images"]) == 1
    sha = p["images"][0]["sha256"]
    _err(c.patch("/api/v1/products/P3", json={"title": "x"}), 401, "unauthorized")
    _err(c.patch("/api/v1/products/P3", json={"title": "x"}, headers=_key(cat, "read")), 403, "forbidden")
    w = _key(cat, "write")
    r = c.patch(
        "/api/v1/products/P3", json={"title": "Renamed", "attrs": {"colour": None, "size": "M"}}, headers=w
    )
    assert r.status_code == 200, r.text
    assert r.json()["title"] == "Renamed" and r.json()["attrs"] == {"kind": "shirt", "size": "M"}
    _err(c.patch("/api/v1/products/P3", json={"bogus": 1}, headers=w), 422)
    _err(
        c.patch(
            "/api/v1/products/P3", content=b"{not json", headers=w | {"content-type": "application/json"}
        ),
        422,
    )
    _err(c.patch("/api/v1/products/NOPE", json={"title": "x"}, headers=w), 404, "not-found")
    sha4 = c.get("/api/v1/products/P4").json()["images"][0]["sha256"]
    assert c.delete(f"/api/v1/images/{sha4}", headers=w).status_code == 204
    _err(c.get(f"/api/v1/images/{sha4}"), 404)
    assert c.get("/api/v1/products/P4").json()["images"] == []
    assert c.delete("/api/v1/products/P3", headers=w).status_code == 204
    _err(c.get("/api/v1/products/P3"), 404)
    _err(c.get(f"/api/v1/images/{sha}"), 404)  # no other product shows it: deleted with the product
    _err(c.delete(f"/api/v1/images/{sha}", headers=w), 404)


def test_image_files_and_thumbnails(api):
    cat, c = api
    sha = c.get("/api/v1/products/P0").json()["images"][0]["sha256"]
    f = c.get(f"/api/v1/images/{sha}/file")
    assert f.status_code == 200 and f.headers["content-type"] == "image/png"
    assert f.headers["x-content-type-options"] == "nosniff"
    assert Image.open(io.BytesIO(f.content)).size == (120, 160)
    t = c.get(f"/api/v1/images/{sha}/thumb", params={"size": 64})
    assert t.status_code == 200 and t.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(t.content)).size) == 64
    assert (cat.settings.home / "thumbs" / "64" / sha[:2] / f"{sha}.jpg").is_file()  # cached
    _err(c.get(f"/api/v1/images/{sha}/thumb", params={"size": 100}), 400)
    for bad in ("../../etc/passwd", "..%2F..%2Fcatalog.db", "0" * 64, "ZZ" * 32):
        r = c.get(f"/api/v1/images/{bad}/file")
        assert r.status_code == 404, (bad, r.status_code)
        assert r.headers["content-type"] == "application/json"


# ---------------------------------------------------------------------------------- keys


def test_keys_roles_and_revocation(api):
    cat, c = api
    admin = _key(cat, "admin")
    _err(c.get("/api/v1/keys"), 401)
    _err(c.get("/api/v1/keys", headers=_key(cat, "write")), 403)
    created = c.post("/api/v1/keys", json={"role": "write", "name": "shop"}, headers=admin)
    assert created.status_code == 201
    key = created.json()["key"]
    listed = c.get("/api/v1/keys", headers=admin).json()
    assert all("key" not in k for k in listed) and any(k["name"] == "shop" for k in listed)
    # the database holds only a hash
    with cat.db.session() as s:
        from sqlalchemy import text

        stored = [r[0] for r in s.execute(text("SELECT key_sha256 FROM api_keys"))]
    assert key not in stored and all(len(h) == 64 for h in stored)
    assert c.post("/api/v1/events", json={"events": [{"user_id": "u", "product_id": "P1", "event": "view"}]},
                  headers={"X-API-Key": key}).status_code == 200  # fmt: skip
    assert c.delete(f"/api/v1/keys/{created.json()['id']}", headers=admin).status_code == 200
    _err(c.get("/api/v1/products", headers={"Authorization": f"Bearer {key}"}), 401, "unauthorized")
    _err(c.get("/api/v1/products", headers={"Authorization": "Bearer clk_nope_nope"}), 401)
    _err(c.get("/api/v1/products", headers={"Authorization": "Basic abc"}), 401)
    _err(c.post("/api/v1/keys", json={"role": "root"}, headers=admin), 422)


def test_closed_reads_and_rate_limit(home: Path, fake_encoder: object):
    # one token a minute: slow requests on a loaded machine must not refill the bucket mid-test
    cat, c = _build(home, fake_encoder, open_reads=False, rate_per_minute=1, burst=3)
    try:
        _err(c.get("/api/v1/products"), 401)
        assert c.get("/health").status_code == 200  # operations stay open
        r = _key(cat, "read")
        codes = [c.get("/api/v1/products", headers=r).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        err = c.get("/api/v1/products", headers=r)
        _err(err, 429, "rate-limited")
        assert int(err.headers["retry-after"]) >= 1
        assert c.get("/api/v1/products", headers=_key(cat, "read")).status_code == 200  # per key
    finally:
        c.close()
        cat.close()


def test_cors_configurable(home: Path, fake_encoder: object):
    cat, c = _build(home, fake_encoder, cors_origins=("https://shop.example",))
    try:
        r = c.options(
            "/api/v1/products",
            headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"},
        )
        assert r.headers.get("access-control-allow-origin") == "https://shop.example"
        r = c.get("/api/v1/products", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    finally:
        c.close()
        cat.close()


# ---------------------------------------------------------------------------------- ingest


def test_ingest_upload_job(api):
    cat, c = api
    w = _key(cat, "write")
    files = [("files", (f"new{i}.png", _png(100 + i), "image/png")) for i in range(3)]
    r = c.post(
        "/api/v1/ingest/upload", files=files, data={"attrs": json.dumps({"colour": "green"})}, headers=w
    )
    assert r.status_code == 202, r.text
    job = _wait(c, r.json()["id"])
    assert job["status"] == "done" and job["report"]["new_images"] == 3 and job["done"] == 3
    assert job["products"] == r.json()["products"] and len(set(job["products"])) == 3
    p = c.get(f"/api/v1/products/{job['products'][1]}").json()
    assert p["attrs"]["colour"] == "green" and len(p["images"]) == 1
    # one product with several images; and an upload needs a key
    r = c.post(
        "/api/v1/ingest/upload", files=files[:2], data={"product_id": "SET", "title": "Set"}, headers=w
    )
    _wait(c, r.json()["id"])
    assert len(c.get("/api/v1/products/SET").json()["images"]) == 2
    _err(c.post("/api/v1/ingest/upload", files=files[:1]), 401)
    assert any(j["id"] == job["id"] for j in c.get("/api/v1/jobs").json())
    _err(c.get("/api/v1/jobs/nope"), 404)
    _err(c.post(f"/api/v1/jobs/{job['id']}/cancel", headers=w), 400)


def test_uploads_without_a_product_id_never_merge(api):
    """Two phones upload a different ``IMG_0001.jpg`` each, with no product id: two products with
    fresh ids (not the file name); the second neither joins nor retitles the first. Files join a
    product only when the caller names it."""
    cat, c = api
    w = _key(cat, "write")
    ids = []
    for seed, colour in [(501, "red"), (502, "blue")]:
        r = c.post(
            "/api/v1/ingest/upload",
            files=[("files", ("IMG_0001.jpg", _png(seed), "image/png"))],
            data={"title": f"{colour} phone", "attrs": json.dumps({"colour": colour})},
            headers=w,
        )
        job = _wait(c, r.json()["id"])
        assert job["status"] == "done" and job["report"]["new_images"] == 1, job
        ids.append(job.get("products"))
    phones = c.get("/api/v1/products", params={"q": "phone"}).json()["items"]
    assert sorted(p["title"] for p in phones) == ["blue phone", "red phone"]  # two products, untouched
    ids = [pid for (pid,) in ids]
    assert ids[0] != ids[1] and not any("IMG_0001" in i for i in ids)
    _err(c.get("/api/v1/products/IMG_0001"), 404)
    first, second = (c.get(f"/api/v1/products/{i}").json() for i in ids)
    assert (first["title"], first["attrs"]["colour"], len(first["images"])) == ("red phone", "red", 1)
    assert (second["title"], second["attrs"]["colour"], len(second["images"])) == ("blue phone", "blue", 1)
    # naming the product adds to it
    r = c.post(
        "/api/v1/ingest/upload",
        files=[("files", ("IMG_0002.jpg", _png(503), "image/png"))],
        data={"product_id": ids[0]},
        headers=w,
    )
    assert _wait(c, r.json()["id"])["products"] == [ids[0]]
    assert len(c.get(f"/api/v1/products/{ids[0]}").json()["images"]) == 2


def _upload_dirs(cat: ServiceCatalog) -> list[Path]:
    root = cat.settings.home / "uploads"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []


def _incoming(cat: ServiceCatalog) -> list[Path]:
    d = cat.settings.home / "uploads" / ".incoming"
    return sorted(d.iterdir()) if d.is_dir() else []


def test_uploads_that_back_no_image_are_removed(api):
    """Duplicate, refused and failed uploads leave no file behind; the files of stored images stay."""
    cat, c = api
    w = _key(cat, "write")
    files = [("files", ("a.png", _png(601), "image/png"))]
    assert _wait(c, c.post("/api/v1/ingest/upload", files=files, headers=w).json()["id"])["status"] == "done"
    kept = _upload_dirs(cat)
    assert len(kept) == 1
    dup = c.post("/api/v1/ingest/upload", files=files, headers=w).json()
    assert _wait(c, dup["id"])["report"]["new_images"] == 0
    assert _upload_dirs(cat) == kept  # the duplicate's folder is gone, the first one stays
    bad = [
        ("files", ("ok.png", _png(602), "image/png")),
        ("files", ("bad.png", b"not an image", "image/png")),
    ]
    _err(c.post("/api/v1/ingest/upload", files=bad, headers=w), 415)
    assert _upload_dirs(cat) == kept and _incoming(cat) == []
    for route in ("/api/v1/search", "/api/v1/dedup/check", "/api/v1/qc"):
        r = c.post(route, files={"file": ("q.png", _png(603), "image/png")}, headers=w)
        assert r.status_code == 200, (route, r.text)
    assert _incoming(cat) == []  # query images are removed after the request
    # an old leftover (a crash between staging and the job) is swept; a young one is not
    orphan = cat.settings.home / "uploads" / "deadbeef"
    orphan.mkdir()
    (orphan / "0000_x.png").write_bytes(_png(604))
    assert cat.sweep_uploads() == []
    assert cat.sweep_uploads(min_age_s=0) == [str(orphan)]
    assert _upload_dirs(cat) == kept and c.get(f"/api/v1/images/{_sha_of(c, 601)}/file").status_code == 200


def _sha_of(c: TestClient, seed: int) -> str:
    import hashlib

    return hashlib.sha256(_png(seed)).hexdigest()


def test_job_cancellation_keeps_whole_batches(api, monkeypatch):
    cat, c = api
    w = _key(cat, "write")
    import threading

    gate = threading.Event()
    real = cat.ingest

    def slow_ingest(*a, **kw):
        gate.wait(10)
        return real(*a, **kw)

    monkeypatch.setattr(cat, "ingest", slow_ingest)
    files = [("files", (f"c{i}.png", _png(300 + i), "image/png")) for i in range(2)]
    first = c.post("/api/v1/ingest/upload", files=files, headers=w).json()
    second = c.post("/api/v1/ingest/upload", files=files, headers=w).json()
    assert c.get(f"/api/v1/jobs/{second['id']}").json()["status"] == "queued"
    assert c.post(f"/api/v1/jobs/{second['id']}/cancel", headers=w).json()["status"] == "cancelled"
    gate.set()
    assert _wait(c, first["id"])["status"] == "done"
    assert _wait(c, second["id"])["status"] == "cancelled"
    # the cancelled upload's folder is gone once the worker has dequeued the job (a queued job reads
    # "cancelled" at once; its folder is released when the worker reaches it, after the first job)
    deadline = time.monotonic() + 10
    while len(_upload_dirs(cat)) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_upload_dirs(cat)) == 1


def test_bad_uploads_are_4xx(home: Path, fake_encoder: object):
    cat, c = _build(home, fake_encoder, max_upload_bytes=200_000)
    w = _key(cat, "write")
    try:
        cases = [
            (("a.png", b"hello, I am text", "image/png"), 415, "not-an-image"),
            (("a.png", b"", "image/png"), None, None),
            (("big.png", b"\x89PNG" + b"0" * 300_000, "image/png"), 413, "too-large"),
            (("trunc.png", _png(1)[:30], "image/png"), None, None),
        ]
        for file, status, code in cases:
            for url in ("/api/v1/ingest/upload", "/api/v1/search"):
                field = "files" if "ingest" in url else "file"
                r = c.post(url, files={field: file}, headers=w)
                assert 400 <= r.status_code < 500, (url, file[0], r.status_code, r.text)
                if status:
                    _err(r, status, code)
        # a decompression bomb: a small PNG header claiming a huge image
        bomb = io.BytesIO()
        Image.new("1", (20000, 20000)).save(bomb, format="PNG")
        _err(c.post("/api/v1/search", files={"file": ("bomb.png", bomb.getvalue(), "image/png")}), 413)
        # a body far over the limit is refused before it is read
        r = c.post("/api/v1/search", files={"file": ("x.png", b"0" * 2_000_000, "image/png")})
        _err(r, 413, "too-large")
        # the server keeps serving
        assert c.get("/api/v1/products").status_code == 200
    finally:
        c.close()
        cat.close()


def test_ingest_urls_private_address_refused(api):
    cat, c = api
    w = _key(cat, "write")
    for url in (
        "http://127.0.0.1/a.jpg",
        "http://10.0.0.8/b.png",
        "http://[::1]/c.jpg",
        "http://169.254.169.254/x",
    ):
        _err(c.post("/api/v1/ingest/urls", json={"items": [{"url": url}]}, headers=w), 400, "blocked-address")
    _err(c.post("/api/v1/ingest/urls", json={"items": [{"url": "file:///etc/passwd"}]}, headers=w), 400)
    _err(c.post("/api/v1/ingest/urls", json={"items": []}, headers=w), 422)
    _err(c.post("/api/v1/ingest/urls", content=b"[", headers=w | {"content-type": "application/json"}), 422)


def test_ingest_manifest_rules(api):
    cat, c = api
    w, a = _key(cat, "write"), _key(cat, "admin")
    local = b"image,id\n/etc/hosts,X\n"
    r = c.post("/api/v1/ingest/manifest", files={"manifest": ("m.csv", local, "text/csv")}, headers=w)
    _err(r, 422, "bad-manifest")
    private = b"image,id\nhttp://127.0.0.1/a.jpg,X\n"
    r = c.post("/api/v1/ingest/manifest", files={"manifest": ("m.csv", private, "text/csv")}, headers=w)
    _err(r, 400, "blocked-address")
    r = c.post("/api/v1/ingest/manifest", files={"manifest": ("m.exe", b"x", "text/plain")}, headers=w)
    _err(r, 422, "bad-manifest")
    # an admin may reference local files; a non-image is then a per-item failure in the job report
    r = c.post("/api/v1/ingest/manifest", files={"manifest": ("m.csv", local, "text/csv")}, headers=a)
    assert r.status_code == 202
    job = _wait(c, r.json()["id"])
    assert job["status"] == "done" and job["report"]["failed"] == 1


# ---------------------------------------------------------------------------------- tasks


def test_search_by_id_upload_and_paging(api):
    cat, c = api
    r = c.get("/api/v1/search", params={"product_id": "P2", "limit": 4})
    assert r.status_code == 200, r.text
    page = r.json()
    assert len(page["results"]) == 4 and page["has_more"]
    assert all(x["product_id"] != "P2" for x in page["results"])
    scores = [x["score"] for x in page["results"]]
    assert scores == sorted(scores, reverse=True)
    nxt = c.get("/api/v1/search", params={"product_id": "P2", "limit": 4, "offset": 4}).json()
    assert not {x["product_id"] for x in nxt["results"]} & {x["product_id"] for x in page["results"]}
    filt = c.get("/api/v1/search", params={"product_id": "P2", "where": "kind = 'shoe'"}).json()
    assert filt["results"] and all(x["attrs"]["kind"] == "shoe" for x in filt["results"])
    # an upload of a cataloged photo finds its own product first
    sha5 = c.get("/api/v1/products/P5").json()["images"][0]["sha256"]
    data = c.get(f"/api/v1/images/{sha5}/file").content
    up = c.post("/api/v1/search", files={"file": ("q.png", data, "image/png")}, data={"limit": "3"})
    assert up.status_code == 200, up.text
    assert up.json()["results"][0]["product_id"] == "P5"
    # and a new photo is embedded on the fly
    new = c.post("/api/v1/search", files={"file": ("n.png", _png(77), "image/png")})
    assert new.status_code == 200 and new.json()["results"]
    _err(c.get("/api/v1/search", params={"product_id": "NOPE"}), 404)
    _err(c.get("/api/v1/search"), 400)
    _err(c.get("/api/v1/search", params={"product_id": "P1", "where": "kind = = 1"}), 400, "bad-filter")
    _err(c.get("/api/v1/search", params={"product_id": "P1", "offset": 990, "limit": 50}), 400)


def test_dedup_check_of_upload(api):
    _cat, c = api
    sha = c.get("/api/v1/products/P4").json()["images"][0]["sha256"]
    data = c.get(f"/api/v1/images/{sha}/file").content
    r = c.post("/api/v1/dedup/check", files={"file": ("dup.png", data, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["duplicate"] is True and body["query"] == "dup.png"
    assert any(m["image_sha256"] == sha for m in body["matches"])


def test_events_and_recommend(api):
    cat, c = api
    w = _key(cat, "write")
    _err(c.post("/api/v1/recommend", json={"user": "u1"}), 503, "recommend-not-ready")  # nothing fitted yet
    assert "503" in c.get("/openapi.json").json()["paths"]["/api/v1/recommend"]["post"]["responses"]  # documented
    assert c.post("/api/v1/recommend/refit", headers=w).status_code == 202
    assert cat.refits.wait_idle()
    _err(c.post("/api/v1/recommend", json={"user": "u1"}), 409, "no-events")
    events = [
        {"user_id": "u1", "product_id": f"P{i}", "event": "view", "timestamp": f"2024-05-0{i + 1}T10:00:00Z"}
        for i in range(4)
    ]
    events.append({"user_id": "u1", "product_id": "P1", "event": "teleport"})
    r = c.post("/api/v1/events", json={"events": events}, headers=w)
    assert r.status_code == 200
    assert r.json()["inserted"] == 4 and len(r.json()["errors"]) == 1 and r.json()["errors"][0]["index"] == 4
    again = c.post("/api/v1/events", json={"events": events[:2]}, headers=w).json()
    assert again["duplicates"] == 2
    assert cat.refits.wait_idle()  # the events' refit runs in the background
    rec = c.post("/api/v1/recommend", json={"products": ["P1"], "k": 3})
    assert rec.status_code == 200, rec.text
    assert len(rec.json()["items"]) == 3 and all(i["reason"] for i in rec.json()["items"])
    assert c.post("/api/v1/recommend", json={"user": "u1", "k": 3}).status_code == 200
    _err(c.post("/api/v1/recommend", json={"user": "u1", "products": ["P1"]}), 400)
    _err(c.post("/api/v1/recommend", json={"products": ["P1"], "k": 0}), 422)
    _err(c.post("/api/v1/events", json={"events": [{"user_id": "u", "product_id": "P1", "event": "x"}]},
                headers=w), 422)  # fmt: skip


def test_readers_never_fit_recommendations(api, monkeypatch):
    """Fits run in the background, once per change; readers (anonymous or not) only use the
    published engine, never start a fit, and a read key cannot ask for one."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from catalens.recommend.engine import RecommendEngine

    cat, c = api
    w = _key(cat, "write")
    fits: list[str] = []
    real = RecommendEngine.fit_all

    def counting(self):  # type: ignore[no-untyped-def]
        fits.append(threading.current_thread().name)
        return real(self)

    monkeypatch.setattr(RecommendEngine, "fit_all", counting)
    _err(c.post("/api/v1/recommend", json={"products": ["P1"], "k": 3}), 503, "recommend-not-ready")
    assert fits == []
    views = [{"user_id": f"u{i % 3}", "product_id": f"P{i % N}", "event": "view"} for i in range(12)]
    assert c.post("/api/v1/events", json={"events": views}, headers=w).status_code == 200
    assert cat.refits.wait_idle() and fits == ["catalens-refit"]

    def read(i: int) -> int:
        body = {"products": ["P1"], "k": 3} if i % 2 else {"user": "u1", "k": 3}
        return c.post("/api/v1/recommend", json=body).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(read, range(24))) == {200}
    assert fits == ["catalens-refit"]  # 24 reads, no fit
    more = [{"user_id": f"v{i}", "product_id": f"P{i % N}", "event": "cart"} for i in range(12)]
    assert c.post("/api/v1/events", json={"events": more}, headers=w).status_code == 200
    assert cat.refits.wait_idle() and fits == ["catalens-refit"] * 2  # one fit for the change
    _err(c.post("/api/v1/recommend/refit", headers=_key(cat, "read")), 403)
    _err(c.post("/api/v1/recommend/refit"), 401)


def test_recommendations_stay_up_while_a_catalog_change_refits(api, monkeypatch):
    """A product deleted (the item space changed): until the refit publishes, readers get the last
    engine, marked stale, without the deleted product - not a 503. A basket naming a product the last
    engine never saw is "not ready" (503), not "unknown" (404)."""
    import threading

    from catalens.recommend.engine import RecommendEngine

    cat, c = api
    w = _key(cat, "write")
    views = [{"user_id": f"u{i % 3}", "product_id": f"P{i % N}", "event": "view"} for i in range(12)]
    assert c.post("/api/v1/events", json={"events": views}, headers=w).status_code == 200
    assert cat.refits.wait_idle()
    before = c.post("/api/v1/recommend", json={"products": ["P1"], "k": N}).json()
    assert before["stale"] is False
    gone = before["items"][0]["product_id"]

    release = threading.Event()
    real = RecommendEngine.fit_all

    def held(self):  # type: ignore[no-untyped-def]
        assert release.wait(30)
        return real(self)

    monkeypatch.setattr(RecommendEngine, "fit_all", held)
    assert c.delete(f"/api/v1/products/{gone}", headers=w).status_code == 204  # schedules a refit
    for body in ({"products": ["P1"], "k": N}, {"user": "u1", "k": N}):
        r = c.post("/api/v1/recommend", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["stale"] is True
        assert gone not in {i["product_id"] for i in r.json()["items"]} and r.json()["items"]
    (home := cat.settings.home.parent / "more").mkdir()
    from tests.conftest import make_product_image

    make_product_image(home / "new.png", 77)
    (home / "m.csv").write_text("image,id\nnew.png,NEW\n")
    cat.ingest(home / "m.csv", id_col="id")
    _err(c.post("/api/v1/recommend", json={"products": ["NEW"], "k": 3}), 503, "recommend-not-ready")
    _err(c.post("/api/v1/recommend", json={"products": ["NOPE"], "k": 3}), 404, "not-found")
    release.set()
    cat.recommend_changed()
    assert cat.refits.wait_idle()
    after = c.post("/api/v1/recommend", json={"products": ["NEW"], "k": 3})
    assert after.status_code == 200 and after.json()["stale"] is False, after.text


def test_classify_quality_explain_refuse_bad_input(api):
    _cat, c = api
    feats = c.get("/api/v1/features").json()["features"]
    png = _png(5)
    assert {"quality", "classify", "explain"} <= set(feats), feats  # the dev install serves all three
    r = c.post(
        "/api/v1/qc", files={"file": ("q.png", png, "image/png")}, data={"profile": "../../etc/passwd"}
    )
    _err(r, 422, "invalid")  # a profile is a name, never a server path
    _err(c.post("/api/v1/qc", files={"file": ("q.png", b"text", "image/png")}), 415, "not-an-image")
    r = c.post("/api/v1/classify", files={"file": ("q.png", png, "image/png")}, data={"classifier": "nope"})
    _err(r, 404, "not-found")
    _err(c.post("/api/v1/classify", files={"file": ("q.png", b"\x00" * 10, "image/png")}), 415)
    _err(c.get(f"/api/v1/images/{'0' * 64}/explain.png"), 404, "not-found")
    _err(c.get("/api/v1/images/abc/explain.png"), 404)
