"""Unit tests for catalens.quality: each check on synthetic images, profiles, runner, CLI, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from badcorpus import make_bad_corpus
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from catalens.config import Settings
from catalens.errors import ConfigError
from catalens.quality.context import QCImage
from catalens.quality.profiles import builtin_profiles, load_profile
from catalens.quality.registry import get_check, list_checks
from catalens.quality.runner import QCItem, run_checks


def product(
    w: int = 600, h: int = 800, seed: int = 0, bg: tuple[int, int, int] = (255, 255, 255)
) -> Image.Image:
    """A sharp, textured product (a striped shirt-like shape) on a plain background."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    x0, y0, x1, y1 = int(0.2 * w), int(0.12 * h), int(0.8 * w), int(0.9 * h)
    d.rectangle([x0, y0, x1, y1], fill=tuple(int(c) for c in rng.integers(20, 120, 3)))
    for i, y in enumerate(range(y0, y1, max(4, h // 40))):
        d.rectangle([x0, y, x1, y + max(2, h // 120)], fill=(230, 200, 40) if i % 2 else (200, 40, 60))
    for _ in range(6):
        r = int(rng.uniform(0.02, 0.06) * w)
        cx, cy = int(rng.uniform(x0 + r, x1 - r)), int(rng.uniform(y0 + r, y1 - r))
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=(10, 10, 10), width=3)
    return img


def run_one(check: str, img: Image.Image, **params):  # type: ignore[no-untyped-def]
    return get_check(check)(**params).run(QCImage.from_pil(img))


def test_registry_lists_every_check() -> None:
    names = set(list_checks())
    assert {
        "blur",
        "underexposed",
        "overexposed",
        "low_contrast",
        "resolution",
        "aspect_ratio",
        "background",
        "framing",
        "border",
        "text",
        "watermark",
        "nsfw",
        "grayscale",
        "low_information",
        "duplicates",
        "file",
    } <= names


def test_sharp_product_on_white_is_not_blurry_but_blurred_copy_is() -> None:
    img = product()
    sharp = run_one("blur", img)
    assert sharp.verdict == "pass", sharp.reason
    arr = cv2.GaussianBlur(np.asarray(img), (0, 0), 4)
    blurred = run_one("blur", Image.fromarray(arr))
    assert blurred.verdict == "fail" and blurred.score < sharp.score


def test_motion_blur_is_caught() -> None:
    img = np.asarray(product())
    k = np.zeros((21, 21), np.float32)
    k[10, :] = 1 / 21
    res = run_one("blur", Image.fromarray(cv2.filter2D(img, -1, k)))
    assert res.verdict != "pass", res.reason


def test_blur_is_resolution_normalised_for_thumbnails() -> None:
    thumb = product().resize((60, 80), Image.LANCZOS)
    assert run_one("blur", thumb).verdict == "pass"


def test_exposure_checks() -> None:
    img = product()
    arr = np.asarray(img).astype(np.float32)
    assert run_one("underexposed", img).verdict == "pass"
    assert run_one("underexposed", Image.fromarray((arr * 0.4).astype(np.uint8))).verdict == "fail"
    flat = Image.fromarray((arr.mean() + (arr - arr.mean()) * 0.25).astype(np.uint8))
    assert run_one("low_contrast", img).verdict == "pass"
    assert run_one("low_contrast", flat).verdict != "pass"
    blown = Image.fromarray(np.clip(arr * 3.0, 0, 255).astype(np.uint8))
    assert run_one("overexposed", img).verdict == "pass"
    assert run_one("overexposed", blown).verdict != "pass"


def test_grayscale_and_blank() -> None:
    img = product()
    assert run_one("grayscale", img).verdict == "pass"
    assert run_one("grayscale", img.convert("L").convert("RGB")).verdict == "fail"
    assert run_one("low_information", Image.new("RGB", (300, 300), (240, 240, 240))).verdict == "fail"
    assert run_one("low_information", img).verdict == "pass"


def _black_garment_on_white(seed: int = 0) -> np.ndarray:
    """A black shirt on a white backdrop as a camera records it: near-neutral everywhere (sensor colour
    noise of a couple of LAB units, under the old p99 limit), JPEG-compressed."""
    rng = np.random.default_rng(seed)
    arr = np.full((800, 600, 3), 250.0)
    arr[100:720, 140:460] = 22.0
    arr += rng.normal(0, 2.0, arr.shape)  # per-channel sensor noise: a little chroma in every pixel
    return np.clip(arr, 0, 255).astype(np.uint8)


def _jpeg(arr: np.ndarray, quality: int = 85) -> Image.Image:
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


@pytest.mark.parametrize("detail", ["skin", "label", "none"])
def test_black_garment_on_white_is_not_grayscale_but_its_grayscale_copy_is(detail: str) -> None:
    """A colour photo of a colourless product: a model's skin, a small coloured label, or just the
    sensor's own colour noise carry chroma somewhere; the same photo converted to grayscale has none."""
    arr = _black_garment_on_white()
    if detail == "skin":
        arr[40:100, 250:350] = (224, 172, 140)  # a neck above the collar
    elif detail == "label":
        arr[130:150, 280:320] = (200, 30, 40)  # a small red woven label: 0.17% of the photo
    photo = _jpeg(arr)
    assert run_one("grayscale", photo).verdict == "pass"
    gray = _jpeg(np.asarray(photo.convert("L").convert("RGB")), quality=70)
    result = run_one("grayscale", gray)
    assert result.verdict == "fail" and result.score == 0.0
    for name in ("general", "marketplace-main-image"):
        check = next(c for c in load_profile(name).instantiate() if c.name == "grayscale")
        assert check.run(QCImage.from_pil(photo)).verdict == "pass", name
        assert check.run(QCImage.from_pil(gray.resize((150, 200)))).verdict == "warn", name


def test_resolution_uses_the_true_file_size(tmp_path: Path) -> None:
    p = tmp_path / "big.jpg"
    product(1200, 1600).save(p, quality=90)
    img = QCImage.load(p, max_bytes=1 << 26, max_pixels=1 << 28, max_side=50_000)
    assert img.decoded is not None and img.decoded.scale > 1  # draft decoding
    res = get_check("resolution")(min_long_side_fail=1500).run(img)
    assert res.score == 1200 and res.verdict == "pass"
    assert max(img.rgb.shape[:2]) <= 512
    small = get_check("resolution")().run(QCImage.from_pil(product(120, 160)))
    assert small.verdict == "fail"


def test_background_is_judged_on_the_background_not_the_product_at_the_edge() -> None:
    main = {"band": 0.04, "warn": 0.97, "fail": 0.85}
    # a model on white whose legs and head run off the bottom and top edges
    img = Image.new("RGB", (600, 800), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.rectangle((220, 0, 380, 800), fill=(60, 70, 160))  # body crossing top and bottom
    d.rectangle((150, 200, 450, 500), fill=(200, 60, 50))  # garment
    res = run_one("background", img, **main)
    assert res.verdict == "pass", res.reason
    assert set(res.details["product_at_edge"]) == {"top", "bottom"}
    assert run_one("background", img, product_at_edge=False, **main).verdict != "pass"  # the old band rule
    # the same on a grey backdrop: no white along the frame at all
    grey = np.asarray(img).copy()
    grey[(grey == 255).all(axis=2)] = 190
    assert run_one("background", Image.fromarray(grey), **main).verdict == "fail"
    # a grey strip along the whole bottom (a floor), not part of the product: it stays background
    floor = img.copy()
    ImageDraw.Draw(floor).rectangle((0, 770, 600, 800), fill=(180, 180, 180))
    d2 = ImageDraw.Draw(floor)
    d2.rectangle((0, 0, 30, 800), fill=(180, 180, 180))
    d2.rectangle((570, 0, 600, 800), fill=(180, 180, 180))
    assert run_one("background", floor, **main).verdict == "fail"


def test_background_framing_and_border() -> None:
    img = product()
    assert run_one("background", img).verdict == "pass"
    noisy = np.random.default_rng(0).integers(0, 255, (800, 600, 3), dtype=np.uint8)
    busy = np.asarray(img).copy()
    bgmask = busy.min(axis=2) > 240
    busy[bgmask] = noisy[bgmask]
    assert run_one("background", Image.fromarray(busy)).verdict == "fail"
    fr = run_one("framing", img, min_fill_warn=0.85, min_fill_fail=0.7)
    assert 0.7 < fr.score < 0.85 and fr.verdict == "warn" and fr.regions
    assert run_one("border", img).verdict == "pass"
    framed = img.copy()
    d = ImageDraw.Draw(framed)
    for box in ([0, 0, 600, 24], [0, 776, 600, 800], [0, 0, 24, 800], [576, 0, 600, 800]):
        d.rectangle(box, fill=(20, 20, 20))
    res = run_one("border", framed)
    assert res.verdict == "fail" and len(res.regions) == 4


def test_file_check_extension_mismatch(tmp_path: Path) -> None:
    p = tmp_path / "photo.jpg"
    product(200, 260).save(p, format="PNG")
    img = QCImage.load(p, max_bytes=1 << 26, max_pixels=1 << 28, max_side=50_000)
    res = get_check("file")().run(img)
    assert res.verdict == "warn" and "PNG" in res.reason


def test_duplicates_exact_and_near(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    product(seed=1).save(a, quality=90)
    product(seed=1).resize((300, 400)).save(b, quality=70)
    (tmp_path / "c.jpg").write_bytes(a.read_bytes())
    product(seed=7, w=800, h=600).save(tmp_path / "d.jpg")
    prof = load_profile("general")
    prof.checks = {"duplicates": {}}
    rep = run_checks(
        [QCItem(str(p), p) for p in sorted(tmp_path.glob("*.jpg"))], prof, Settings(home=tmp_path)
    )
    verdicts = {Path(im.source).name: im.result("duplicates") for im in rep.images}
    assert verdicts["a.jpg"].verdict == "pass"
    assert verdicts["b.jpg"].details["kind"] == "near"
    assert verdicts["c.jpg"].details["kind"] == "exact"
    assert verdicts["d.jpg"].verdict == "pass"


def test_profiles_load_and_validate(tmp_path: Path) -> None:
    assert {"general", "marketplace-main-image", "marketplace-secondary"} <= set(builtin_profiles())
    main = load_profile("marketplace-main-image")
    assert main.checks["framing"]["min_fill_warn"] == 0.85 and "blur" in main.checks  # inherited
    assert set(main.needs_models) == {"text", "watermark", "watermark_visual", "nsfw"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("checks:\n  blurr: {}\n")
    with pytest.raises(ConfigError, match="unknown check 'blurr'"):
        load_profile(str(bad))
    bad.write_text("checks:\n  blur: {threshold: 3}\n")
    with pytest.raises(ConfigError, match="unknown parameter"):
        load_profile(str(bad))
    bad.write_text("check: {}\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_profile(str(bad))
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine.yaml").write_text(
        "extends: general\nchecks:\n  nsfw: null\n  blur: {warn: 0.6}\n"
    )
    mine = load_profile("mine", tmp_path)
    assert "nsfw" not in mine.checks and mine.checks["blur"]["warn"] == 0.6
    with pytest.raises(ConfigError, match="unknown profile"):
        load_profile("nope", tmp_path)


def test_bad_corpus_gets_file_verdicts_and_batch_goes_on(tmp_path: Path) -> None:
    expected = make_bad_corpus(tmp_path / "bad")
    good = product().save(tmp_path / "bad" / "good.jpg") or tmp_path / "bad" / "good.jpg"
    prof = load_profile("general")
    for name in ("text", "watermark", "nsfw"):
        prof.checks.pop(name)
    items = [QCItem(str(p), p) for p in sorted((tmp_path / "bad").iterdir())]
    rep = run_checks(items, prof, Settings(home=tmp_path))
    by = {Path(im.source).name: im for im in rep.images}
    for name, kind in expected.items():
        im = by[name]
        assert im.file_error and im.result("file").details["kind"] == kind, (name, im.to_dict())
    assert not by[good.name].file_error and by[good.name].result("blur") is not None


@pytest.mark.usefixtures("catalog_backend")  # on SQLite and on PostgreSQL
def test_cli_qc_gate_json_csv_report(tmp_path: Path) -> None:
    from catalens.cli import app

    d = tmp_path / "imgs"
    d.mkdir()
    product().save(d / "ok.jpg", quality=92)
    Image.fromarray(cv2.GaussianBlur(np.asarray(product(seed=3)), (0, 0), 5)).save(d / "blurry.jpg")
    prof = tmp_path / "pixels.yaml"
    prof.write_text("checks:\n  file: {}\n  blur: {}\n  resolution: {}\n")
    runner = CliRunner()
    home = tmp_path / "home"
    res = runner.invoke(
        app,
        [
            "--home",
            str(home),
            "qc",
            str(d),
            "--profile",
            str(prof),
            "--json",
            "--csv",
            str(tmp_path / "qc.csv"),
            "--report",
            str(tmp_path / "rep"),
        ],
    )
    assert res.exit_code == 1, res.output
    data = json.loads(res.stdout)
    verdicts = {Path(r["source"]).name: r["verdict"] for r in data["results"]}
    assert verdicts == {"ok.jpg": "pass", "blurry.jpg": "fail"}
    assert (tmp_path / "rep" / "index.html").read_text().count("data:image/jpeg;base64") >= 1
    assert "blur_score" in (tmp_path / "qc.csv").read_text()
    res = runner.invoke(app, ["--home", str(home), "qc", str(d / "ok.jpg"), "--profile", str(prof), "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["--home", str(home), "qc", str(d), "--profile", "nope"])
    assert res.exit_code == 2 and "unknown profile" in res.output
    from catalens.core import Catalog

    with Catalog.open(home) as cat:
        stored = cat.qc_results()
    assert {Path(r["source"]).name for r in stored} == {"ok.jpg", "blurry.jpg"}


@pytest.mark.usefixtures("catalog_backend")  # on SQLite and on PostgreSQL
def test_qc_all_uses_catalog_dedup(tmp_path: Path, fake_encoder) -> None:  # type: ignore[no-untyped-def]
    from catalens.core import Catalog

    d = tmp_path / "imgs"
    d.mkdir()
    product(seed=1).save(d / "a.png")
    product(seed=1).save(d / "a_copy.png", compress_level=1)  # same pixels, other bytes
    product(seed=5, w=800, h=600).save(d / "b.png")
    prof = tmp_path / "dups.yaml"
    prof.write_text("checks:\n  file: {}\n  duplicates: {verdict: fail}\n")
    with Catalog.open(tmp_path / "home") as cat:
        cat.ingest(d)
        rep = cat.qc(all_images=True, profile=str(prof))
    assert rep.duplicates_method == "search-dedup"
    dup = {Path(im.source).name: im.result("duplicates") for im in rep.images}
    assert sorted(n for n, r in dup.items() if r.verdict == "fail") == ["a_copy.png"] or sorted(
        n for n, r in dup.items() if r.verdict == "fail"
    ) == ["a.png"]
    assert dup["b.png"].verdict == "pass"


def test_promo_words_tolerate_ocr_typos() -> None:
    from catalens.quality.checks.text import PROMO_WORDS, _promo

    assert {"offer", "limited"} <= set(_promo(["MMITED OFEER"], PROMO_WORDS))
    assert "free" in _promo(["UY 1 GET 1 FREF"], PROMO_WORDS)
    assert _promo(["FLAT 40% OFF"], PROMO_WORDS)
    assert _promo(["adidas", "REDMI NOTE 8 PRO"], PROMO_WORDS) == []


@pytest.mark.slow
def test_ocr_reads_promo_overlay() -> None:
    pytest.importorskip("rapidocr")
    img = Image.new("RGB", (600, 800), "white")
    ImageDraw.Draw(img).rectangle([150, 200, 450, 650], fill=(30, 60, 120))
    from PIL import ImageFont

    font = ImageFont.load_default(size=56)
    ImageDraw.Draw(img).text((60, 40), "SALE 50% OFF", font=font, fill=(220, 20, 30))
    q = QCImage.from_pil(img)
    res = get_check("text")().run(q)
    assert res.verdict == "fail" and res.details["promo"] and res.regions
    assert get_check("text")().run(QCImage.from_pil(product())).verdict == "pass"


def test_promo_words_found_in_run_together_tokens() -> None:
    from catalens.quality.checks.text import PROMO_WORDS, _promo

    assert "price" in _promo(["BESTPRICE"], PROMO_WORDS)
    assert "shipping" in _promo(["FREESHIPPING"], PROMO_WORDS)
    assert _promo(["freedom wholesale"], PROMO_WORDS) == []  # 4-letter words only as whole tokens


def _box(text: str, conf: float = 0.95, contrast: float = 150.0, area: float = 0.01):  # type: ignore[no-untyped-def]
    from catalens.quality.checks.text import TextBox

    return TextBox(box=[0, 0, 10, 10], text=text, confidence=conf, contrast=contrast, area=area)


def test_watermark_boxes_tiled_words_and_faint() -> None:
    from catalens.quality.checks.text import WATERMARK_WORDS, watermark_boxes

    def why(texts: list[str], **kw):  # type: ignore[no-untyped-def]
        return [w for _, w in watermark_boxes([_box(t) for t in texts], words=WATERMARK_WORDS, **kw)]

    assert why(["PHOTO STUDIDHOTO STU"]) == ["tiled"]  # one run-together line of a tiled mark
    assert why(["SHOPNAME", "HOPNAM", "OSHOPNAME"]) == ["tiled"] * 3  # read differently each time
    assert why(["Reebok", "Reebok"]) == []  # a pair of shoes is not a tiled watermark
    assert why(["© SHOP", "www.example.net"]) == ["words", "words"]
    assert why(["JUST DO IT", "adidas"]) == []
    faint = [_box("HELLO", contrast=40.0, area=0.02)]
    assert watermark_boxes(faint, words=[], max_contrast=None) == []
    assert [w for _, w in watermark_boxes(faint, words=[], max_contrast=60.0)] == ["faint"]


def test_low_contrast_is_read_on_the_tonal_extremes() -> None:
    img = product()
    arr = np.asarray(img).astype(np.float32)
    half = Image.fromarray((arr.mean() + (arr - arr.mean()) * 0.5).astype(np.uint8))
    assert run_one("low_contrast", half).verdict != "pass"  # no true white or black left
    # a pale product on pure white, with a thin dark outline: a low-key photo, not a washed-out one
    pale = Image.new("RGB", (600, 800), "white")
    d = ImageDraw.Draw(pale)
    d.rectangle([120, 100, 480, 700], fill=(215, 210, 200), outline=(40, 40, 40), width=3)
    assert run_one("low_contrast", pale).verdict == "pass"
    assert run_one("overexposed", pale).verdict == "pass"


def test_soft_shading_with_a_sharp_outline_is_not_blur() -> None:
    """A glossy shoe-like shape: wide smooth shading gradients inside a crisp outline."""
    h, w = 600, 800
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    inside = ((xx - 400) / 300) ** 2 + ((yy - 300) / 160) ** 2 <= 1
    shade = 40 + 150 * np.clip((xx - 100) / 600, 0, 1) * np.clip((yy - 140) / 320, 0, 1)
    gray = np.where(inside, shade, 255).astype(np.uint8)
    img = Image.fromarray(np.dstack([gray] * 3))
    assert run_one("blur", img).verdict == "pass"
    blurred = Image.fromarray(cv2.GaussianBlur(np.asarray(img), (0, 0), 4))
    assert run_one("blur", blurred).verdict != "pass"


def test_long_motion_blur_is_read_by_edge_width() -> None:
    """A long linear motion turns edges into ramps with sharp corners: the Laplacian alone reads them as
    crisp, the edge width across the motion does not."""
    img = np.asarray(product().resize((384, 512), Image.LANCZOS))  # working-copy size: exact smear length
    k = np.zeros((13, 13), np.float32)
    k[6, :] = 1 / 13
    smeared = Image.fromarray(cv2.filter2D(img, -1, k))
    res = run_one("blur", smeared)
    assert res.verdict != "pass", res.reason
    assert run_one("blur", smeared, width_k=None).verdict == "pass"  # the width term is what reads it
    assert run_one("blur", Image.fromarray(img)).verdict == "pass"


def test_promo_compounds_without_a_space() -> None:
    from catalens.quality.checks.text import PROMO_WORDS, _promo

    assert "deal" in _promo(["HOTDEAL"], PROMO_WORDS)
    assert _promo(["FREESHIPPNG"], PROMO_WORDS)  # two words run together, one misread
    assert _promo(["ideal", "freedom", "NIKEAIR", "superstar"], PROMO_WORDS) == []


def test_watermark_words_with_ocr_misreads_and_fragmented_tiles() -> None:
    from catalens.quality.checks.text import WATERMARK_WORDS, watermark_boxes

    def why(texts: list[str], conf: float = 0.95):  # type: ignore[no-untyped-def]
        return [w for _, w in watermark_boxes([_box(t, conf=conf) for t in texts], words=WATERMARK_WORDS)]

    assert why(["AMPLE"]) == ["words"]  # the faint first letter lost
    assert why(["PROOP"], conf=0.8) == ["words"]  # an uncertain misread of PROOF
    assert why(["SIMPLE"], conf=0.99) == []  # a confident read of another word is not a misread
    assert why(["OOF", "ROO", "OOF", "ROOF"]) == ["tiled"] * 4  # 4 tiles read only in fragments
    assert why(["streetbasket ball"]) == []  # a 4-letter piece repeating by chance is not tiling


TEE = [(180, 120), (260, 120), (300, 160), (340, 120), (420, 120), (540, 260), (470, 320), (430, 280),
       (430, 760), (170, 760), (170, 280), (130, 320), (60, 260)]  # a T-shirt's outline, 600x800


def test_big_print_on_the_product_is_not_an_overlay() -> None:
    """General profile: large text printed on a garment (inside it, even in white letters) does not
    count towards the text area; the same box on the white margin does."""
    from catalens.quality.checks.text import TextBox

    img = Image.new("RGB", (600, 800), "white")
    d = ImageDraw.Draw(img)
    d.polygon(TEE, fill=(20, 20, 25))  # a black T-shirt on a white backdrop
    d.text((190, 330), "MAKE", fill=(250, 250, 250), font_size=70)  # white print (near-white, not backdrop)
    params = load_profile("general").checks["text"]

    def verdict(box: list[float], **over: object) -> str:
        q = QCImage.from_pil(img)
        q.__dict__["_detected"] = ([], None)  # no detector answer: the silhouette alone
        q.cache["ocr"] = [TextBox(box=box, text="MAKE", confidence=0.99, contrast=200, area=0.25)]
        return get_check("text")(**{**params, **over}).run(q).verdict

    assert verdict([180, 320, 420, 420]) == "pass"  # the print, inside the shirt
    assert verdict([20, 10, 580, 75]) != "pass"  # same area above the shirt: an overlay
    assert verdict([180, 320, 420, 420], exclude_print=False) != "pass"  # counting all text
    assert verdict([180, 320, 420, 420], print_rule="silhouette") == "pass"


def test_print_rule_product_tells_print_from_bands_badges_and_text_across_the_edge() -> None:
    """``print_rule: product``: text on the garment (even a white garment on white, where the detector's
    mask stands in for the silhouette, and on a grey backdrop) is print; a band across the photo, a
    badge on the garment and text across the garment's edge are overlays, and both areas are reported."""
    from catalens.quality.checks.text import TextBox
    from catalens.quality.checks.text_print import on_plate, text_on_product

    def shirt(backdrop: tuple[int, int, int] = (255, 255, 255), cloth=(20, 20, 25)) -> Image.Image:  # type: ignore[no-untyped-def]
        img = Image.new("RGB", (600, 800), backdrop)
        d = ImageDraw.Draw(img)
        d.rectangle([100, 80, 500, 760], fill=cloth)
        d.text((200, 430), "MAKE", fill=(250, 250, 250), font_size=60)  # printed letters
        return img

    def qc(img: Image.Image, mask: np.ndarray | None = None) -> QCImage:
        q = QCImage.from_pil(img)
        if mask is not None:  # the detector answers on the working copy
            h, w = q.rgb.shape[:2]
            mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        q.__dict__["_detected"] = ([], mask)  # the detector's answer (the model is tested in test_detect)
        return q

    garment = np.zeros((800, 600), bool)
    garment[80:761, 100:501] = True
    printed = [190, 420, 360, 500]
    assert text_on_product(qc(shirt()), printed)
    assert text_on_product(qc(shirt(backdrop=(170, 170, 170)), garment), printed)  # the mask off white
    assert not text_on_product(qc(shirt(backdrop=(170, 170, 170))), printed)  # no product found: overlay
    white = shirt(cloth=(252, 252, 250))
    ImageDraw.Draw(white).rectangle([100, 80, 500, 760], outline=(200, 200, 200))
    assert text_on_product(qc(white, garment), printed)
    band = shirt()
    ImageDraw.Draw(band).rectangle([0, 600, 600, 660], fill=(200, 20, 40))
    ImageDraw.Draw(band).text((180, 610), "SALE", fill=(255, 255, 255), font_size=40)
    assert on_plate(qc(band), [170, 600, 300, 660]) and not text_on_product(qc(band), [170, 600, 300, 660])
    badge = shirt()
    ImageDraw.Draw(badge).rounded_rectangle([220, 500, 420, 560], radius=12, fill=(20, 60, 160))
    ImageDraw.Draw(badge).text((240, 508), "NEW", fill=(255, 230, 0), font_size=40)
    assert not text_on_product(qc(badge), [232, 505, 410, 555])
    edge = shirt()
    ImageDraw.Draw(edge).text((30, 200), "HOT", fill=(250, 250, 250), font_size=60, stroke_width=3, stroke_fill=(0, 0, 0))
    assert not text_on_product(qc(edge), [25, 195, 160, 270])  # across the garment's left edge
    params = {"warn": 0.0005, "fail": 0.003, "exclude_print": True, "print_rule": "product"}
    q = qc(band)
    q.cache["ocr"] = [
        TextBox(box=printed, text="MAKE", confidence=0.99, contrast=200, area=0.03),
        TextBox(box=[170, 600, 300, 660], text="SALE", confidence=0.99, contrast=200, area=0.016),
    ]
    res = get_check("text")(**params).run(q)
    assert res.verdict == "fail" and res.details["print"] == ["MAKE"]
    assert res.details["print_area"] == 0.03 and res.details["overlay_area"] == 0.016
    with pytest.raises(ConfigError, match="print_rule must be one of"):
        get_check("text")(print_rule="mask")


def test_even_pad_is_a_border_even_where_the_photo_edge_matches_its_colour() -> None:
    """A grey pad around a photo whose own edges are a similar grey: the transition test alone misses
    it; four strips of one width and colour do not happen by chance. Even white margins around a
    studio product stay a background."""
    rng = np.random.default_rng(3)
    photo = np.clip(rng.normal(95, 10, (400, 300, 3)), 0, 255).astype(np.uint8)  # a dark grey floor
    photo[120:300, 80:220] = (200, 60, 50)  # the garment
    pad = Image.new("RGB", (300 + 2 * 12, 400 + 2 * 12), (90, 90, 90))
    pad.paste(Image.fromarray(photo), (12, 12))
    assert run_one("border", pad).verdict != "pass"
    white = Image.new("RGB", (500, 500), "white")
    ImageDraw.Draw(white).rectangle([60, 60, 440, 440], fill=(30, 60, 120))  # equal 60 px margins
    assert run_one("border", white).verdict == "pass"


def test_builtin_profiles_only_warn_on_grayscale() -> None:
    """A colour photo of a white / grey / silver product has no chroma either: warn, never fail."""
    from catalens.quality.profiles import load_profile

    gray = product().convert("L").convert("RGB")
    for name in ("general", "marketplace-main-image"):
        check = next(c for c in load_profile(name).instantiate() if c.name == "grayscale")
        assert check.run(QCImage.from_pil(gray)).verdict == "warn", name


def test_a_check_that_raises_fails_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A check that cannot run gives the verdict ``error``: it fails ``--fail-on error`` (the CI gate),
    and the JSON, the CSV and the HTML report show its reason."""
    from catalens.cli import app

    d = tmp_path / "imgs"
    d.mkdir()
    product().save(d / "ok.jpg", quality=92)
    blur = get_check("blur")

    def broken(self, img):  # type: ignore[no-untyped-def]
        raise RuntimeError("model file is corrupt")

    monkeypatch.setattr(blur, "run", broken)
    prof = tmp_path / "pixels.yaml"
    prof.write_text("checks:\n  file: {}\n  blur: {}\n  resolution: {}\n")
    args = ["--home", str(tmp_path / "home"), "qc", str(d), "--profile", str(prof), "--no-store"]
    res = CliRunner().invoke(
        app, [*args, "--json", "--csv", str(tmp_path / "qc.csv"), "--report", str(tmp_path / "rep")]
    )
    assert res.exit_code == 1, res.output  # --fail-on error is the default gate
    data = json.loads(res.stdout)
    (image,) = data["results"]
    assert image["verdict"] == "error" and image["issues"] == ["blur"]
    (blur_res,) = [r for r in image["results"] if r["check"] == "blur"]
    assert blur_res["verdict"] == "error"
    assert blur_res["reason"] == "check could not run: RuntimeError: model file is corrupt"
    assert data["counts"]["error"] == 1 and data["counts"]["pass"] == 0
    csv_text = (tmp_path / "qc.csv").read_text()
    assert "blur: check could not run: RuntimeError: model file is corrupt" in csv_text
    assert ",error," in csv_text
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "check could not run: RuntimeError: model file is corrupt" in page and "error: 1" in page
    for gate, code in [("error", 1), ("warn", 1), ("never", 0)]:
        res = CliRunner().invoke(app, [*args, "-q", "--fail-on", gate])
        assert res.exit_code == code, (gate, res.output)
        assert gate != "error" or "1 error" in res.output


def test_text_word_lists_live_in_a_data_file(tmp_path: Path) -> None:
    """The OCR checks' word lists are packaged data (with where they come from), loaded and checked."""
    from catalens.errors import ConfigError
    from catalens.quality.checks import text_words as text
    from catalens.quality.tree_models import data_dir

    packaged = data_dir() / text.WORDS_FILE
    assert "Where they come from" in packaged.read_text(encoding="utf-8")
    lists = text.load_word_lists()
    assert lists["promo_words"] == text.PROMO_WORDS and "sale" in lists["promo_words"]
    assert lists["watermark_words"] == text.WATERMARK_WORDS and "©" in lists["watermark_words"]
    bad = tmp_path / "words.yaml"
    bad.write_text("promo_words: [sale]\n")
    with pytest.raises(ConfigError, match=r"words\.yaml: needs the lists"):
        text.load_word_lists(bad)
    bad.write_text(
        "promo_words: []\npromo_patterns: ['(unclosed']\npromo_modifiers: []\nwatermark_words: []\n"
    )
    with pytest.raises(ConfigError, match="not a regular expression"):
        text.load_word_lists(bad)
    bad.write_text("promo_words: [\n")
    with pytest.raises(ConfigError, match="cannot read"):
        text.load_word_lists(bad)
