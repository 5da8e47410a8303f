"""Search stays consistent with catalog writes: deleted images and products are never returned,
edited titles and attributes show at once, and new ingests become searchable."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("catalog_backend")  # each test on SQLite and on PostgreSQL

pytest.importorskip("fastapi")

from catalens.api.service_catalog import ServiceCatalog  # noqa: E402
from catalens.config import load_settings  # noqa: E402
from tests.test_api import _build, _key, _png, _wait  # noqa: E402


def _ids(c, **params) -> list[str]:
    r = c.get("/api/v1/search", params={"limit": 50} | params)
    assert r.status_code == 200, r.text
    return [x["image_sha256"] for x in r.json()["results"]]


def test_deleted_image_is_never_returned(home: Path, fake_encoder: object) -> None:
    cat, c = _build(home, fake_encoder)
    try:
        w = _key(cat, "write")
        sha7 = c.get("/api/v1/products/P7").json()["images"][0]["sha256"]
        data = c.get(f"/api/v1/images/{sha7}/file").content
        assert sha7 in _ids(c, product_id="P2")  # the searcher is open and has it
        assert c.delete(f"/api/v1/images/{sha7}", headers=w).status_code == 204
        # by id, by upload of the very same bytes (no stored vector any more), by image, with a filter
        assert sha7 not in _ids(c, product_id="P2")
        assert sha7 not in _ids(c, product_id="P2", all_images="true")
        assert sha7 not in _ids(c, product_id="P2", where="kind = 'shoe'")
        up = c.post("/api/v1/search", files={"file": ("q.png", data, "image/png")}, data={"limit": "50"})
        assert up.status_code == 200 and sha7 not in [x["image_sha256"] for x in up.json()["results"]]
        r = c.get("/api/v1/search", params={"product_id": "P7"})
        assert r.status_code == 404  # its product has no image left
        # a fresh process (the index on disk still holds the row) agrees
        c.close()
        cat.close()
        cat = ServiceCatalog(load_settings(home, default_model="fake-encoder"))
        hits = cat.search_product("P2", 50, all_images=True)
        assert hits and sha7 not in {h.image_sha256 for h in hits}
    finally:
        c.close()
        cat.close()


def test_product_edits_and_deletes_show_in_search(home: Path, fake_encoder: object) -> None:
    cat, c = _build(home, fake_encoder)
    try:
        w = _key(cat, "write")
        first = c.get("/api/v1/search", params={"product_id": "P2", "limit": 50}).json()["results"]
        assert any(x["product_id"] == "P4" and x["title"] == "Product 4" for x in first)
        patch = {"title": "Renamed 4", "attrs": {"kind": "hat"}}
        assert c.patch("/api/v1/products/P4", json=patch, headers=w).status_code == 200
        res = c.get("/api/v1/search", params={"product_id": "P2", "limit": 50}).json()["results"]
        p4 = next(x for x in res if x["product_id"] == "P4")
        assert p4["title"] == "Renamed 4" and p4["attrs"]["kind"] == "hat"
        hats = c.get("/api/v1/search", params={"product_id": "P2", "where": "kind = 'hat'"}).json()
        assert [x["product_id"] for x in hats["results"]] == ["P4"]
        assert c.delete("/api/v1/products/P4", headers=w).status_code == 204
        res = c.get("/api/v1/search", params={"product_id": "P2", "limit": 50}).json()["results"]
        assert "P4" not in {x["product_id"] for x in res}
        assert c.get("/api/v1/search", params={"product_id": "P4"}).status_code == 404
    finally:
        c.close()
        cat.close()


def test_ingested_upload_becomes_searchable(home: Path, fake_encoder: object) -> None:
    cat, c = _build(home, fake_encoder)
    try:
        w = _key(cat, "write")
        assert _ids(c, product_id="P1")  # opens the searcher before the ingest
        r = c.post("/api/v1/ingest/upload", files=[("files", ("new.png", _png(91), "image/png"))], headers=w)
        assert r.status_code == 202, r.text
        job = _wait(c, r.json()["id"])
        assert job["status"] == "done"
        (new,) = job["products"]
        found = c.get("/api/v1/search", params={"product_id": new, "limit": 3})
        assert found.status_code == 200, found.text
        assert any(x["product_id"] == new for x in c.get(
            "/api/v1/search", params={"product_id": "P1", "limit": 50}
        ).json()["results"])  # fmt: skip
    finally:
        c.close()
        cat.close()


def test_search_by_id_from_memory_matches_the_database(home: Path, fake_encoder: object) -> None:
    """The event-loop fast path answers only from an open engine; its page equals the one the
    thread-pool path gives, field for field, and a title edit shows through it at once."""
    cat, c = _build(home, fake_encoder, search_inline=True)
    try:
        assert not cat.search_in_memory()  # no engine open yet: the first query runs in the pool
        slow = c.get("/api/v1/search", params={"product_id": "P3", "limit": 5}).json()
        assert cat.search_in_memory() and not cat.search_in_memory(where="kind = 'shoe'")
        fast = c.get("/api/v1/search", params={"product_id": "P3", "limit": 5}).json()
        assert fast == slow and len(fast["results"]) == 5
        hit = fast["results"][0]
        assert set(hit) == {
            "rank", "score", "product_id", "image_sha256", "image_source", "title", "attrs", "other_images",
        }  # fmt: skip
        assert hit["title"] == f"Product {hit['product_id'][1:]}" and hit["attrs"]["kind"] in {
            "shirt",
            "shoe",
        }
        c.get("/api/v1/search", params={"product_id": "P3", "where": "kind = 'shoe'"})
        assert cat.search_in_memory(where="kind = 'shoe'")
        w = _key(cat, "write")
        pid = hit["product_id"]
        assert c.patch(f"/api/v1/products/{pid}", json={"title": "Edited"}, headers=w).status_code == 200
        assert not cat.search_in_memory(where="kind = 'shoe'")  # filters are evaluated again
        again = c.get("/api/v1/search", params={"product_id": "P3", "limit": 5}).json()["results"]
        assert next(x for x in again if x["product_id"] == pid)["title"] == "Edited"
    finally:
        c.close()
        cat.close()


def test_rows_read_during_a_write_are_not_cached(home: Path, fake_encoder: object, monkeypatch) -> None:
    """A row read from the database while a write invalidates the cache may predate the write:
    it answers that one query but is not kept."""
    from catalens.search import engine as eng

    cat, c = _build(home, fake_encoder)
    try:
        s = cat.searcher()
        s._rows.clear()
        real = eng.result_metadata

        def racing(db, ids, shas):  # the write lands while the rows are being read
            out = real(db, ids, shas)
            s.refresh_metadata(["P5"])
            return out

        monkeypatch.setattr(eng, "result_metadata", racing)
        rows, _ = s._metadata(["P4", "P5"], [])
        assert rows["P4"][0] == "Product 4" and "P4" not in s._rows and "P5" not in s._rows
        monkeypatch.setattr(eng, "result_metadata", real)
        s._metadata(["P4"], [])
        assert s._rows["P4"][0] == "Product 4"  # cached when no write interleaves
    finally:
        c.close()
        cat.close()


def test_search_inline_off_uses_the_thread_pool(home: Path, fake_encoder: object) -> None:
    cat, c = _build(home, fake_encoder, search_inline=False)
    try:
        r = c.get("/api/v1/search", params={"product_id": "P3", "limit": 5})
        assert r.status_code == 200 and len(r.json()["results"]) == 5
        assert cat.searcher() is not None and not cat.search_in_memory()
    finally:
        c.close()
        cat.close()
