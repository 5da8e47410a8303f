"""Blur verdicts point at the blurred area (quality ``blur`` check regions, drawn by explain-quality)."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from catalens.quality.checks.sharpness import BlurCheck, blur_regions
from catalens.quality.context import QCImage


def _textured(w: int = 400, h: int = 300, seed: int = 0) -> np.ndarray:
    """A busy, crisp scene: random rectangles of random grey levels (sharp edges everywhere)."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 128, np.uint8)
    for _ in range(300):
        x, y = int(rng.integers(0, w - 10)), int(rng.integers(0, h - 10))
        cv2.rectangle(
            img,
            (x, y),
            (x + int(rng.integers(4, 30)), y + int(rng.integers(4, 30))),
            int(rng.integers(0, 255)),
            -1,
        )
    return img


def test_blur_regions_cover_the_blurred_half_only() -> None:
    gray = _textured()
    soft = cv2.GaussianBlur(gray, (0, 0), 4)
    gray[:, 200:] = soft[:, 200:]
    boxes = blur_regions(gray, None, limit=0.42, cell=50)
    assert boxes, "the blurred half must give a region"
    for x0, y0, x1, y1 in boxes:
        assert x0 >= 150 and x1 == 400 and y1 > y0  # inside the blurred half (one cell of slack)
    covered = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes)
    assert covered >= 0.7 * 200 * 300


def test_sharp_image_has_no_blur_regions() -> None:
    assert blur_regions(_textured(), None, limit=0.42, cell=50) == []


def test_blur_check_returns_regions_in_full_resolution_pixels() -> None:
    gray = cv2.GaussianBlur(_textured(1200, 900), (0, 0), 8)  # working copy is 512 px wide: scaled back
    img = QCImage.from_pil(Image.fromarray(np.dstack([gray] * 3)))
    res = BlurCheck().run(img)
    assert res.verdict == "fail" and res.regions
    x0, y0, x1, y1 = (
        max(b[i] for b in res.regions) if i > 1 else min(b[i] for b in res.regions) for i in range(4)
    )
    assert x1 > 600 and y1 > 450 and 0 <= x0 < x1 <= 1200 and 0 <= y0 < y1 <= 900


def test_sharp_pass_has_no_regions() -> None:
    img = QCImage.from_pil(Image.fromarray(np.dstack([_textured()] * 3)))
    res = BlurCheck().run(img)
    assert res.verdict == "pass" and res.regions == []


def test_explain_quality_draws_blur_regions(tmp_path) -> None:
    """explain-quality on a blurred photo: the blur verdict has regions and they are drawn."""
    import json

    from typer.testing import CliRunner

    from catalens.cli import app

    path = tmp_path / "soft.png"
    gray = cv2.GaussianBlur(_textured(), (0, 0), 5)
    Image.fromarray(np.dstack([gray] * 3)).save(path)
    out = tmp_path / "soft.qc.png"
    r = CliRunner().invoke(
        app, ["--home", str(tmp_path / "home"), "explain", "quality", str(path), "--out", str(out), "--json"]
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    blur = next(x for x in data["results"] if x["check"] == "blur")
    assert blur["verdict"] != "pass" and blur["regions"] and "blur" in data["drawn"]


def test_blur_regions_find_motion_blur_by_edge_width() -> None:
    """A horizontally smeared half is boxed, the sharp half is not (the cells are measured like the
    whole image, edge width included)."""
    gray = _textured(seed=3)
    kernel = np.zeros((1, 15), np.float32)
    kernel[0, :] = 1 / 15  # 15 px horizontal motion
    moved = cv2.filter2D(gray, -1, kernel, borderType=cv2.BORDER_REFLECT)
    gray[:, :200] = moved[:, :200]
    boxes = blur_regions(gray, None, limit=0.42, cell=50)
    assert boxes
    for x0, _, x1, _ in boxes:
        assert x0 == 0 and x1 <= 250  # the moved half (one cell of slack)
