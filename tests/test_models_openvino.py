"""``device="openvino"``: OpenVINO on the ONNX export, its runtime tag in the model version, and a
clear error without the ``openvino`` extra. Tiny random timm models: no download, a few seconds."""

from __future__ import annotations

import builtins
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from catalens.errors import ModelError

TINY = "timm:test_efficientnet?random=1"
needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="openvino extra not installed"
)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def test_runtime_tag_in_version():
    from catalens.models import get_spec, make_version
    from catalens.models.spec import with_runtime

    spec = get_spec("efficientnet-lite0")
    plain = make_version("ab" * 32, spec)
    assert make_version("ab" * 32, spec, runtime=None) == plain
    assert make_version("ab" * 32, spec, runtime="ovbf16") == f"{plain}-ovbf16"
    assert with_runtime(plain, "ovf32") != with_runtime(plain, "ovbf16") != plain
    with pytest.raises(ModelError, match="runtime tag"):
        with_runtime(plain, "ov-bf16")


def test_openvino_missing_is_a_clear_error(monkeypatch, tmp_path):
    from catalens.models import load_image_encoder, runtime

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real_find_spec(name, *a)
    )
    with pytest.raises(ModelError, match=r"pip install 'catalens\[openvino\]'"):
        runtime.resolve_device("openvino")
    with pytest.raises(ModelError, match=r"catalens\[openvino\]"):
        load_image_encoder(TINY, device="openvino", cache_dir=tmp_path)

    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with pytest.raises(ModelError, match=r"catalens\[openvino\]"):
        runtime.OpenVinoImageEncoder(tmp_path / "missing.onnx", None, "v")  # type: ignore[arg-type]


def test_unknown_device_lists_openvino():
    from catalens.models import runtime

    with pytest.raises(ModelError, match="openvino"):
        runtime.resolve_device("tpu")
    for alias in ("openvino", "OV", "openvino-cpu"):
        if importlib.util.find_spec("openvino") is not None:
            assert runtime.resolve_device(alias) == "openvino"


def test_onnx_encoder_with_threads(tmp_path):
    from catalens.models import load_image_encoder

    enc = load_image_encoder(TINY, device="cpu", cache_dir=tmp_path)
    one = enc.with_threads(1)  # what a Ray worker with one CPU runs
    assert one.threads == 1 and one.version == enc.version and one.path == enc.path
    x = np.random.default_rng(1).standard_normal((8, *enc.spec.input_size)).astype(np.float32)
    np.testing.assert_allclose(one.encode(x), enc.encode(x), rtol=1e-4, atol=1e-5)


@needs_openvino
def test_openvino_encoder_tiny_model(tmp_path):
    from catalens.models import OpenVinoImageEncoder, load_image_encoder

    ref = load_image_encoder(TINY, device="cpu", cache_dir=tmp_path)
    enc = load_image_encoder(TINY, device="openvino", cache_dir=tmp_path)
    assert isinstance(enc, OpenVinoImageEncoder) and enc.backend == "openvino-cpu"
    assert enc.precision in ("f32", "bf16", "f16")
    # the runtime is part of the version: its vectors never share a store with the fp32 ones
    assert enc.version == f"{ref.version}-ov{enc.precision}" and enc.model_id == ref.model_id
    assert enc.dim == ref.dim
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1  # the same ONNX export serves both

    x = np.random.default_rng(0).standard_normal((9, *enc.spec.input_size)).astype(np.float32)
    want = ref.encode(x)
    got = enc.encode(x)  # 9 images on 2 threads: two parallel requests
    assert got.shape == want.shape and got.dtype == np.float32
    assert _cos(got, want).min() > 0.99
    one_by_one = np.concatenate([enc.encode(x[i : i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(one_by_one, got, rtol=1e-5, atol=1e-5)
    assert enc.encode(x[:0]).shape == (0, enc.dim)
    with pytest.raises(ModelError, match="expects a batch"):
        enc.encode(x[:, :, :8])

    # forced f32 agrees with ONNX Runtime fp32 closely, and is tagged as such
    f32 = OpenVinoImageEncoder(enc.path, enc.spec, ref.version, threads=2, precision="f32")
    assert f32.version == f"{ref.version}-ovf32"
    np.testing.assert_allclose(f32.encode(x), want, rtol=1e-3, atol=1e-4 * max(1.0, np.abs(want).max()))
    one = f32.with_threads(1)
    assert one.threads == 1 and one.version == f32.version
    np.testing.assert_allclose(one.encode(x), f32.encode(x), rtol=1e-4, atol=1e-5)


@needs_openvino
def test_catalog_keeps_openvino_vectors_apart(tmp_path):
    from conftest import make_product_image

    from catalens import Catalog

    folder = tmp_path / "photos"
    for i in range(6):
        make_product_image(folder / f"p{i}.jpg", seed=i)
    home, cache = tmp_path / "home", tmp_path / "cache"
    with Catalog.open(home, default_model=TINY, device="cpu", cache_dir=cache) as cat:
        assert cat.ingest(folder).embedded == 6
        fp32_version = cat.encoder().version
    with Catalog.open(home, default_model=TINY, device="openvino", cache_dir=cache) as cat:
        enc = cat.encoder()
        assert enc.version.startswith(fp32_version + "-ov")
        assert cat.embed().embedded == 6  # the fp32 vectors do not count as this runtime's
        versions = sorted(m.version for m in cat.db.models() if m.model_id == TINY)
        assert versions == sorted([fp32_version, enc.version])
        assert len(cat.db.embedded_shas(TINY, fp32_version)) == 6
        assert len(cat.db.embedded_shas(TINY, enc.version)) == 6
        assert len(list(Path(home, "vectors").glob("*.f32"))) == 2
