"""Watermark check: slanted text lines, texture reads, and the second look at see-through marks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from catalens.errors import ConfigError
from catalens.quality.checks.text import MARK_VIEWS, WATERMARK_WORDS, TextBox, watermark_boxes
from catalens.quality.checks.text_ocr import _rotate
from catalens.quality.context import QCImage
from catalens.quality.registry import get_check


def _line(text: str, cx: float, cy: float, length: float, height: float, angle: float, conf: float = 0.99):
    """A TextBox whose quad is a ``length`` x ``height`` line centred at (cx, cy), ``angle`` degrees
    above the horizontal (image y grows downwards)."""
    a = math.radians(angle)
    d = np.array([math.cos(a), -math.sin(a)])  # along the line
    n = np.array([math.sin(a), math.cos(a)])  # down across it
    c = np.array([cx, cy])
    q = [c - d * length / 2 - n * height / 2, c + d * length / 2 - n * height / 2]
    q += [q[1] + n * height, q[0] + n * height]
    xs, ys = [p[0] for p in q], [p[1] for p in q]
    box = [min(xs), min(ys), max(xs), max(ys)]
    area = (box[2] - box[0]) * (box[3] - box[1]) / (600 * 800)
    return TextBox(box, text, conf, 150.0, area, quad=[[float(x), float(y)] for x, y in q])


def _why(boxes: list[TextBox], **kw) -> list[str]:  # type: ignore[no-untyped-def]
    return [w for _, w in watermark_boxes(boxes, words=WATERMARK_WORDS, short_side=600, **kw)]


def test_a_slanted_line_across_the_photo_is_a_mark_a_tilted_logo_is_not() -> None:
    assert _why([_line("SHOPNAME", 300, 400, 360, 60, 30)]) == ["oblique"]  # 60% of the short side
    assert _why([_line("SHOPNAME", 300, 400, 360, 60, -35)]) == ["oblique"]  # falling diagonal too
    assert _why([_line("Reebok", 300, 400, 90, 25, 42)]) == []  # a logo on a tilted shoe: short
    assert _why([_line("JUST DO IT", 300, 400, 420, 60, 0)]) == []  # level print: not by geometry
    assert _why([_line("SHOPNAME", 300, 400, 360, 60, 88)]) == []  # vertical text (a sleeve)
    assert _why([_line("SHOPNAME", 300, 400, 360, 60, 30)], oblique_span=None) == []  # switched off
    assert _why([_line("PUMA", 300, 400, 300, 90, 25)]) == []  # a big 4-letter logo: too little text
    assert _why([_line("the Skn", 300, 400, 300, 90, -15)]) == []  # print on a garment laid askew
    assert _why([_line("SHOPNAME", 300, 400, 360, 60, 30, conf=0.6)]) == []  # an uncertain read
    # one slanted line that OCR split into two pieces: their span together is what counts
    d = np.array([math.cos(math.radians(28)), -math.sin(math.radians(28))]) * 85
    pieces = [
        _line("water", *(np.array([300, 400]) - d), 150, 40, 28),
        _line("kcom", *(np.array([300, 400]) + d), 140, 40, 27),
    ]
    assert _why(pieces) == ["oblique", "oblique"]
    assert _why(pieces[:1]) == []
    # two short slanted words that are not on one line stay apart
    apart = [_line("water", 200, 300, 150, 40, 28), _line("kcom", 420, 600, 140, 40, 28)]
    assert _why(apart) == []


def test_a_periodic_texture_read_as_one_repeated_letter_is_not_a_mark() -> None:
    box = TextBox([0, 0, 100, 30], "wwwwww", 0.9, 150.0, 0.02)
    assert _why([box]) == []  # "www" would otherwise be a URL
    assert _why([TextBox([0, 0, 100, 30], "www.shop.net", 0.9, 150.0, 0.02)]) == ["words"]


def test_second_look_reads_views_in_order_until_one_finds_a_mark() -> None:
    img = Image.new("RGB", (600, 800), (200, 30, 40))
    q = QCImage.from_pil(img)
    views = ["max_channel", "highpass", "min_channel"]
    q.cache["ocr"] = [
        TextBox([100, 300, 500, 400], "adidas", 0.99, 150.0, 0.08)
    ]  # no mark in the shared read
    q.cache[f"ocr_mark:{views[0]}"] = []
    q.cache[f"ocr_mark:{views[1]}"] = [TextBox([100, 300, 500, 400], "SAMPLE", 0.97, 60.0, 0.08)]
    res = get_check("watermark")(warn=0.01, fail=0.02, second_look=views).run(q)
    assert res.verdict == "fail" and res.details["view"] == views[1] and res.details["why"] == ["words"]
    assert all(f"ocr_mark:{v}" not in q.cache for v in views[2:])  # stopped at the first view that scored
    # without the second look the same image passes, and no view is read
    q2 = QCImage.from_pil(img)
    q2.cache["ocr"] = list(q.cache["ocr"])
    res2 = get_check("watermark")(warn=0.01, fail=0.02, second_look=[]).run(q2)
    assert res2.verdict == "pass" and res2.details["view"] == "ocr"
    assert not any(k.startswith("ocr_mark:") for k in q2.cache)
    # a mark found by the shared read: no second look at all
    q3 = QCImage.from_pil(img)
    q3.cache["ocr"] = [TextBox([100, 300, 500, 400], "© PHOTO STUDIO", 0.97, 60.0, 0.08)]
    assert get_check("watermark")(warn=0.01, fail=0.02).run(q3).verdict == "fail"
    assert not any(k.startswith("ocr_mark:") for k in q3.cache)
    with pytest.raises(ConfigError, match="second_look"):
        get_check("watermark")(second_look=["max_channel", "sepia"])


def test_channel_views_keep_a_see_through_mark_that_luma_flattens() -> None:
    """A 35% black mark scales every channel by 0.65, so its step is 35% of the level it darkens: on a
    saturated red or green product the brightest channel is 2-3x the luma, and so is the mark's step
    Likewise a white mark over dark colours shows most in the darkest channel."""
    from catalens.quality.checks.text_ocr import _clahe

    rng = np.random.default_rng(0)
    cells = rng.integers(0, 2, (16, 12))
    base = np.where(cells[..., None], np.array([230, 20, 30]), np.array([20, 160, 40]))
    rgb = np.kron(base, np.ones((40, 40, 1))).astype(np.float32)  # 640 x 480 colour blocks
    mark = np.zeros(rgb.shape[:2], bool)
    mark[280:360, 60:420] = True

    def step(view, over: np.ndarray) -> float:  # type: ignore[no-untyped-def]
        shown, back = view(over)
        plain, _ = view(rgb.astype(np.uint8))
        assert back is None and shown.shape == over.shape[:2]
        return float(np.abs(shown[mark].astype(float) - plain[mark]).mean())

    def luma(x: np.ndarray) -> np.ndarray:
        return _clahe((x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8))

    dark = rgb.copy()
    dark[mark] *= 0.65
    dark = dark.astype(np.uint8)
    assert step(MARK_VIEWS["max_channel"].make, dark) > 1.5 * step(lambda x: (luma(x), None), dark)
    light = rgb.copy()
    light[mark] += 0.35 * (255 - light[mark])
    light = light.astype(np.uint8)
    assert step(MARK_VIEWS["min_channel"].make, light) > 1.3 * step(lambda x: (luma(x), None), light)


def test_rotated_view_maps_back_onto_the_image() -> None:
    gray = np.zeros((640, 480), np.uint8)
    gray[300:340, 100:380] = 255
    rot, back = _rotate(gray, -30.0)
    ys, xs = np.nonzero(rot > 128)
    pts = np.stack([xs, ys], 1).astype(np.float64) @ back[:, :2].T + back[:, 2]
    assert 95 <= pts[:, 0].min() and pts[:, 0].max() <= 385
    assert 295 <= pts[:, 1].min() and pts[:, 1].max() <= 345


def _shirt(colour: tuple[int, int, int]) -> Image.Image:
    """A plain saturated shirt-like shape with a few white buttons, on white."""
    img = Image.new("RGB", (600, 800), "white")
    d = ImageDraw.Draw(img)
    for box in ([120, 100, 480, 720], [40, 100, 120, 300], [480, 100, 560, 300]):
        d.rectangle(box, fill=colour)
    for i in range(6):
        d.ellipse([160 + 50 * i, 500, 190 + 50 * i, 530], outline=(250, 250, 250), width=3)
    return img


@pytest.mark.slow
def test_ocr_second_look_reads_a_see_through_diagonal_mark() -> None:
    """End to end with the packaged OCR: a 40% black brand line laid rising across a red shirt. In
    CLAHE luma the mark over the red all but vanishes; the second look reads it, and the slanted line
    across the photo is what makes it a mark (no watermark word in it). The plain shirt passes."""
    pytest.importorskip("rapidocr")
    clean = _shirt((200, 30, 40))
    layer = Image.new("RGBA", (900, 900), (0, 0, 0, 0))
    ImageDraw.Draw(layer).text(
        (150, 400), "MY BRAND CO", font=ImageFont.load_default(size=80), fill=(0, 0, 0, 102)
    )
    layer = layer.rotate(30, resample=Image.BICUBIC).crop((150, 50, 750, 850))
    marked = Image.alpha_composite(clean.convert("RGBA"), layer).convert("RGB")
    chk = get_check("watermark")(warn=0.01, fail=0.02)
    res = chk.run(QCImage.from_pil(marked))
    assert res.verdict == "fail", res.reason
    assert res.details["view"] != "ocr" and "oblique" in res.details["why"], res.reason
    x0, y0, x1, y1 = res.regions[0]
    assert 0 <= x0 < x1 <= 600 and 0 <= y0 < y1 <= 800 and (x1 - x0) > 300  # mapped back onto the photo
    assert chk.run(QCImage.from_pil(clean)).verdict == "pass"
    no_second = get_check("watermark")(warn=0.01, fail=0.02, second_look=[])
    assert no_second.run(QCImage.from_pil(marked)).verdict == "pass"  # the shared read alone misses it


def _on_white_with_bag() -> QCImage:
    """A plain dark bag (x 150..450, y 200..650) on a white backdrop, 600x800."""
    img = Image.new("RGB", (600, 800), (255, 255, 255))
    ImageDraw.Draw(img).rectangle([150, 200, 450, 650], fill=(70, 40, 90))
    return QCImage.from_pil(img)


def _tile(text: str, x: float, y: float) -> TextBox:
    return TextBox([x, y, x + 120, y + 30], text, 0.95, 80.0, 120 * 30 / (600 * 800))


MONOGRAM = [_tile(t, x, y) for t, x, y in [("LOREM VIT", 170, 300), ("LOREM VI", 300, 360), ("S LOREM", 170, 420), ("REM VITA", 300, 480)]]  # fmt: skip
TILED = [_tile("KAVERU", x, y) for y in (40, 260, 480, 720) for x in (20, 230, 440)]


def test_repeated_print_inside_the_product_is_not_tiled_a_mark_over_the_whole_photo_is() -> None:
    on_bag = lambda b: b.box[0] >= 150 and b.box[2] <= 450 and b.box[1] >= 200 and b.box[3] <= 650  # noqa: E731
    assert _why(MONOGRAM) == ["tiled"] * 4  # without the product test: a monogram reads as tiled
    assert _why(MONOGRAM, on_product=on_bag) == []
    assert _why([_tile("adidas", 200, 400)], on_product=on_bag) == []  # one logo on the product
    assert _why(TILED, on_product=on_bag) == ["tiled"] * len(TILED)  # over backdrop and product alike
    # on_product restricts "tiled" only: a watermark word on the product is still a mark
    assert _why([_tile("SAMPLE", 200, 400)], on_product=on_bag) == ["words"]


def test_watermark_check_calls_a_monogram_on_the_product_print_and_a_tiled_mark_a_mark() -> None:
    check = get_check("watermark")(warn=0.0005, fail=0.0005, second_look=[])
    q = _on_white_with_bag()
    q.cache["ocr"] = list(MONOGRAM)
    res = check.run(q)
    assert res.verdict == "pass", res.reason
    q = _on_white_with_bag()
    q.cache["ocr"] = list(TILED)
    res = check.run(q)
    assert res.verdict == "fail" and set(res.details["why"]) == {"tiled"}
    # with the rule off the monogram is a tiled mark again
    q = _on_white_with_bag()
    q.cache["ocr"] = list(MONOGRAM)
    off = get_check("watermark")(warn=0.0005, fail=0.0005, second_look=[], print_not_tiled=False).run(q)
    assert off.verdict == "fail"
    # a see-through mark that shows on the product only (white on white elsewhere) stays a mark when the
    # overlay detector sees one: here the limit is set below any probability
    q = _on_white_with_bag()
    q.cache["ocr"] = list(MONOGRAM)
    seen = get_check("watermark")(warn=0.0005, fail=0.0005, second_look=[], print_overlay_max=0.0).run(q)
    assert seen.verdict == "fail"
