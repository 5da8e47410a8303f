"""``catalens serve --workers N``: worker processes over one catalog. A product uploaded through
one worker is found by search through another within the documented bound, and index catch-up
never blocks reads (the refresher builds new engines off the request path and swaps them in)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from catalens.core import Catalog
from tests.conftest import make_product_image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

# the documented bound (README "Scale out", docs/ARCHITECTURE.md): CATALENS_API_REFRESH_S (1 s)
# plus one engine rebuild; a few seconds on a small catalog on 2 busy cores
VISIBLE_WITHIN_S = 5.0


def _seed(home: Path, root: Path, n: int, **open_kw: object) -> None:
    rows = ["image,id,title"]
    for i in range(n):
        rows.append(f"{make_product_image(root / f'p{i}.png', seed=300 + i)},P{i},Product {i}")
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    with Catalog.open(home, **open_kw) as cat:  # type: ignore[arg-type]
        cat.ingest(root / "m.csv", id_col="id", text_col="title")


@pytest.mark.slow
def test_product_ingested_through_one_worker_is_found_through_another(home: Path, tmp_path: Path) -> None:
    from services.serving import Server, measure_visibility

    from catalens.api.keys import create_key

    _seed(home, tmp_path / "seed", 8)
    with Catalog.open(home) as cat:
        key, _ = create_key(cat.db, "write", "test")
    new = [make_product_image(tmp_path / f"new{i}.png", seed=900 + i) for i in range(4)]
    server = Server(home, 2)
    try:
        assert len(server.wait_ready(2)) == 2
        vis = measure_visibility(server.base, new, key, timeout=60)
    finally:
        server.stop()
    summary = vis.summary()
    assert summary["runs"] >= 3, (summary, server.log_tail())
    assert max(vis.seconds_after_done) <= VISIBLE_WITHIN_S, summary
    assert server.proc.returncode is not None


def test_catch_up_never_blocks_reads(fake_encoder: object, home: Path, tmp_path: Path, monkeypatch) -> None:
    """While a new engine is being built (held here at will), searches answer from the current
    one at once; the swap then makes the new product searchable."""
    from catalens.api.service_catalog import ServiceCatalog
    from catalens.config import load_settings
    from catalens.search import engine as eng

    _seed(home, tmp_path / "seed", 6)
    cat = ServiceCatalog(load_settings(home))
    try:
        before = cat.search_product("P1", k=10)
        assert "P9" not in {r.product_id for r in before}
        # another process ingests a product: the database moves, this worker's engine does not
        extra = tmp_path / "extra"
        extra.mkdir()
        p9 = make_product_image(extra / "p9.png", seed=399)
        (extra / "m.csv").write_text(f"image,id,title\n{p9},P9,Product 9\n")
        with Catalog.open(home) as other:
            other.ingest(extra / "m.csv", id_col="id", text_col="title")

        release, building = threading.Event(), threading.Event()
        real = eng.CatalogSearch

        class HeldBuild(real):  # type: ignore[misc,valid-type]
            def __init__(self, *a: object, **kw: object) -> None:
                building.set()
                assert release.wait(30)
                super().__init__(*a, **kw)

        monkeypatch.setattr(eng, "CatalogSearch", HeldBuild)
        worker = threading.Thread(target=cat.refresher.poll)
        worker.start()
        assert building.wait(10)
        t0 = time.monotonic()
        during = cat.search_product("P1", k=10)  # the old engine answers; nothing waits for the build
        assert time.monotonic() - t0 < 2.0
        assert [r.product_id for r in during] == [r.product_id for r in before]
        release.set()
        worker.join(30)
        assert not worker.is_alive() and cat.refresher.refreshes >= 1
        after = cat.search_image(p9, k=1)
        assert after[0].product_id == "P9"
        assert cat.refresher.poll() is False  # nothing new since
    finally:
        cat.close()
