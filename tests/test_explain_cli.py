"""CLI and Catalog tests of explanations on the packaged EfficientNet-Lite0 (torch path)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from catalens.cli import app
from tests.conftest import make_product_image

runner = CliRunner()


def _run(home: Path, *args: str):
    return runner.invoke(app, ["--home", str(home), *args])


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("explain-img")
    a = make_product_image(d / "a.jpg", 1, size=(225, 300))
    b = make_product_image(d / "b.jpg", 3, size=(225, 300))
    bad = d / "bad.jpg"
    bad.write_text("not an image at all")
    return {"a": a, "b": b, "bad": bad}


def _save_classifier(home: Path) -> None:
    """A real classify artefact: a linear head on Lite0 embeddings with three classes."""
    from catalens.classify.classifier import Classifier, FieldHead, save_classifier

    rng = np.random.default_rng(0)
    head = FieldHead(
        "colour",
        ["red", "green", "blue"],
        rng.standard_normal((3, 1280)).astype(np.float32),
        np.zeros(3, np.float32),
    )
    save_classifier(home, Classifier("shades", "", "linear", "efficientnet-lite0", None, {"colour": head}))


def test_explain_cli_default_and_imagenet_targets(tmp_path: Path, images: dict[str, Path]) -> None:
    home, out = tmp_path / "home", tmp_path / "out"
    r = _run(home, "explain", str(images["a"]), "--out", str(out), "--json")  # default: built-in taxonomy
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["target"] == "builtin/type" and data["model"] == "efficientnet-lite0"  # the finest level
    assert Path(data["files"]["overlay"]).is_file() and np.load(data["files"]["map"]).shape == (300, 225)

    r = _run(
        home, "explain", str(images["a"]), "--imagenet", "--label", "jersey", "--out", str(out), "--json"
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["label"] == "jersey"


def test_explain_cli_trained_classifier_and_errors(tmp_path: Path, images: dict[str, Path]) -> None:
    home, out = tmp_path / "home", tmp_path / "out"
    _save_classifier(home)
    r = _run(
        home, "explain", str(images["a"]), "-c", "shades", "--label", "blue", "--out", str(out), "--json"
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["target"] == "shades/colour" and json.loads(r.output)["label"] == "blue"

    r = _run(home, "explain", str(images["a"]), "-c", "shades", "--label", "purple", "--out", str(out))
    assert r.exit_code == 2 and "Known labels: red, green, blue" in r.output
    r = _run(home, "explain", str(images["bad"]), "--out", str(out))
    assert r.exit_code == 2 and "bad.jpg" in r.output
    r = _run(home, "explain", str(images["a"]), "--model", str(tmp_path / "m.onnx"), "--imagenet")
    assert r.exit_code == 2 and "ONNX" in r.output
    r = _run(home, "explain", str(images["a"]), "-c", "nosuch")
    assert r.exit_code == 2 and "nosuch" in r.output


def test_explain_match_and_regions_cli(tmp_path: Path, images: dict[str, Path]) -> None:
    home, out = tmp_path / "home", tmp_path / "out"
    r = _run(home, "explain", "match", str(images["a"]), str(images["b"]), "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["exact"] is True and -1 <= data["similarity"] <= 1 and data["pairs"]
    q = np.load(data["files"]["query_map"])
    assert q.sum() == pytest.approx(data["similarity"], abs=1e-3)

    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([[10, 10, 60, 80, "logo"], {"box": [100, 100, 200, 280], "label": "tag"}]))
    png = tmp_path / "drawn.png"
    r = _run(home, "explain", "regions", str(images["a"]), str(boxes), "--out", str(png))
    assert r.exit_code == 0, r.output
    assert Image.open(png).size == (240, 320)


def test_explain_quality_draws_verdict_regions(tmp_path: Path) -> None:
    """A product on a thick black frame: the border check's regions are drawn on the image."""
    img = Image.new("RGB", (300, 400), (0, 0, 0))
    ImageDraw.Draw(img).rectangle((40, 40, 260, 360), fill=(255, 255, 255))
    ImageDraw.Draw(img).ellipse((90, 100, 210, 300), fill=(200, 30, 30))
    path = tmp_path / "framed.png"
    img.save(path)
    home = tmp_path / "home"
    out = tmp_path / "framed.qc.png"
    r = _run(home, "explain", "quality", str(path), "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert out.is_file()
    with_regions = [x for x in data["results"] if x["regions"] and x["verdict"] != "pass"]
    assert sorted(data["drawn"]) == sorted(x["check"] for x in with_regions)
    if with_regions:  # drawn pixels differ from the plain (scaled) image
        plain = np.asarray(img.resize(Image.open(out).size))
        assert np.abs(np.asarray(Image.open(out), dtype=int) - plain).sum() > 0


def test_explain_on_product_keeps_the_map_on_the_detected_product(
    tmp_path: Path, images: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--on-product``: the map is weighted by the product's mask (the detector is stubbed: its model
    is tested in test_detect); where no product is found the plain map is kept."""
    from catalens.explain import product

    def left_half(image):  # type: ignore[no-untyped-def]
        m = np.zeros((image.height, image.width), bool)
        m[:, : image.width // 2] = True
        return m

    monkeypatch.setattr(product, "product_mask", left_half)
    home, out = tmp_path / "home", tmp_path / "out"
    r = _run(home, "explain", str(images["a"]), "--on-product", "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["on_product"] is True
    m = np.load(data["files"]["map"])
    assert m[:, 130:].sum() < 0.02 * m.sum()  # nothing past the product's edge (blur: a few px)
    monkeypatch.setattr(product, "product_mask", lambda image: None)
    r = _run(home, "explain", str(images["a"]), "--on-product", "--out", str(out), "--json")
    assert r.exit_code == 0 and json.loads(r.output)["on_product"] is False
