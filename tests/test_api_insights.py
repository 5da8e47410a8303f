"""Routes behind the web page's product and quality views: tags, colours, quality, badges, dashboard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("catalog_backend")  # each test on SQLite and on PostgreSQL

pytest.importorskip("fastapi")

from catalens.quality.result import worst  # noqa: E402
from tests.test_api import _build, _err, _png  # noqa: E402


@pytest.fixture
def api(home: Path, fake_encoder: object):
    cat, client = _build(home, fake_encoder)
    yield cat, client
    client.close()
    cat.close()


def _sha(c, pid: str) -> str:
    return c.get(f"/api/v1/products/{pid}").json()["images"][0]["sha256"]


def test_tags_from_stored_embeddings(api, monkeypatch):
    cat, c = api
    # a trained classifier on the catalog's own attributes (FakeEncoder embeddings)
    cat.train_classifier("kinds", ["kind"], method="prototype")
    sha = _sha(c, "P8")
    r = c.get(f"/api/v1/images/{sha}/tags", params={"classifier": "kinds"})
    assert r.status_code == 200, r.text
    (entry,) = r.json()["classifiers"]
    kind = entry["fields"]["kind"]
    assert kind["label"] in {"shirt", "shoe"} and 0.0 <= kind["prob"] <= 1.0
    assert [t["label"] for t in kind["top_k"]][0] == kind["label"]
    assert abs(sum(t["prob"] for t in kind["top_k"]) - 1.0) < 1e-3  # two classes: top-2 is everything
    # the same numbers as the Python API on the stored file
    path, _ = cat.image_file(sha)
    ref = cat.classify([path], "kinds")[0].fields["kind"]
    assert ref.label == kind["label"] and np.isclose(ref.prob, kind["prob"], atol=0.02)
    # badges for a grid: the newest trained classifier's top label per field
    shas = [_sha(c, f"P{i}") for i in range(4)]
    b = c.post("/api/v1/images/badges", json={"shas": shas}).json()
    assert b["classifier"] == "kinds" and set(b["images"]) == set(shas)
    assert all(v["tags"] and v["tags"][0]["field"] == "kind" for v in b["images"].values())
    _err(c.get(f"/api/v1/images/{sha}/tags", params={"classifier": "../x"}), 422)
    _err(c.get(f"/api/v1/images/{'f' * 64}/tags"), 404, "not-found")
    _err(c.post("/api/v1/images/badges", json={"shas": ["nothex"]}), 422)


def test_colours_and_quality_of_a_cataloged_image(api):
    cat, c = api
    sha = _sha(c, "P2")
    col = c.get(f"/api/v1/images/{sha}/colours")
    assert col.status_code == 200, col.text
    body = col.json()
    assert body["colours"] and abs(sum(x["percent"] for x in body["colours"]) - 100) < 1.5
    assert c.get(f"/api/v1/images/{sha}/colours").json() == body  # cached, same answer
    assert c.get(f"/api/v1/images/{sha}/quality").json()["profiles"] == []  # nothing stored yet
    q = c.get(f"/api/v1/images/{sha}/quality", params={"profile": "general"})
    assert q.status_code == 200, q.text
    (entry,) = q.json()["profiles"]
    assert entry["stored"] is False and entry["profile"] == "general"
    assert {"blur", "resolution", "overexposed"} <= {r["check"] for r in entry["results"]}, entry
    assert all(r["reason"] for r in entry["results"])
    assert entry["verdict"] == worst([r["verdict"] for r in entry["results"]]) != "error", entry
    _err(c.get(f"/api/v1/images/{sha}/quality", params={"profile": "../../etc/passwd"}), 422)


def test_quality_dashboard_over_stored_results(api, tmp_path):
    cat, c = api
    empty = c.get("/api/v1/qc/summary").json()
    assert empty["images"] == 0 and "general" in empty["available_profiles"]
    # a tiny 40x40 image fails the resolution check, so the dashboard has something to rank
    from PIL import Image

    small = tmp_path / "tiny.png"
    Image.new("RGB", (40, 40), (200, 30, 30)).save(small)
    cat.ingest([small], embed=True)
    report = cat.qc(all_images=True, profile="general")
    n = len(report.images)
    s = c.get("/api/v1/qc/summary", params={"worst": 5}).json()
    assert s["profile"] == "general" and s["images"] == n
    assert sum(s["verdicts"].values()) == n
    assert s["profiles"] == [{"name": "general", "images": n}]
    counts = {row["check"]: row["fail"] + row["warn"] for row in s["by_issue"]}
    assert counts.get("resolution", 0) >= 1
    worst = s["worst"]
    assert worst and len(worst) <= 5 and worst[0]["verdict"] == "fail"
    assert all(r["reason"] for w in worst for r in w["reasons"])
    fails = [sum(r["verdict"] == "fail" for r in w["reasons"]) for w in worst]
    assert fails == sorted(fails, reverse=True)
    tiny = next(w for w in worst if any(r["check"] == "resolution" for r in w["reasons"]))
    # the stored result now answers for that image and shows as a badge
    q = c.get(f"/api/v1/images/{tiny['sha256']}/quality").json()["profiles"]
    assert q[0]["stored"] is True and "resolution" in q[0]["issues"]
    b = c.post("/api/v1/images/badges", json={"shas": [tiny["sha256"]]}).json()
    assert b["images"][tiny["sha256"]]["quality"]["verdict"] == q[0]["verdict"]
    _err(c.get("/api/v1/qc/summary", params={"worst": -1}), 422)


def test_classify_upload_keeps_the_classifier_loaded(api):
    cat, c = api
    cat.train_classifier("kinds", ["kind"], method="prototype")
    r1 = c.post(
        "/api/v1/classify", files={"file": ("a.png", _png(3), "image/png")}, data={"classifier": "kinds"}
    )
    assert r1.status_code == 200, r1.text
    assert r1.json()["source"] == "a.png" and "kind" in r1.json()["fields"]
    assert any(k[0] == "kinds" for k in cat.__dict__["_insight_caches"]["clf"])


def test_tags_of_a_classifier_with_colour_features(api):
    """A linear classifier of a colour field takes the colour descriptor too (image+colour): the web
    page's tags and badges score it from the stored embedding and the image's stored descriptor."""
    cat, c = api
    clf = cat.train_classifier("cols", ["colour", "kind"], holdout=0)
    assert clf.input == "image+colour"
    sha = _sha(c, "P3")
    r = c.get(f"/api/v1/images/{sha}/tags", params={"classifier": "cols"})
    assert r.status_code == 200, r.text
    (entry,) = r.json()["classifiers"]
    assert "note" not in entry and set(entry["fields"]) == {"colour", "kind"}
    path, _ = cat.image_file(sha)
    ref = cat.classify([path], "cols")[0].fields["colour"]
    assert ref.label == entry["fields"]["colour"]["label"]
    assert np.isclose(ref.prob, entry["fields"]["colour"]["prob"], atol=0.02)
    b = c.post("/api/v1/images/badges", json={"shas": [sha]}).json()
    assert b["classifier"] == "cols" and {t["field"] for t in b["images"][sha]["tags"]} == {"colour", "kind"}
