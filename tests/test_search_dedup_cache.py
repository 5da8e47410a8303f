"""The catalog's duplicate report is computed once per catalog state
(:mod:`catalens.search.dedup_cache`): later pages of ``GET /api/v1/dedup/groups`` reuse it, an image
added or removed computes it again, and concurrent requests never compute it twice at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from catalens.api.app import create_app  # noqa: E402
from catalens.api.service_catalog import ServiceCatalog  # noqa: E402
from catalens.api.settings import ApiSettings  # noqa: E402
from catalens.config import load_settings  # noqa: E402
from catalens.search import dedup  # noqa: E402
from catalens.search.dedup_cache import catalog_state, dedup_cache  # noqa: E402
from tests.conftest import make_product_image  # noqa: E402

pytestmark = pytest.mark.usefixtures("catalog_backend")  # on SQLite and on PostgreSQL


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Each computation of the whole catalog's report (the real one), with its start time."""
    real = dedup.find_duplicates
    seen: list[float] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        seen.append(time.perf_counter())
        return real(*args, **kwargs)

    monkeypatch.setattr(dedup, "find_duplicates", counted)
    return seen


@pytest.fixture
def served(home: Path, fake_encoder: object):  # type: ignore[no-untyped-def]
    folder = home.parent / "shots"
    rows = ["image,id"]
    for i in range(5):
        make_product_image(folder / f"p{i}.png", i)
        rows.append(f"p{i}.png,P{i}")
    Image.open(folder / "p2.png").resize((100, 133)).save(folder / "copy2.jpg", quality=85)
    rows.append("copy2.jpg,C2")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    # no background refresher: engines change only when the test says so
    cat = ServiceCatalog(load_settings(home, default_model="fake-encoder"), ApiSettings(refresh_s=0))
    cat.ingest(folder / "labels.csv", id_col="id")
    key, _ = cat.create_key("write", "t")
    with TestClient(create_app(catalog=cat, api_settings=cat.api_settings)) as c:
        yield cat, c, {"Authorization": f"Bearer {key}"}, folder
    cat.close()


def _pids(page: dict) -> list[list[str]]:
    return sorted(sorted(p for im in g["images"] for p in im["product_ids"]) for g in page["groups"])


def test_pages_reuse_one_report_until_images_change(served, calls: list[float]) -> None:  # type: ignore[no-untyped-def]
    cat, c, auth, folder = served
    first = c.get("/api/v1/dedup/groups").json()
    assert first["total"] == 1 and _pids(first) == [["C2", "P2"]] and len(calls) == 1
    # later requests - the same page, another page, the variant view - reuse the report
    assert c.get("/api/v1/dedup/groups").json() == first
    assert c.get("/api/v1/dedup/groups", params={"offset": 1, "limit": 5}).json()["groups"] == []
    assert c.get("/api/v1/dedup/groups", params={"view": "variants"}).status_code == 200
    assert len(calls) == 1 and dedup_cache(cat).computed == 1

    # an image added (a copy of p4 under a new product): the next request computes again
    Image.open(folder / "p4.png").resize((90, 120)).save(folder / "copy4.jpg", quality=85)
    (folder / "more.csv").write_text("image,id\ncopy4.jpg,C4\n")
    cat.ingest(folder / "more.csv", id_col="id")
    # (written as by another process: no refresher poll has swapped in an engine holding it yet; the
    # report is computed on one that caught up, never on the lagging one - CI once saw a page built
    # from such a report, with the new copy missing and its state reading current)
    after = c.get("/api/v1/dedup/groups").json()
    assert len(calls) == 2 and after["total"] == 2 and _pids(after) == [["C2", "P2"], ["C4", "P4"]]
    assert after["status"] == "ready"
    cat.refresher.refresh()  # engines rebuilt from the same database state: the report is reused
    assert c.get("/api/v1/dedup/groups").json() == after and len(calls) == 2

    # an image removed: computed again, its group is gone
    sha = next(im["image_sha256"] for g in after["groups"] for im in g["images"] if "C4" in im["product_ids"])
    assert c.delete(f"/api/v1/images/{sha}", headers=auth).status_code == 204
    gone = c.get("/api/v1/dedup/groups").json()
    assert len(calls) == 3 and _pids(gone) == [["C2", "P2"]]
    # the CSV export of the same report reuses it too
    assert c.get("/api/v1/export/dedup", params={"format": "csv"}).status_code == 200
    assert len(calls) == 3


def test_state_moves_with_images_and_embeddings(served) -> None:  # type: ignore[no-untyped-def]
    cat, _, _, folder = served
    model = cat.searcher().model
    before = catalog_state(cat.db, model)
    assert catalog_state(cat.db, model) == before  # nothing written: the same state
    make_product_image(folder / "new.png", 42)
    (folder / "new.csv").write_text("image,id\nnew.png,N\n")
    cat.ingest(folder / "new.csv", id_col="id", embed=False)
    no_vector = catalog_state(cat.db, model)
    assert no_vector != before
    cat.embed()
    assert catalog_state(cat.db, model) != no_vector


def test_concurrent_requests_compute_once(served, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    cat, c, _, _ = served
    running = threading.Event()
    seen: list[int] = []
    real = dedup.find_duplicates

    def slow(*args: Any, **kwargs: Any) -> Any:
        seen.append(1)
        running.set()
        time.sleep(0.5)  # the other requests arrive while this one computes
        return real(*args, **kwargs)

    monkeypatch.setattr(dedup, "find_duplicates", slow)
    pages: list[dict] = []

    def get(offset: int) -> None:
        pages.append(c.get("/api/v1/dedup/groups", params={"offset": offset}).json())

    threads = [threading.Thread(target=get, args=(i % 2,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert running.is_set() and len(pages) == 4
    assert len(seen) == 1 and {p["total"] for p in pages} == {1}
    # other options are another report (its own lock and entry)
    from catalens.search.dedup import DedupOptions

    cat.dedup(None, cached=True, options=DedupOptions(candidate_cosine=0.9))
    cat.dedup(None, cached=True, options=DedupOptions(candidate_cosine=0.9))
    assert len(seen) == 2


def test_a_slow_report_is_computed_in_the_background(served, gated_dedup) -> None:  # type: ignore[no-untyped-def]
    """A request does not wait minutes: 202 "computing" with Retry-After until the first report is
    ready; once images change, the last report is served ("updating") while the new one computes."""
    cat, c, _, folder = served
    release = gated_dedup
    r = c.get("/api/v1/dedup/groups")
    assert r.status_code == 202 and r.json()["status"] == "computing" and r.headers["Retry-After"] == "5"
    assert c.get("/api/v1/dedup/groups").status_code == 202  # still the one computation
    release.set()
    deadline = time.monotonic() + 30
    while (r := c.get("/api/v1/dedup/groups")).status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.1)
    first = r.json()
    assert r.status_code == 200 and first["status"] == "ready" and first["total"] == 1

    release.clear()
    Image.open(folder / "p4.png").resize((90, 120)).save(folder / "copy4.jpg", quality=85)
    (folder / "more.csv").write_text("image,id\ncopy4.jpg,C4\n")
    cat.ingest(folder / "more.csv", id_col="id")
    cat.refresher.refresh()
    stale = c.get("/api/v1/dedup/groups").json()
    assert stale["status"] == "updating" and stale["total"] == 1  # the last report, while computing
    assert stale["retry_after_s"] == 5  # when to ask for the new one (the web page does)
    release.set()
    deadline = time.monotonic() + 30
    while (page := c.get("/api/v1/dedup/groups").json())["status"] != "ready" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert page["total"] == 2


def test_a_background_error_reaches_the_next_poll(served, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from catalens.errors import ConfigError

    cat, _, _, _ = served
    failing = {"left": 1}
    real = dedup.find_duplicates

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if failing["left"]:
            failing["left"] -= 1
            raise ConfigError("disk went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(dedup, "find_duplicates", flaky)
    with pytest.raises(ConfigError, match="disk went away"):
        cat.dedup_poll(wait_s=10)
    report, fresh = cat.dedup_poll(wait_s=10)  # the next poll computes again
    assert fresh and len(report.groups) == 1
