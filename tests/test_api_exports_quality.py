"""Issue 23 items 3 and 6 (API): the export route (the rows of ``catalens export``), the Quality
page's paging and accepted exceptions (a dismissed false positive is stored and respected by later
runs), and the catalog's duplicate groups."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from catalens.api.app import create_app  # noqa: E402
from catalens.api.service_catalog import ServiceCatalog  # noqa: E402
from catalens.config import load_settings  # noqa: E402
from catalens.exports import COLUMNS  # noqa: E402
from tests.conftest import make_product_image  # noqa: E402


@pytest.fixture
def served(home: Path, fake_encoder: object):  # type: ignore[no-untyped-def]
    folder = home.parent / "shots"
    rows = ["image,id,title,colour"]
    for i in range(6):
        make_product_image(folder / f"p{i}.png", i)
        rows.append(f"p{i}.png,P{i},Product {i},red")
    # a resized, re-compressed copy of p2 under another product: one duplicate group
    Image.open(folder / "p2.png").resize((100, 133)).save(folder / "copy.jpg", quality=85)
    rows.append("copy.jpg,C2,Copy of 2,red")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    cat = ServiceCatalog(load_settings(home, default_model="fake-encoder"))
    cat.ingest(folder / "labels.csv", id_col="id", text_col="title")
    cat.qc(all_images=True, profile="general")
    key, _ = cat.create_key("write", "t")
    with TestClient(create_app(catalog=cat)) as c:
        yield cat, c, {"Authorization": f"Bearer {key}"}
    cat.close()


def test_export_route_matches_the_cli_rows(served) -> None:  # type: ignore[no-untyped-def]
    cat, c, _ = served
    resp = c.get("/api/v1/export/qc", params={"format": "csv", "profile": "general"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    assert 'filename="catalens-qc.csv"' in resp.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(resp.text)))
    assert tuple(table[0]) == COLUMNS["qc"] and len(table) == 1 + 7
    assert int(resp.headers["x-row-count"]) == 7
    lines = c.get("/api/v1/export/qc", params={"format": "jsonl", "verdict": "fail"}).text.splitlines()
    assert len(lines) == 7 and all(json.loads(x)["verdict"] == "fail" for x in lines)
    # the same rows as catalens.exports
    from catalens.exports import export_rows

    assert sorted(json.loads(x)["image_sha256"] for x in lines) == sorted(
        r["image_sha256"] for r in export_rows(cat, "qc", verdict="fail")
    )
    dedup = c.get("/api/v1/export/dedup", params={"format": "jsonl"}).text.splitlines()
    assert {tuple(json.loads(x)["product_ids"]) for x in dedup} == {("P2",), ("C2",)}
    pq = pytest.importorskip("pyarrow.parquet")
    raw = c.get("/api/v1/export/qc", params={"format": "parquet"})
    assert raw.status_code == 200
    assert pq.read_table(io.BytesIO(raw.content)).num_rows == 7
    # an option of another kind, or an unknown kind, is refused
    wrong = c.get("/api/v1/export/qc", params={"classifier": "x"})
    assert wrong.status_code == 422 and "profile, verdict" in wrong.json()["error"]["message"]
    assert c.get("/api/v1/export/nothing").status_code == 422


def test_quality_summary_pages_and_filters(served) -> None:  # type: ignore[no-untyped-def]
    _, c, _ = served
    first = c.get("/api/v1/qc/summary", params={"worst": 3}).json()
    assert first["worst_total"] == 7 and len(first["worst"]) == 3 and first["offset"] == 0
    rest = c.get("/api/v1/qc/summary", params={"worst": 3, "offset": 6}).json()
    assert len(rest["worst"]) == 1
    pages = [c.get("/api/v1/qc/summary", params={"worst": 3, "offset": o}).json()["worst"] for o in (0, 3, 6)]
    assert len({w["sha256"] for p in pages for w in p}) == 7
    dup = c.get("/api/v1/qc/summary", params={"check": "duplicates"}).json()
    assert dup["worst_total"] == 1 and dup["worst"][0]["products"] == ["C2"]


def test_dismissed_false_positive_is_stored_and_respected(served) -> None:  # type: ignore[no-untyped-def]
    cat, c, auth = served
    sha = next(r["sha256"] for r in cat.qc_results() if r["source"].endswith("p0.png"))
    body = {"sha256": sha, "check": "overexposed", "note": "white studio background"}
    assert c.post("/api/v1/qc/exceptions", json=body).status_code == 401  # needs a write key
    assert c.post("/api/v1/qc/exceptions", json=body, headers=auth).status_code == 201
    assert (
        c.post("/api/v1/qc/exceptions", json=body | {"check": "resolution"}, headers=auth).status_code == 201
    )
    listed = c.get("/api/v1/qc/exceptions").json()
    assert {(x["sha256"], x["check"]) for x in listed} == {(sha, "overexposed"), (sha, "resolution")}

    def p0() -> dict:
        return next(r for r in c.get("/api/v1/qc/results").json() if r["sha256"] == sha)

    row = p0()
    assert (
        row["verdict"] == "pass"
        and row["issues"] == []
        and sorted(row["dismissed"]) == ["overexposed", "resolution"]
    )
    shown = {x["check"]: x for x in row["results"]}
    assert shown["overexposed"]["dismissed"] in ("warn", "fail") and shown["overexposed"]["verdict"] == "pass"
    summary = c.get("/api/v1/qc/summary").json()
    assert summary["worst_total"] == 6 and summary["dismissed"] == 2
    assert summary["verdicts"]["pass"] == 1
    # a later run stores fresh results: the dismissal still holds
    cat.qc(all_images=True, profile="general")
    assert p0()["verdict"] == "pass"
    exported = [
        json.loads(x) for x in c.get("/api/v1/export/qc", params={"format": "jsonl"}).text.splitlines()
    ]
    assert next(r for r in exported if r["image_sha256"] == sha)["verdict"] == "pass"
    # forgetting one dismissal makes that check count again
    assert c.delete(f"/api/v1/qc/exceptions/{sha}/resolution", headers=auth).status_code == 204
    assert c.delete(f"/api/v1/qc/exceptions/{sha}/resolution", headers=auth).status_code == 404
    row = p0()
    assert (
        row["verdict"] == "fail" and row["issues"] == ["resolution"] and row["dismissed"] == ["overexposed"]
    )
    assert c.post("/api/v1/qc/exceptions", json=body | {"sha256": "0" * 64}, headers=auth).status_code == 404


def test_duplicate_groups_route(served) -> None:  # type: ignore[no-untyped-def]
    _, c, _ = served
    page = c.get("/api/v1/dedup/groups").json()
    assert page["view"] == "duplicates" and page["total"] == 1
    group = page["groups"][0]
    assert group["group"] == 1 and sorted(p for im in group["images"] for p in im["product_ids"]) == [
        "C2",
        "P2",
    ]
    assert c.get("/api/v1/dedup/groups", params={"view": "variants"}).status_code == 200
    assert c.get("/api/v1/dedup/groups", params={"view": "nope"}).status_code == 422


def test_image_quality_and_badges_respect_dismissals(served) -> None:  # type: ignore[no-untyped-def]
    """The image page's verdicts (stored, or computed for a profile not run yet and cached) and the
    grid badges read a dismissed check as pass, as /qc/results does."""
    cat, c, auth = served
    sha = next(r["sha256"] for r in cat.qc_results() if r["source"].endswith("p1.png"))
    computed = "marketplace-main-image"
    first = c.get(f"/api/v1/images/{sha}/quality", params={"profile": computed}).json()["profiles"][0]
    assert first["stored"] is False and first["verdict"] != "pass"
    stored = c.get(f"/api/v1/images/{sha}/quality").json()["profiles"][0]
    for row in (first, stored):
        for x in row["results"]:
            if x["verdict"] in ("warn", "fail"):
                body = {"sha256": sha, "check": x["check"]}
                assert c.post("/api/v1/qc/exceptions", json=body, headers=auth).status_code == 201
    again = c.get(f"/api/v1/images/{sha}/quality", params={"profile": computed}).json()["profiles"][0]
    assert again["verdict"] == "pass" and again["issues"] == [] and again["dismissed"]
    assert all(x["verdict"] in ("pass", "error") for x in again["results"])
    stored = c.get(f"/api/v1/images/{sha}/quality").json()["profiles"][0]
    assert stored["verdict"] == "pass" and stored["dismissed"]
    assert cat.image_badges([sha])["images"][sha]["quality"]["verdict"] == "pass"
    # a name that is not a check is refused (the known ones are listed)
    bad = c.post("/api/v1/qc/exceptions", json={"sha256": sha, "check": "blurr"}, headers=auth)
    assert bad.status_code == 400 and "unknown check" in bad.json()["error"]["message"] and "known: " in bad.json()["error"]["message"]
