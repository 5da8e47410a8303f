"""Product detection: cut-outs, scenes, decoding, the packaged detector, and the detect / --each faces."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from catalens.classify.colour.features import dominant_colours
from catalens.detect import per_product
from catalens.detect.categories import categories, category_of, garment_category
from catalens.detect.crops import product_crop
from catalens.detect.cutouts import backdrop_mask, cut_out
from catalens.detect.detector import Detection, Detector, decode, input_size
from catalens.detect.scenes import Item, compose, texture
from catalens.errors import ConfigError
from catalens.quality.context import QCImage
from catalens.quality.registry import get_check
from tests.conftest import make_product_image, shared_dataset

ROOT = Path(__file__).resolve().parents[1]


def _white_shot(size=(120, 160), box=(30, 40, 90, 130), colour=(200, 30, 30), print_white=True) -> np.ndarray:
    img = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.rectangle(box, fill=colour)
    if print_white:  # white print inside the product stays product
        d.rectangle((box[0] + 10, box[1] + 10, box[0] + 25, box[1] + 25), fill=(255, 255, 255))
    return np.asarray(img)


def test_cut_out_keeps_white_print_and_refuses_busy_backgrounds() -> None:
    cut = cut_out(_white_shot())
    assert cut is not None and not cut.touches_edge
    assert cut.rgba.shape[:2] == (91, 61)  # trimmed to the product's box
    assert cut.mask[15, 15]  # the white print inside is product
    noisy = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    assert cut_out(noisy) is None  # no white backdrop: no cut-out
    assert cut_out(np.full((100, 100, 3), 255, np.uint8)) is None  # nothing on it
    edge = cut_out(_white_shot(box=(30, 40, 90, 159)))
    assert edge is not None and edge.touches_edge


def test_categories_map_catalog_labels_and_garment_classes() -> None:
    assert categories()[:3] == ["top", "bottom", "dress"]
    assert category_of(article_type="Tshirts", sub_category="Topwear") == "top"
    assert category_of(article_type="Briefs", sub_category="Innerwear") == "bottom"  # article type first
    assert category_of(sub_category="flip flops") == "footwear"
    assert category_of(article_type="Vouchers", sub_category="Vouchers") is None
    assert garment_category("T-Shirt") == "top" and garment_category("pants") == "bottom"


def test_compose_labels_only_visible_products() -> None:
    rng = np.random.default_rng(3)
    cut = cut_out(_white_shot())
    assert cut is not None
    items = [Item(cut, 0, "a"), Item(cut, 1, "b"), Item(cut, 2, "c")]
    scene = compose(items, texture(rng, 256), rng, damage=False)
    assert scene.image.shape == (256, 256, 3)
    for p in scene.items:
        ys, xs = np.nonzero(p.mask)
        assert p.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    # two labelled masks never claim the same pixel (later pastes hide earlier ones)
    total = sum(p.mask.astype(int) for p in scene.items)
    assert total.max() <= 1


def test_decode_finds_peaks_and_merges_overlapping_boxes() -> None:
    heat = np.full((len(categories()), 12, 12), -8.0, np.float32)
    box = np.zeros((4, 12, 12), np.float32)
    heat[0, 3, 3], heat[4, 8, 9] = 3.0, 1.0  # two products, categories top and bag
    heat[1, 3, 4] = 2.5  # the same product seen as another category in the next cell
    box[:2] = np.log(4.0)  # 4 cells = 32 px boxes
    found = decode(heat, box, threshold=0.3)
    assert [c for _, _, c in found] == [0, 4]
    b0 = found[0][0]
    assert b0[2] - b0[0] == pytest.approx(32.0) and (b0[0] + b0[2]) / 2 == pytest.approx(3 * 8)
    assert decode(heat, box, threshold=0.99) == []
    assert input_size(1200, 900) == (384, 288)


class _StubDetector:
    """Finds exactly the boxes it is given (plumbing tests that do not depend on the model)."""

    def __init__(self, boxes: list[tuple[float, float, float, float]]) -> None:
        self.boxes = boxes

    def detect(
        self, rgb: np.ndarray, *, masks: bool = True, threshold: float | None = None
    ) -> list[Detection]:
        out = []
        for i, (x0, y0, x1, y1) in enumerate(self.boxes):
            m = np.zeros(rgb.shape[:2], bool)
            m[int(y0) : int(y1), int(x0) : int(x1)] = True
            out.append(Detection((x0, y0, x1, y1), 0.9 - 0.1 * i, "top", m))
        return out


def _outfit(
    tmp_path: Path, shots: list[Path], textured: bool = False
) -> tuple[Path, list[tuple[float, float, float, float]]]:
    """Two product shots side by side on a 400 px photo (white or a texture) and their boxes. (The
    fake encoder compares raw pixels, so search tests use the white photo: a crop's margin of
    texture would decide its match.)"""
    rng = np.random.default_rng(0)
    canvas = Image.fromarray(texture(rng, 400)) if textured else Image.new("RGB", (400, 400), "white")
    boxes = []
    for i, p in enumerate(shots):
        im = Image.open(p).convert("RGB")
        x, y = 20 + 190 * i, 60
        canvas.paste(im, (x, y))
        boxes.append((float(x), float(y), float(x + im.width), float(y + im.height)))
    path = tmp_path / "outfit.jpg"
    canvas.save(path, quality=95)
    return path, boxes


@pytest.fixture
def catalog(fake_encoder: object, home: Path, tmp_path: Path):
    from catalens import Catalog

    folder = tmp_path / "shots"
    rows = ["image,id,title"]
    for i in range(8):
        make_product_image(folder / f"p{i}.png", i, size=(150, 200))
        rows.append(f"p{i}.png,P{i},Product {i}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    cat = Catalog.open(home, default_model="fake-encoder")
    cat.ingest(folder / "labels.csv", id_col="id", text_col="title")
    yield cat, folder
    cat.close()


def test_search_each_searches_every_detected_product(catalog, tmp_path: Path, monkeypatch) -> None:
    cat, folder = catalog
    photo, boxes = _outfit(tmp_path, [folder / "p2.png", folder / "p5.png"])
    monkeypatch.setattr(per_product, "default_detector", lambda: _StubDetector(boxes))
    found = cat.search_image_each(photo, k=3)
    assert [it.index for it in found.items] == [0, 1]
    assert found.items[0].answer[0].product_id == "P2"
    assert found.items[1].answer[0].product_id == "P5"
    data = found.to_dict()
    assert data["count"] == 2 and data["items"][1]["results"][0]["product_id"] == "P5"
    # a crop on white: the texture around the product is gone; the plain crop keeps it
    photo, _ = _outfit(tmp_path, [folder / "p2.png", folder / "p5.png"], textured=True)
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    crop = np.asarray(product_crop(rgb, found.items[0].detection, on_white=True))
    assert (crop[:5] == 255).all()
    assert not (np.asarray(product_crop(rgb, found.items[0].detection))[:5] == 255).all()
    colours = cat.colours_each(photo).to_dict()
    assert len(colours["items"]) == 2 and colours["items"][0]["colours"]["primary"]


def test_detect_cli_draws_crops_and_reports_bad_files(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from catalens.cli import app

    photo = make_product_image(tmp_path / "a.png", 1, size=(200, 240))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    monkeypatch.setattr(per_product, "default_detector", lambda: _StubDetector([(20.0, 30.0, 150.0, 200.0)]))
    res = CliRunner().invoke(
        app,
        [
            "detect",
            str(bad),
            str(photo),
            "--json",
            "--draw",
            str(tmp_path / "d"),
            "--crops",
            str(tmp_path / "c"),
        ],
    )
    assert res.exit_code == 1, res.output  # one file failed, the other was still done
    rows = json.loads(res.stdout)
    assert rows[0]["source"] == str(bad) and "error" in rows[0]
    assert rows[1]["count"] == 1 and rows[1]["items"][0]["category"] == "top"
    assert Path(rows[1]["drawn"]).is_file() and Path(rows[1]["items"][0]["crop"]).is_file()
    assert Image.open(rows[1]["items"][0]["crop"]).size[0] < 200


def test_detect_api_route(fake_encoder: object, home: Path, tmp_path: Path, monkeypatch) -> None:
    import io

    from fastapi.testclient import TestClient

    from catalens.api.app import create_app
    from catalens.api.service_catalog import ServiceCatalog
    from catalens.api.settings import ApiSettings
    from catalens.config import load_settings

    folder = tmp_path / "shots"
    rows = ["image,id,title"]
    for i in range(4):
        make_product_image(folder / f"p{i}.png", i, size=(150, 200))
        rows.append(f"p{i}.png,P{i},Product {i}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    cat = ServiceCatalog(load_settings(home, default_model="fake-encoder"), ApiSettings())
    cat.ingest(folder / "labels.csv", id_col="id", text_col="title")
    photo, boxes = _outfit(tmp_path, [folder / "p1.png", folder / "p3.png"])
    monkeypatch.setattr(per_product, "default_detector", lambda: _StubDetector(boxes))
    with TestClient(create_app(catalog=cat, api_settings=cat.api_settings)) as client:
        body = photo.read_bytes()
        r = client.post("/api/v1/detect", files={"file": ("outfit.jpg", body, "image/jpeg")})
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["count"] == 2 and data["width"] == 400 and data["items"][0]["results"] is None
        r = client.post(
            "/api/v1/detect",
            files={"file": ("outfit.jpg", body, "image/jpeg")},
            data={"search": "true", "limit": 2},
        )
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert [it["results"][0]["product_id"] for it in items] == ["P1", "P3"]
        assert len(items[0]["results"]) == 2
        r = client.post("/api/v1/detect", files={"file": ("x.jpg", io.BytesIO(b"nope"), "image/jpeg")})
        assert r.status_code in (400, 415), r.text
        r = client.post(
            "/api/v1/detect", files={"file": ("outfit.jpg", body, "image/jpeg")}, data={"threshold": "1.5"}
        )
        assert r.status_code == 422
        r = client.get(f"/api/v1/images/{'0' * 64}/regions")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not-found"
        sha = cat.db.ok_images()[0].sha256
        assert client.get(f"/api/v1/images/{sha}/regions").json() == {"crops": [], "crop_of": None}
    cat.close()


def test_packaged_detector_finds_held_out_catalog_products_in_scenes() -> None:
    """Floor on real photos: lock-box products of bench/detect.py (never trained on), pasted 3 to a
    scene by the training composer, are found at IoU 0.5 (the bench measures the full figures)."""
    data = shared_dataset("myntra-dev")
    held = set((ROOT / "bench" / "data" / "detect_heldout.txt").read_text().split())
    det = Detector()
    cats = categories()
    items = []
    for r in csv.DictReader(open(data / "labels.csv", encoding="utf-8")):
        cat = category_of(article_type=r["articleType"], sub_category=r["subCategory"])
        if r["image"] not in held or cat is None:
            continue
        cut = cut_out(np.asarray(Image.open(data / r["image"]).convert("RGB")))
        if cut is not None:
            items.append(Item(cut, cats.index(cat), r["id"]))
        if len(items) >= 60:
            break
    rng = np.random.default_rng(5)
    found = total = 0
    for _ in range(12):
        chosen = [items[i] for i in rng.choice(len(items), 3, replace=False)]
        scene = compose(chosen, texture(rng, 384), rng, damage=False)
        dets = det.detect(scene.image)
        for p in scene.items:
            total += 1
            found += any(_iou(d.box, p.box) >= 0.5 for d in dets)
    assert found / total >= 0.7, (found, total)


def _iou(a, b) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def test_trainer_makes_a_loadable_detector(tmp_path: Path) -> None:
    """A tiny training run end to end: cut-outs, scenes, maps, fit, threshold, ONNX export."""
    folder = tmp_path / "images"
    rows = ["image,id,subCategory,articleType"]
    kinds = [("Topwear", "Tshirts"), ("Shoes", "Casual Shoes"), ("Bags", "Handbags")]
    for i in range(40):
        make_product_image(folder / f"{i}.png", i, size=(120, 160))
        sub, art = kinds[i % 3]
        rows.append(f"images/{i}.png,{i},{sub},{art}")
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    out = tmp_path / "model"
    res = subprocess.run(
        [sys.executable, "-m", "catalens.detect.train", str(folder), "--labels", str(labels), "--out", str(out),
         "--scenes", "24", "--val-scenes", "8", "--epochs", "1"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    meta = json.loads((out / "detector.json").read_text())
    assert meta["categories"] == categories() and 0 < meta["threshold"] < 1
    assert meta["validation"]["scenes"] == 8 and meta["onnx_max_abs_error"] < 1e-3
    det = Detector(out, threshold=0.05)
    got = det.detect(np.asarray(Image.open(folder / "0.png").convert("RGB")))
    assert all(0 <= d.box[0] <= d.box[2] <= 120 and d.mask is not None for d in got)
    with pytest.raises(Exception, match="threshold"):
        Detector(out, threshold=1.5)


def test_ingest_detect_stores_each_product_as_a_linked_image(
    fake_encoder: object, home: Path, tmp_path: Path, monkeypatch
) -> None:
    from catalens import Catalog

    folder = tmp_path / "shots"
    for i in range(2):
        make_product_image(folder / f"p{i}.png", i, size=(150, 200))
    ugc = tmp_path / "ugc"
    ugc.mkdir()
    photo, boxes = _outfit(tmp_path, [folder / "p0.png", folder / "p1.png"])
    photo.rename(ugc / "outfit.jpg")
    (ugc / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    monkeypatch.setattr(per_product, "default_detector", lambda: _StubDetector(boxes))
    with Catalog.open(home, default_model="fake-encoder") as cat:
        cat.ingest(folder)
        report = cat.ingest(ugc, detect=True)
        assert report.detected == {"photos": 1, "crops": 2, "new_crops": 2}
        assert report.failed == 1 and "broken.jpg" in report.failures[0].source  # the rest went on
        assert report.to_dict()["detected"]["crops"] == 2
        outfit_sha = cat.db.shas_for_sources([str((ugc / "outfit.jpg").resolve())])[
            str((ugc / "outfit.jpg").resolve())
        ]
        regions = cat.image_regions(outfit_sha)
        assert [r["box"] for r in regions["crops"]] == [list(b) for b in boxes]
        crop = regions["crops"][1]["crop_sha256"]
        assert cat.image_regions(crop)["crop_of"]["source_sha256"] == outfit_sha
        # each crop is a searchable image of its own: the second product finds its crop first
        hits = cat.search_image(folder / "p1.png", k=5, all_images=True)
        assert crop in [h.image_sha256 for h in hits[:3]]
        # a second run stores nothing new (crops are named by their content)
        again = cat.ingest(ugc, detect=True)
        assert again.detected == {"photos": 1, "crops": 2, "new_crops": 0}
        with pytest.raises(Exception, match="no image"):
            cat.image_regions("0" * 64)


def test_missing_or_foreign_detector_files_name_the_trainer(tmp_path: Path) -> None:
    from catalens.errors import ConfigError

    with pytest.raises(ConfigError, match="python -m catalens.detect.train"):
        Detector(tmp_path)
    (tmp_path / "detector.onnx").write_bytes(b"x")
    (tmp_path / "detector.json").write_text(json.dumps({"version": "detector-v0"}))
    with pytest.raises(ConfigError, match="retrain"):
        Detector(tmp_path)


def test_each_options_on_the_cli(catalog, tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from catalens.cli import app

    cat, folder = catalog
    photo, boxes = _outfit(tmp_path, [folder / "p2.png", folder / "p5.png"])
    monkeypatch.setattr(per_product, "default_detector", lambda: _StubDetector(boxes))
    home = str(cat.settings.home)
    run = CliRunner().invoke
    res = run(app, ["--home", home, "search", "--image", str(photo), "--each", "-k", "2", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["query"]["each"] and [it["results"][0]["product_id"] for it in data["items"]] == ["P2", "P5"]
    res = run(app, ["--home", home, "search", "--image", str(photo), "--each", "-k", "2"])
    assert res.exit_code == 0 and "product 2: top" in res.stdout
    res = run(app, ["--home", home, "search", "--text", "red", "--each"])
    assert res.exit_code == 2 and "--each needs --image" in res.output
    res = run(app, ["--home", home, "colour", str(photo), "--each", "--json"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)[0]["items"]) == 2
    res = run(app, ["--home", home, "classify", "--all", "--each"])
    assert res.exit_code == 2 and "--each" in res.output


# ---- QC on the product mask (framing, background, colour) -----------------------------------------


def _with_mask(img: Image.Image, mask: np.ndarray | None) -> QCImage:
    """A QCImage whose product detector answer is ``mask`` (the model itself is tested apart)."""
    qc = QCImage.from_pil(img)
    dets = [] if mask is None else [Detection((0.0, 0.0, 1.0, 1.0), 0.9, "top", mask)]
    qc.__dict__["_detected"] = (dets, mask)
    return qc


def _grey_shot(fill: float) -> tuple[Image.Image, np.ndarray]:
    """A dark product filling ``fill`` of a 300x400 frame's height on a grey studio backdrop."""
    arr = np.full((400, 300, 3), 170, np.uint8)
    mask = np.zeros((400, 300), bool)
    h = int(400 * fill)
    mask[(400 - h) // 2 : (400 + h) // 2, 100:200] = True
    arr[mask] = (40, 50, 120)
    return Image.fromarray(arr), mask


def test_framing_measures_fill_on_any_background_with_the_product_mask() -> None:
    img, mask = _grey_shot(0.6)
    main = {"min_fill_warn": 0.85, "min_fill_fail": 0.7}
    old = get_check("framing")(region="near_white", **main).run(_with_mask(img, mask))
    assert old.score is None and old.verdict == "pass"  # not a white shot: not measured
    res = get_check("framing")(**main).run(_with_mask(img, mask))  # auto: the mask off white
    assert res.verdict == "fail" and abs(res.score - 0.6) < 0.01 and res.details["product_from"] == "detector"
    none = get_check("framing")(**main).run(_with_mask(img, None))
    assert none.score is None and "no product detected" in none.reason
    # on white, auto keeps measuring the non-white pixels (the mask is not asked for)
    white = np.asarray(img).copy()
    white[~mask] = 255
    qc = QCImage.from_pil(Image.fromarray(white))
    res = get_check("framing")(**main).run(qc)
    assert res.details["product_from"] == "near-white" and "_detected" not in qc.__dict__
    with pytest.raises(ConfigError, match="region must be one of"):
        get_check("framing")(region="mask")


def test_background_detector_region_leaves_the_product_positions_out() -> None:
    main = {"band": 0.04, "warn": 0.97, "fail": 0.85, "region": "detector"}
    img = Image.new("RGB", (300, 400), (255, 255, 255))
    ImageDraw.Draw(img).rectangle((100, 0, 200, 400), fill=(60, 70, 160))  # a model off both edges
    mask = np.asarray(img)[..., 0] < 200
    res = get_check("background")(**main).run(_with_mask(img, mask))
    assert res.verdict == "pass" and set(res.details["product_at_edge"]) == {"top", "bottom"}
    grey = np.asarray(img).copy()
    grey[~mask] = 190
    assert get_check("background")(**main).run(_with_mask(Image.fromarray(grey), mask)).verdict == "fail"
    with pytest.raises(ConfigError, match="region must be one of"):
        get_check("background")(region="mask")


def test_colour_on_the_product_mask() -> None:
    arr = np.zeros((200, 150, 3), np.uint8)
    arr[:] = np.random.default_rng(0).integers(0, 255, (200, 150, 3))  # a busy scene
    mask = np.zeros((200, 150), bool)
    mask[50:150, 40:110] = True
    arr[mask] = (200, 30, 40)  # a red product
    res = dominant_colours(Image.fromarray(arr), product_mask=mask)
    assert res.method.startswith("mask") and res.primary == "Red"
    tiny = np.zeros_like(mask)
    tiny[0, 0] = True  # under 3% of the photo: the colour code's own separation
    assert not dominant_colours(Image.fromarray(arr), product_mask=tiny).method.startswith("mask")


def test_qc_product_mask_from_the_packaged_detector_on_a_real_photo() -> None:
    """The real detector on a held-out catalog photo, its white backdrop replaced by grey: framing is
    measured and its fill is within 0.05 of the product's true fill."""
    data = shared_dataset("myntra-dev")
    held = (ROOT / "bench" / "data" / "detect_heldout.txt").read_text().split()
    errors = []
    for name in held[:12]:
        arr = np.asarray(Image.open(data / name).convert("RGB")).copy()
        product = ~backdrop_mask(arr)
        ys, xs = np.nonzero(product)
        truth = max((xs.max() - xs.min() + 1) / arr.shape[1], (ys.max() - ys.min() + 1) / arr.shape[0])
        arr[~product] = 180
        res = get_check("framing")().run(QCImage.from_pil(Image.fromarray(arr)))
        if res.score is not None:
            errors.append(abs(res.score - truth))
    assert len(errors) >= 10 and float(np.median(errors)) <= 0.05, errors


def test_colour_detects_the_product_only_on_a_white_backdrop(monkeypatch: pytest.MonkeyPatch) -> None:
    from catalens.classify.colour import features as colour

    calls: list[tuple[int, ...]] = []

    def fake(img):  # type: ignore[no-untyped-def]
        calls.append(np.asarray(img).shape)
        m = np.zeros((img.height, img.width), bool)
        m[img.height // 4 : 3 * img.height // 4, img.width // 4 : 3 * img.width // 4] = True
        return m

    monkeypatch.setattr(colour, "detected_mask", fake)
    white = np.full((200, 150, 3), 250, np.uint8)
    white[50:150, 40:110] = (30, 40, 150)
    res = colour.dominant_colours(Image.fromarray(white), detect_on_white=True)
    assert calls and res.method.startswith("mask") and "Blue" in res.primary
    grey = white.copy()
    grey[(white == 250).all(axis=2)] = 170
    calls.clear()
    res = colour.dominant_colours(Image.fromarray(grey), detect_on_white=True)
    assert not calls and res.method.startswith("border")
    assert colour.white_backdrop(white) and not colour.white_backdrop(grey)
