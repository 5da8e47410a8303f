"""The learned over-exposure check: features, the packaged model, training and export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_dataset
from PIL import Image, ImageDraw
from test_quality import product, run_one

from catalens.errors import ConfigError
from catalens.quality.context import QCImage
from catalens.quality.exposure_features import FEATURE_NAMES, FEATURE_VERSION, exposure_features
from catalens.quality.training.exposure_trees import change_exposure, choose_threshold
from catalens.quality.tree_models import load_learned


def photo(seed: int, w: int = 480, h: int = 640) -> Image.Image:
    """A shaded garment-like shape with folds and dark seams on white, with sensor noise (closer to a
    real packshot than flat fills: smooth tones from shadow to highlight)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 200, 3).astype(np.float32)
    shade = 0.55 + 0.45 * np.cos(xx / w * np.pi * rng.uniform(2, 5)) * np.sin(yy / h * np.pi * 1.5)
    arr = np.clip(base[None, None, :] * (0.6 + 0.6 * shade[..., None]), 0, 255)
    mask = (np.abs(xx - w / 2) < w * 0.32) & (yy > h * 0.1) & (yy < h * 0.92)
    out = np.full((h, w, 3), 255.0, np.float32)
    out[mask] = arr[mask]
    img = Image.fromarray(out.astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(4):
        x = int(rng.uniform(0.25, 0.75) * w)
        d.line([x, int(0.12 * h), x + int(rng.uniform(-20, 20)), int(0.9 * h)], fill=(15, 15, 20), width=3)
    # sensor noise: a photograph is never noise-free (the exposure CNN knows photographs only)
    noisy = np.asarray(img, np.float32) + rng.normal(0.0, 4.0, (h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def test_change_exposure_is_linear_light_with_clipping() -> None:
    arr = np.array([[[0, 64, 128], [200, 250, 255]]], np.uint8)
    assert np.array_equal(change_exposure(arr, 0.0), arr)
    up = change_exposure(arr, 2.0)
    assert (up >= arr).all() and up[0, 0, 0] == 0 and up[0, 1].tolist() == [255, 255, 255]
    assert 120 < int(up[0, 0, 1]) < 130  # sRGB 64 is linear 0.051; x4 = 0.205 -> sRGB ~125
    down = change_exposure(arr, -1.0)
    assert (down <= arr).all()


def test_features_are_size_independent_and_named() -> None:
    img = photo(1)
    a = exposure_features(QCImage.from_pil(img))
    b = exposure_features(QCImage.from_pil(img.resize((240, 320), Image.LANCZOS)))
    assert a.shape == (len(FEATURE_NAMES),) and a.dtype == np.float32
    # the tone histograms and percentiles are shares, not pixel counts (gradients and the colour of
    # the few brightest pixels do change with the size)
    tonal = np.array(["hist" in n or "luma_p" in n or "below" in n for n in FEATURE_NAMES])
    assert tonal.sum() > 50 and np.abs(a - b)[tonal].max() < 0.05
    blank = exposure_features(QCImage.from_pil(Image.new("RGB", (64, 64), "white")))
    assert np.isfinite(blank).all()


def test_packaged_model_matches_the_code() -> None:
    model = load_learned("overexposure", feature_version=FEATURE_VERSION)
    assert model.meta["feature_names"] == list(FEATURE_NAMES)
    assert 0 < model.meta["threshold"] < 1
    probs = model.predict(np.zeros((3, len(FEATURE_NAMES)), np.float32))
    assert probs.shape == (3,) and ((probs >= 0) & (probs <= 1)).all()
    with pytest.raises(ConfigError, match="expects"):
        model.predict(np.zeros((1, 5), np.float32))


def test_overexposed_copies_score_higher_than_originals() -> None:
    clean, over = [], []
    for seed in range(6):
        arr = np.asarray(photo(seed))
        clean.append(run_one("overexposed", Image.fromarray(arr)))
        over.append(run_one("overexposed", Image.fromarray(change_exposure(arr, 2.5))))
    # synthetic drawings are far from the photos the model learned from: loose bounds here, the
    # real-photo test below is the strict one
    assert sum(r.verdict == "pass" for r in clean) >= 5, [r.reason for r in clean]
    assert sum(r.verdict != "pass" for r in over) >= 4, [r.reason for r in over]
    assert np.mean([r.score for r in over]) > np.mean([r.score for r in clean]) + 0.3
    assert "luma" in over[0].reason and "clipped_share_of_content" in over[0].details
    white = run_one("overexposed", Image.new("RGB", (300, 400), "white"))
    assert white.score == 1.0 and white.verdict == "fail"
    assert run_one("overexposed", product()).verdict == "pass"


def test_model_feature_version_mismatch_is_refused(tmp_path: Path) -> None:
    from catalens.quality.tree_models import data_dir

    (tmp_path / "overexposure.npz").write_bytes((data_dir() / "overexposure.npz").read_bytes())
    meta = json.loads((data_dir() / "overexposure.json").read_text())
    meta["feature_version"] = "exposure-f0"
    (tmp_path / "overexposure.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="retrain"):
        load_learned("overexposure", feature_version=FEATURE_VERSION, folder=tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        load_learned("nothing", feature_version=FEATURE_VERSION, folder=tmp_path)


def test_choose_threshold_bounds_the_false_positive_rate() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.95, 0.05, 0.6])
    ev = np.array([0, 0, 0, 3, 2, 3, 0, 0], np.float32)
    thr = choose_threshold(scores, ev, 0.25)  # 5 clean rows: at most 1 flagged
    assert ((scores >= thr) & (ev == 0)).sum() == 1  # only the clean 0.6
    assert 0.3 < thr <= 0.6 and (scores[ev > 0] >= thr).all()


def test_training_writes_a_model_equal_to_sklearn(tmp_path: Path) -> None:
    from catalens.quality.training.exposure_trees import build_set, fit, train

    for i in range(10):
        photo(i, 120, 160).save(tmp_path / f"p{i}.jpg", quality=92)
    paths = sorted(tmp_path.glob("*.jpg"))
    meta = train(paths, tmp_path / "out", seed=1, cache=tmp_path / "set.npz")
    assert (
        train(paths, tmp_path / "out", seed=1, cache=tmp_path / "set.npz")["threshold"] == meta["threshold"]
    )
    assert meta["feature_version"] == FEATURE_VERSION and meta["training"]["examples"] == 30
    model = load_learned("overexposure", feature_version=FEATURE_VERSION, folder=tmp_path / "out")
    x, ev, _ = build_set(paths, seed=1)
    ref = fit(x, ev, seed=1).predict_proba(x)[:, 1]
    assert np.allclose(model.predict(x), ref, atol=1e-5)
    assert np.allclose(model.predict(x[0]), ref[:1], atol=1e-5)


def test_real_photos_and_their_overexposed_copies() -> None:
    """Full-resolution catalog photos (not used in training): +2.5 EV copies flagged, originals not."""
    root = shared_dataset("myntra-fullres-dev")
    paths = sorted((root / "images").glob("*.jpg"))[::10][:20]
    clean, over = [], []
    for p in paths:
        arr = np.asarray(Image.open(p).convert("RGB"))
        clean.append(run_one("overexposed", Image.fromarray(arr)).verdict != "pass")
        over.append(run_one("overexposed", Image.fromarray(change_exposure(arr, 2.5))).verdict != "pass")
    assert sum(over) >= 0.8 * len(paths), f"{sum(over)}/{len(paths)} over-exposed copies flagged"
    assert sum(clean) <= 2, f"{sum(clean)}/{len(paths)} originals flagged"


def test_overexposed_averages_the_trees_and_the_cnn_in_log_odds() -> None:
    from catalens.quality.checks.exposure import _mean_log_odds

    img = photo(11)
    both = run_one("overexposed", img, cnn_from=0.0)
    trees_only = run_one("overexposed", img, cnn=False)
    assert "cnn" in both.details and "cnn" not in trees_only.details
    assert trees_only.score == pytest.approx(both.details["trees"], abs=1e-4)
    assert both.score == pytest.approx(_mean_log_odds(both.details["trees"], both.details["cnn"]), abs=1e-3)
    assert _mean_log_odds(0.5, 0.5) == pytest.approx(0.5) and _mean_log_odds(0.9, 0.1) == pytest.approx(0.5)
    assert _mean_log_odds(1.0, 0.0) == pytest.approx(0.5)  # clipped, no infinities
    # clearly fine by the trees: the CNN is not run; a flat graphic: not used
    assert "not needed" in run_one("overexposed", img, cnn_from=0.99).details["cnn"]
    flat = run_one("overexposed", product(), cnn_from=0.0)
    assert "flat colour" in flat.details["cnn"] and flat.score == pytest.approx(
        flat.details["trees"], abs=1e-4
    )


def test_exposure_cnn_scores_overexposed_copies_higher() -> None:
    from catalens.quality.cnn_models import NETS, load_net, probability

    _, meta = load_net("exposure")
    assert meta["version"] == NETS["exposure"].version
    clean, over = [], []
    for seed in range(4):
        arr = np.asarray(photo(seed))
        clean.append(probability(QCImage.from_pil(Image.fromarray(arr)), "exposure"))
        over.append(probability(QCImage.from_pil(Image.fromarray(change_exposure(arr, 2.5))), "exposure"))
    assert np.mean(over) > np.mean(clean) + 0.3


def test_exposure_cnn_trainer_makes_three_examples_per_photo(tmp_path: Path) -> None:
    from catalens.quality.cnn_models import probability
    from catalens.quality.training.cnn_fit import train
    from catalens.quality.training.exposure_cnn import SPEC, examples_from

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        photo(i, 240, 320).save(photos / f"p{i}.jpg", quality=92)
    made = examples_from(photos / "p0.jpg", np.random.default_rng(0))
    assert [k for k, _ in made] == ["clean", "mild", "over"] and made[2][1].mean() > made[0][1].mean()
    meta = train(
        SPEC, sorted(photos.iterdir()), tmp_path / "m", examples_from, positive="over", task="t", epochs=1
    )
    assert meta["training"]["examples"] == 12 and meta["onnx_max_abs_error"] < 1e-3
    assert 0.0 <= probability(QCImage.from_pil(photo(9)), "exposure", tmp_path / "m") <= 1.0
