"""The see-through overlay (watermark) detector: synthetic marks, the packaged ONNX graph, the
``watermark_visual`` check, the OCR check's gate and the trainer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_quality import product

from catalens.errors import ConfigError
from catalens.quality.checks.text import TextBox
from catalens.quality.cnn_models import (
    LANDSCAPE,
    NETS,
    PORTRAIT,
    data_dir,
    input_size,
    load_net,
    overlay_probability,
    prepare,
)
from catalens.quality.context import QCImage
from catalens.quality.profiles import load_profile
from catalens.quality.registry import get_check
from catalens.quality.training.synth_marks import BENCH_FONTS, fonts, opaque_print, see_through_mark


def _faces() -> list[str]:
    try:
        return fonts()
    except RuntimeError as exc:  # a machine without TrueType fonts (.ci/run installs them)
        pytest.skip(str(exc))


def test_synthetic_marks_are_visible_seeded_and_avoid_the_benchmark_fonts() -> None:
    faces = _faces()
    assert faces and not any(f.rsplit("/", 1)[-1] in BENCH_FONTS for f in faces)
    img = product(300, 400, seed=3)
    a, how = see_through_mark(img, np.random.default_rng(7), faces)
    b, how_b = see_through_mark(img, np.random.default_rng(7), faces)
    assert a.size == img.size and how == how_b and np.array_equal(np.asarray(a), np.asarray(b))
    alpha = float(how.split("alpha=")[1].split(",")[0])
    assert 0.15 <= alpha <= 0.6
    diff = np.abs(np.asarray(a, np.int16) - np.asarray(img, np.int16)).max(axis=2)
    assert (diff > 12).mean() > 0.001  # a mark that can be seen
    printed = opaque_print(img, np.random.default_rng(7), faces)
    assert printed.size == img.size and not np.array_equal(np.asarray(printed), np.asarray(img))


def test_input_size_follows_orientation_and_scales_to_unit_range() -> None:
    assert input_size(900, 1200) == PORTRAIT and input_size(1000, 1000) == PORTRAIT
    assert input_size(1200, 800) == LANDSCAPE
    x = prepare(np.full((50, 80, 3), 255, np.uint8))  # a tiny landscape thumbnail is upscaled
    assert x.shape == (1, 3, LANDSCAPE[1], LANDSCAPE[0]) and x.dtype == np.float32
    assert np.allclose(x, 1.0)


def test_packaged_detector_scores_a_tiled_see_through_mark_above_the_clean_photo() -> None:
    _, meta = load_net("overlay")
    assert meta["version"] == NETS["overlay"].version and 0 < meta["threshold"] < 1
    from PIL import ImageDraw, ImageFont

    img = product(600, 800, seed=5)
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    font = ImageFont.truetype(_faces()[0], 40)
    for y in range(40, 800, 110):
        for x in range(-60, 600, 260):
            d.text((x + (y // 110) * 40, y), "PREVIEW", font=font, fill=(90, 90, 90, 120))
    marked = Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")
    p_clean = overlay_probability(QCImage.from_pil(img))
    p_marked = overlay_probability(QCImage.from_pil(marked))
    assert 0.0 <= p_clean <= 1.0 and 0.0 <= p_marked <= 1.0
    assert p_marked > p_clean + 0.3


def test_watermark_visual_check_grades_the_probability_and_is_in_the_profiles() -> None:
    q = QCImage.from_pil(product(300, 400))
    q.cache["overlay:"] = 0.95
    res = get_check("watermark_visual")(warn=0.9, fail=0.97).run(q)
    assert res.verdict == "warn" and res.score == 0.95 and "looks watermarked" in res.reason
    q.cache["overlay:"] = 0.2
    assert get_check("watermark_visual")().run(q).verdict == "pass"
    assert get_check("watermark_visual").scope == "model"
    for name in ("general", "marketplace-main-image", "marketplace-secondary"):
        assert "watermark_visual" in load_profile(name).checks


def test_the_gate_skips_the_second_look_on_photos_the_detector_finds_clean() -> None:
    img = Image.new("RGB", (600, 800), (200, 30, 40))
    views = ["max_channel", "highpass_level30"]
    mark = [TextBox([100, 300, 500, 400], "SAMPLE", 0.97, 60.0, 0.08)]

    def prepared(prob: float) -> QCImage:
        q = QCImage.from_pil(img)
        q.cache["ocr"] = []
        q.cache["overlay:"] = prob
        q.cache[f"ocr_mark:{views[0]}"] = list(mark)
        return q

    check = get_check("watermark")(warn=0.01, fail=0.02, second_look=views, second_look_gate=0.05)
    low = check.run(prepared(0.01))
    assert low.verdict == "pass" and "skipped" in low.details["second_look"]
    high = check.run(prepared(0.5))
    assert high.verdict == "fail" and high.details["view"] == views[0] and "second_look" not in high.details


def test_detector_refuses_another_version_and_names_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="overlay.onnx"):
        load_net("overlay", tmp_path)
    shutil.copy(data_dir() / "overlay.onnx", tmp_path / "overlay.onnx")
    meta = json.loads((data_dir() / "overlay.json").read_text())
    (tmp_path / "overlay.json").write_text(json.dumps({**meta, "version": "overlay-v0"}))
    with pytest.raises(ConfigError, match="retrain"):
        load_net("overlay", tmp_path)


def test_trainer_writes_a_detector_that_loads_and_scores(tmp_path: Path) -> None:
    from catalens.quality.training.cnn_fit import train
    from catalens.quality.training.overlay_cnn import SPEC, examples_from

    _faces()
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(5):
        product(240 + 40 * (i % 2), 320, seed=i).save(photos / f"p{i}.jpg", quality=90)
    Image.new("RGB", (400, 300), (120, 160, 200)).save(photos / "landscape.jpg")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    paths = sorted(photos.iterdir())

    def fit(paths: list[Path], out: str):  # type: ignore[no-untyped-def]
        return train(
            SPEC,
            paths,
            tmp_path / out,
            examples_from,
            positive="mark",
            task="t",
            epochs=1,
            cache=tmp_path / "maps.npz",
        )

    meta = fit(paths, "model")
    assert meta["training"]["photos"] == len(paths) and meta["training"]["examples"] == 18  # 6 readable x 3
    assert meta["onnx_max_abs_error"] < 1e-3 and (tmp_path / "maps.npz").is_file()
    q = QCImage.from_pil(product(300, 400))
    p = overlay_probability(q, tmp_path / "model")
    assert 0.0 <= p <= 1.0
    # a second fit reads the cached maps; a cache of other photos is refused
    again = fit(paths, "model2")
    assert again["seconds"]["maps"] < meta["seconds"]["maps"]
    with pytest.raises(SystemExit, match="other photos"):
        fit(paths[:-1], "model3")


def test_trainer_command_lines_refuse_an_empty_folder(tmp_path: Path) -> None:
    from catalens.quality.training import exposure_cnn, overlay_cnn

    for trainer in (overlay_cnn, exposure_cnn):
        with pytest.raises(SystemExit, match="no photos"):
            trainer.main([str(tmp_path), "--out", str(tmp_path / "out")])
