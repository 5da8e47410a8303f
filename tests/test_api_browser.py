"""Browser tests: Playwright (Python) driving Debian's headless ``chromium`` against a live server.

Skipped when Playwright or ``/usr/bin/chromium`` is missing (never downloads a browser).
Screenshots go to ``$CATALENS_SCREENSHOT_DIR`` (default: a pytest temporary folder).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("CATALENS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("Debian chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from tests.conftest import FakeEncoder, make_product_image  # noqa: E402

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
N = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    import uvicorn

    import catalens.models as models
    from catalens.api.app import create_app
    from catalens.api.service_catalog import ServiceCatalog
    from catalens.api.settings import ApiSettings
    from catalens.config import load_settings

    root = tmp_path_factory.mktemp("web")
    enc = FakeEncoder()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(models, "load_image_encoder", lambda name, **kw: enc, raising=False)
        folder = root / "photos"
        rows = ["image,id,title,colour,kind"]
        for i in range(N):
            make_product_image(folder / f"p{i}.png", i, (150, 200))
            colour = ("red", "blue", "green")[i % 3]
            rows.append(f"p{i}.png,P{i},{colour.title()} item {i},{colour},{'shirt' if i < 15 else 'shoe'}")
        (folder / "labels.csv").write_text("\n".join(rows) + "\n")
        # the pages here are browsed faster than a person would (10 pages of 30 thumbnails in seconds):
        # the per-address rate limit is tested in test_api.py, not here
        cat = ServiceCatalog(
            load_settings(root / "home", default_model="fake-encoder"),
            ApiSettings(rate_per_minute=1e6, burst=10_000),
        )
        cat.ingest(folder / "labels.csv", id_col="id", text_col="title")
        key, _ = cat.create_key("write", "browser")
        app = create_app(catalog=cat, api_settings=cat.api_settings)
        port = _free_port()
        srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        end = time.time() + 20
        while not srv.started and time.time() < end:
            time.sleep(0.05)
        assert srv.started, "server did not start"
        shots = Path(os.environ.get("CATALENS_SCREENSHOT_DIR") or root / "screenshots")
        shots.mkdir(parents=True, exist_ok=True)
        yield {"url": f"http://127.0.0.1:{port}", "key": key, "photos": folder, "shots": shots, "cat": cat}
        srv.should_exit = True
        thread.join(10)
        cat.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: object, server: dict) -> Iterator[object]:
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})  # type: ignore[attr-defined]
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.errors = errors
    yield pg
    ctx.close()
    assert not errors, f"JavaScript errors: {errors}"


def test_search_by_photo(page: object, server: dict) -> None:
    page.goto(server["url"] + "/#/search")
    page.set_input_files("[data-testid=search-file]", str(server["photos"] / "p7.png"))
    page.wait_for_selector("[data-testid=result-card]")
    cards = page.locator("[data-testid=result-card]")
    assert cards.count() >= 12
    first = cards.first.inner_text()
    assert "item 7" in first and "1.000" in first  # the same photo ranks first with score 1
    page.screenshot(path=str(server["shots"] / "search.png"))
    # a filter narrows the results to that attribute
    page.select_option("select[data-facet=kind]", "shoe")
    page.wait_for_function("() => document.querySelector('.query-line').innerText.includes('shoe')")
    page.wait_for_selector("[data-testid=result-card]")
    texts = page.locator("[data-testid=result-card] .title").all_inner_texts()
    ids = [int(t.split()[-1]) for t in texts]
    assert ids and all(i >= 15 for i in ids)


def test_search_by_product_id_and_more(page: object, server: dict) -> None:
    page.goto(server["url"] + "/#/search")
    page.fill("input[aria-label='product id']", "P3")
    page.click("button:has-text('Search')")
    page.wait_for_selector("[data-testid=result-card]")
    assert "More like #P3" in page.inner_text(".query-line")
    n = page.locator("[data-testid=result-card]").count()
    page.click("button:has-text('Show more')")
    page.wait_for_function(f"() => document.querySelectorAll('[data-testid=result-card]').length > {n}")


def test_catalog_browser_filters_and_paging(page: object, server: dict) -> None:
    page.goto(server["url"] + "/#/browse")
    page.wait_for_selector("[data-testid=result-card]")
    assert f"{N} products" in page.inner_text("section")
    assert "Page 1 of 1" in page.inner_text(".pager")
    page.select_option("select[data-facet=colour]", "red")
    page.wait_for_function("() => document.querySelector('section').innerText.includes('10 products')")
    titles = page.locator("[data-testid=result-card] .title").all_inner_texts()
    assert len(titles) == 10 and all(t.startswith("Red") for t in titles)
    page.screenshot(path=str(server["shots"] / "catalog.png"))


def test_product_page(page: object, server: dict) -> None:
    page.goto(server["url"] + "/#/product/P4")
    page.wait_for_selector("h1:has-text('item 4')")
    page.wait_for_selector("[data-testid=similar] [data-testid=result-card]")
    page.wait_for_selector("[data-testid=recommendations] [data-testid=result-card]")
    assert page.locator("[data-testid=main-image] img").count() == 1
    # the image arrives after the page: wait until it has loaded (read at once, it raced on a busy box)
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-testid=main-image] img'); "
        "return i && i.complete && i.naturalWidth > 0; }"
    )
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=tags]').innerText.includes('Classifying')"
    )
    page.screenshot(path=str(server["shots"] / "product.png"), full_page=True)
    text = page.inner_text("body")
    assert "null" not in text and "undefined" not in text and "[object" not in text
    page.click("[data-testid=similar] [data-testid=result-card] >> nth=0")
    page.wait_for_url("**/#/product/*")


def test_ingest_upload_with_progress(page: object, server: dict, tmp_path: Path) -> None:
    photo = make_product_image(tmp_path / "fresh-upload.png", 999, (160, 200))
    page.goto(server["url"] + "/#/ingest")
    page.click("#key-btn")
    page.fill("#key-input", server["key"])
    page.click("dialog button[value=save]")
    page.set_input_files("[data-testid=ingest-files]", str(photo))
    page.click("[data-testid=upload-btn]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=upload-status]').innerText.startsWith('Done')",
        timeout=20000,
    )
    assert "1 new image" in page.inner_text("[data-testid=upload-status]")
    assert page.eval_on_selector("[data-testid=upload-progress] > div", "d => d.style.width") == "100%"
    page.screenshot(path=str(server["shots"] / "ingest.png"))
    # the upload had no product id: it became a new product with a fresh id, linked from the status
    page.click("[data-testid=upload-product]")
    page.wait_for_selector("[data-testid=main-image] img")
    assert page.url.split("#/product/")[1].startswith("upload-")


def test_ingest_without_key_shows_error(page: object, server: dict, tmp_path: Path) -> None:
    photo = make_product_image(tmp_path / "nokey.png", 5, (100, 100))
    page.goto(server["url"] + "/#/ingest")
    page.set_input_files("[data-testid=ingest-files]", str(photo))
    page.click("[data-testid=upload-btn]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=upload-status]').innerText.includes('API key')"
    )


def test_mobile_layout_has_no_horizontal_scroll(browser: object, server: dict) -> None:
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)  # type: ignore[attr-defined]
    pg = ctx.new_page()
    for route in ("#/search", "#/browse", "#/product/P1", "#/ingest"):
        pg.goto(server["url"] + "/" + route)
        pg.wait_for_timeout(600)
        overflow = pg.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (route, overflow)
    pg.goto(server["url"] + "/#/browse")
    pg.wait_for_selector("[data-testid=result-card]")
    pg.screenshot(path=str(server["shots"] / "mobile-catalog.png"))
    for tab in pg.locator(".tabs a").all():  # every page is one tap away, none scrolled off
        box = tab.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (tab.inner_text(), box)
    ctx.close()


def test_search_deep_links_are_read_and_written(page: object, server: dict) -> None:
    from urllib.parse import parse_qs, quote

    # image search by a product, with a filter, straight from a link
    where = "`kind` = 'shoe'"
    page.goto(server["url"] + f"/#/search?id=P3&where={quote(where)}")
    page.wait_for_selector("[data-testid=result-card]")
    assert "More like #P3" in page.inner_text(".query-line") and "shoe" in page.inner_text(".query-line")
    assert page.input_value("select[data-facet=kind]") == "shoe"
    ids = [int(t.split()[-1]) for t in page.locator("[data-testid=result-card] .title").all_inner_texts()]
    assert ids and all(i >= 15 for i in ids)
    # a search typed on the page is written back to the address bar, filter included
    page.fill("input[aria-label='product id']", "P20")
    page.click("button:has-text('Search')")
    page.wait_for_function("() => document.querySelector('.query-line').innerText.includes('#P20')")
    linked = parse_qs(page.evaluate("() => location.hash").split("?", 1)[1])
    assert linked == {"id": ["P20"], "where": [where]}
    page.select_option("select[data-facet=colour]", "red")
    page.wait_for_function("() => location.hash.includes('colour')")
    linked = parse_qs(page.evaluate("() => location.hash").split("?", 1)[1])
    assert linked["id"] == ["P20"] and "`colour` = 'red'" in linked["where"][0]
    # a text search link fills the box and asks the server for that text
    with page.expect_request(lambda r: "/api/v1/search?" in r.url and "text=red+shoes" in r.url):
        page.goto(server["url"] + "/#/search?text=red%20shoes")
    page.wait_for_function("() => document.querySelector(\"input[aria-label='text query']\").value === 'red shoes'")


def test_browse_deep_links_filters_sort_and_warnings(page: object, server: dict) -> None:
    from urllib.parse import parse_qs, quote

    page.goto(server["url"] + "/#/browse?where=" + quote("`colour` = 'red'") + "&sort=-title")
    page.wait_for_function("() => document.querySelector('section')?.innerText.includes('10 products')")
    assert page.input_value("select[data-facet=colour]") == "red"
    assert page.input_value("select[aria-label=sort]") == "-title"
    titles = page.locator("[data-testid=result-card] .title").all_inner_texts()
    assert titles == sorted(titles, reverse=True) and all(t.startswith("Red") for t in titles)
    # typing a title filter is written back to the link
    page.fill("input[aria-label='filter by title']", "item 1")
    page.wait_for_function("() => location.hash.includes('q=item')")
    linked = parse_qs(page.evaluate("() => location.hash").split("?", 1)[1])
    assert linked == {"q": ["item 1"], "where": ["`colour` = 'red'"], "sort": ["-title"]}
    # an expression the menus cannot show goes to the expression box
    expr = "colour = 'blue' or colour = 'green'"
    page.goto(server["url"] + "/#/browse?where=" + quote(expr))
    page.wait_for_function("() => document.querySelector('section')?.innerText.includes('20 products')")
    assert page.input_value("[data-testid=where-expr]") == expr
    # a value no product holds: the server's did-you-mean is shown
    page.goto(server["url"] + "/#/browse?where=" + quote("colour = 'rde'"))
    page.wait_for_selector("[data-testid=where-warning]")
    assert "did you mean 'red'" in page.inner_text("[data-testid=where-warning]")
    page.screenshot(path=str(server["shots"] / "browse-deep-link.png"))


def test_duplicates_and_quality_pages(page: object, server: dict, tmp_path: Path) -> None:
    from PIL import Image

    cat = server["cat"]
    # a resized, re-compressed copy of P2's photo under another product, and stored QC results
    Image.open(server["photos"] / "p2.png").resize((120, 160)).save(tmp_path / "copy.jpg", quality=85)
    (tmp_path / "labels.csv").write_text("image,id,title,colour,kind\ncopy.jpg,C2,Copy of item 2,red,shirt\n")
    cat.ingest(tmp_path / "labels.csv", id_col="id", text_col="title")
    cat.qc([server["photos"] / f"p{i}.png" for i in range(3)], profile="general")

    page.goto(server["url"] + "/#/duplicates")
    page.wait_for_selector("[data-testid=dup-group]")
    groups = [sorted(g.locator("[data-testid=dup-image] .id").all_inner_texts()) for g in page.locator("[data-testid=dup-group]").all()]
    assert groups == [["#C2", "#P2"]], groups  # and no look-alike products grouped as copies
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=dup-image] img')].every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(server["shots"] / "duplicates.png"), full_page=True)
    page.click("button[data-name=variants]")
    page.wait_for_function("() => location.hash === '#/duplicates?view=variants'")
    page.wait_for_function("() => document.querySelector('[data-testid=dup-total]').innerText.includes('variant families')")

    page.goto(server["url"] + "/#/quality")
    page.click("#key-btn")
    page.fill("#key-input", server["key"])
    page.click("dialog button[value=save]")
    page.wait_for_selector("[data-testid=worst-card]")
    n = page.locator("[data-testid=worst-card]").count()
    assert n == 3 and page.inner_text("[data-testid=quality-pager]").strip().startswith("← Previous")
    assert "1–3 of 3" in page.inner_text("[data-testid=quality-pager]")
    with page.expect_download() as dl:
        page.click("[data-testid=export-csv]")
    text = Path(dl.value.path()).read_text()
    assert text.splitlines()[0].startswith("image_sha256,source,product_ids,profile,verdict") and len(text.splitlines()) == 4
    # dismiss the first reason of the first card: it is shown as dismissed and stored
    first = page.locator("[data-testid=worst-card]").first
    check = first.locator("li[data-check]").first.get_attribute("data-check")
    first.locator("[data-testid=dismiss]").first.click()
    page.wait_for_selector("[data-testid=undismiss]")
    assert page.url.endswith("#/quality")  # the button did not follow the card's link
    assert any(x["check"] == check for x in cat.qc_results()[0]["results"] if x.get("dismissed")) or any(
        check in r.get("dismissed", []) for r in cat.qc_results()
    )
    page.screenshot(path=str(server["shots"] / "quality.png"), full_page=True)


def test_duplicates_page_updates_itself(page: object, server: dict, tmp_path: Path, gated_dedup, monkeypatch) -> None:
    """Images added after the last report: the page shows that report ("updating…") and asks again
    until the new one, computed in the background, is ready - no reload by hand."""
    from PIL import Image

    from catalens.api.routes import dedup as route

    cat = server["cat"]
    gated_dedup.set()
    before = len(cat.dedup(cached=True).groups)  # a report of the catalog as it is now
    gated_dedup.clear()  # the next one waits
    monkeypatch.setattr(route, "RETRY_AFTER_S", 1)
    Image.open(server["photos"] / "p5.png").resize((120, 160)).save(tmp_path / "copy5.jpg", quality=85)
    (tmp_path / "labels.csv").write_text("image,id,title,colour,kind\ncopy5.jpg,C5,Copy of item 5,green,shirt\n")
    cat.ingest(tmp_path / "labels.csv", id_col="id", text_col="title")

    page.goto(server["url"] + "/#/duplicates")
    page.wait_for_function("() => document.querySelector('[data-testid=dup-total]').innerText.includes('updating')")
    assert page.locator("[data-testid=dup-group]").count() == before  # the last report meanwhile
    gated_dedup.set()
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-testid=dup-group]').length === {before + 1}"
        " && !document.querySelector('[data-testid=dup-total]').innerText.includes('updating')",
        timeout=20_000,
    )
    assert "#C5" in page.inner_text("body")


def test_shop_the_look_boxes_search_each_product(page: object, server: dict, tmp_path: Path, monkeypatch) -> None:
    """Upload a photo of two products: boxes appear over it; clicking one shows that product's matches."""
    import numpy as np
    from PIL import Image

    from catalens.detect import per_product
    from catalens.detect.detector import Detection

    canvas = Image.new("RGB", (420, 260), (150, 120, 90))
    boxes = []
    for i, pid in enumerate((4, 20)):
        shot = Image.open(server["photos"] / f"p{pid}.png").convert("RGB")
        x, y = 20 + 230 * i, 40
        canvas.paste(shot, (x, y))
        boxes.append((float(x), float(y), float(x + shot.width), float(y + shot.height)))
    photo = tmp_path / "look.png"
    canvas.save(photo)

    class Stub:
        def detect(self, rgb, *, masks=True, threshold=None):
            out = []
            for k, (x0, y0, x1, y1) in enumerate(boxes):
                m = np.zeros(rgb.shape[:2], bool)
                m[int(y0) : int(y1), int(x0) : int(x1)] = True
                out.append(Detection((x0, y0, x1, y1), 0.9 - 0.1 * k, ("top", "footwear")[k], m))
            return out

    monkeypatch.setattr(per_product, "default_detector", lambda: Stub())
    page.goto(server["url"] + "/#/search")
    page.set_input_files("[data-testid=search-file]", str(photo))
    page.wait_for_selector("[data-testid=look-box]")
    page.wait_for_function("() => document.querySelector('.query-line').innerText.includes('your photo')")
    assert page.locator("[data-testid=look-box]").count() == 2
    page.locator("[data-testid=look-box]").nth(1).click()
    page.wait_for_function("() => document.querySelector('.query-line').innerText.includes('product 2')")
    page.wait_for_selector("[data-testid=result-card]")
    shas = "els => els.map((e) => e.dataset.sha)"
    second = page.locator("[data-testid=result-card]").evaluate_all(shas)
    assert page.locator(".look .box.active").inner_text() == "2 footwear"
    page.locator("[data-testid=look-photo]").evaluate("img => img.decode()")
    page.screenshot(path=str(server["shots"] / "shop_the_look.png"))
    page.locator("[data-testid=look-box]").first.click()
    page.wait_for_function("() => document.querySelector('.query-line').innerText.includes('product 1')")
    first = page.locator("[data-testid=result-card]").evaluate_all(shas)
    # each box shows the results the API gives for that product (which product ranks first is
    # tested with the real crops in tests/test_detect.py)
    from catalens.detect.per_product import search_each

    want = search_each(server["cat"], photo, 24)
    assert first == [r.image_sha256 for r in want.items[0].answer]
    assert second == [r.image_sha256 for r in want.items[1].answer] and first != second
