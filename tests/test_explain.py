"""Tests of catalens.explain with tiny models (a hand-built colour CNN, timm test_* models)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn

from catalens.errors import ConfigError, ImageError, NoGradientPathError, UnknownLabelError
from catalens.explain.explainer import Explainer, load_explain_model
from catalens.explain.faithfulness import auc, curve, faithfulness, random_map
from catalens.explain.layers import spatial_layer
from catalens.explain.maps import regions, to_source
from catalens.explain.match import explain_match
from catalens.explain.methods import get_method
from catalens.explain.render import draw_regions
from catalens.explain.targets import HeadTarget, ImageNetTarget, resolve_label
from catalens.models.spec import ModelSpec
from catalens.models.tower import TimmTower

torch.set_num_threads(1)
SIZE = 64


class ColourNet(nn.Module):
    """A transparent CNN: 8x8 average cells, features = (red-ness, blue-ness); classes red / blue.

    The evidence for "red" is exactly where the image is red, so a correct Grad-CAM must put its
    peak there.
    """

    num_classes = 2

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(8)
        self.conv = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, -1.0, -1.0], [-1.0, -1.0, 1.0]])[:, :, None, None])
            self.conv.bias.zero_()
        self.bn2 = nn.ReLU()  # the "head activation" Grad-CAM hooks (TimmTower.gradcam_layer looks for bn2)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.eye(2) * 4)
            self.fc.bias.zero_()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv(self.pool(x)))

    def forward_head(self, f: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = f.mean(dim=(2, 3))
        return pooled if pre_logits else self.fc(pooled)


TOY_SPEC = ModelSpec(
    "toy-colour",
    "timm",
    "toy",
    input_size=(3, SIZE, SIZE),
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
    crop_pct=1.0,
    resize_mode="squash",
    dim=2,
    num_classes=2,
)


class ToyTarget:
    name = "colour"
    labels = ["red", "blue"]
    model = None

    def logits(self, tower, x):
        return tower.logits(x)


def toy_explainer() -> Explainer:
    return Explainer(tower=TimmTower(ColourNet()), spec=TOY_SPEC)


def red_square(box=(8, 8, 31, 31), size=(SIZE, SIZE)) -> Image.Image:
    img = Image.new("RGB", size, (255, 255, 255))
    ImageDraw.Draw(img).rectangle(box, fill=(230, 10, 10))
    ImageDraw.Draw(img).rectangle((40, 40, 60, 60), fill=(10, 10, 230))
    return img


def iou(a, b) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_cam_peaks_on_the_evidence(method: str) -> None:
    ex = toy_explainer()
    e = ex.explain(red_square(), ToyTarget(), "red", method=method)
    assert e.label == "red" and e.grid_map.shape == (8, 8)
    assert e.regions, "no region found"
    assert iou(e.regions[0].box, (8, 8, 32, 32)) > 0.7
    blue = ex.explain(red_square(), ToyTarget(), "blue", method=method)
    assert iou(blue.regions[0].box, (40, 40, 61, 61)) > 0.5
    assert not any(iou(r.box, (8, 8, 32, 32)) > 0 for r in blue.regions)


def test_default_label_is_the_top_class() -> None:
    img = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    ImageDraw.Draw(img).rectangle((10, 10, 50, 50), fill=(10, 10, 230))
    assert toy_explainer().explain(img, ToyTarget()).label == "blue"


def test_faithfulness_beats_random_on_toy() -> None:
    ex = toy_explainer()
    img = red_square()
    e = ex.explain(img, ToyTarget(), "red")
    x = ex.input_tensor(img)

    def score(batch: torch.Tensor) -> torch.Tensor:
        return torch.softmax(ex.tower.logits(batch), dim=-1)

    ours = faithfulness(score, x, e.input_map, 0, steps=16)
    rng = np.random.default_rng(0)
    rand = [faithfulness(score, x, random_map((8, 8), (SIZE, SIZE), rng), 0, steps=16) for _ in range(5)]
    assert ours.deletion < np.mean([r.deletion for r in rand])
    assert ours.insertion > np.mean([r.insertion for r in rand])
    d = curve(score, x, e.input_map, 0, mode="deletion", steps=8)
    assert d.shape == (9,) and auc(np.ones(5)) == pytest.approx(1.0)


def test_matches_pytorch_grad_cam() -> None:
    """Our Grad-CAM / Grad-CAM++ agree with pytorch-grad-cam's (run through our lib: adapter)."""
    pytest.importorskip("pytorch_grad_cam")
    import timm

    from catalens.explain.maps import normalise, upsample

    torch.manual_seed(0)
    tower = TimmTower(timm.create_model("test_efficientnet", pretrained=False, num_classes=5)).eval()
    layer = spatial_layer(tower)
    x = torch.randn(1, 3, 96, 96)
    target = HeadTarget(nn.Linear(tower.backbone.num_features, 5), [f"c{i}" for i in range(5)])
    for ours_name, lib_name in (("gradcam", "lib:gradcam"), ("gradcam++", "lib:gradcamplusplus")):
        ours = get_method(ours_name)(tower, layer, x, target, 2)
        theirs = get_method(lib_name)(tower, layer, x, target, 2)
        assert ours.index == theirs.index == 2
        mine = normalise(upsample(ours.map, (96, 96)))
        assert theirs.map.shape == (96, 96)
        assert np.corrcoef(mine.ravel(), theirs.map.ravel())[0, 1] > 0.99, ours_name


def test_vit_token_cam_and_rollout() -> None:
    ex = Explainer("timm:test_vit?random=1")
    assert spatial_layer(ex.tower).kind == "tokens"
    img = red_square(size=(120, 160))
    for method in ("gradcam", "gradcam++", "rollout"):
        e = ex.explain(img, ImageNetTarget("test_vit"), method=method)
        assert e.grid_map.shape == (10, 10), method
        assert np.isfinite(e.input_map).all() and e.input_map.max() == pytest.approx(1.0)
        assert e.input_map.shape == (160, 160)
    fused = [b.attn.fused_attn for b in ex.tower.backbone.blocks]
    assert fused == [b.attn.fused_attn for b in ex.tower.backbone.blocks]  # restored after rollout


def test_swin_token_cam() -> None:
    import timm

    torch.manual_seed(0)
    swin = timm.create_model(
        "swin_tiny_patch4_window7_224",
        pretrained=False,
        embed_dim=24,
        depths=(1, 1, 1, 1),
        num_heads=(1, 1, 1, 1),
        num_classes=3,
    )
    spec = ModelSpec("tiny-swin", "timm", "swin", input_size=(3, 224, 224), num_classes=3)
    ex = Explainer(tower=TimmTower(swin), spec=spec)
    assert spatial_layer(ex.tower).kind == "nhwc"
    tgt = HeadTarget(nn.Linear(swin.num_features, 3), ["a", "b", "c"])
    e = ex.explain(red_square(size=(200, 200)), tgt, "b")
    assert e.grid_map.shape == (7, 7) and e.label == "b"
    with pytest.raises(ConfigError, match="rollout"):
        ex.explain(red_square(), tgt, method="rollout")


def test_unknown_label_lists_known_ones() -> None:
    with pytest.raises(UnknownLabelError, match="Known labels: red, blue"):
        toy_explainer().explain(red_square(), ToyTarget(), "green")
    assert resolve_label(ImageNetTarget(), "n01440764") == 0
    assert resolve_label(ImageNetTarget(), "Jersey") == resolve_label(ImageNetTarget(), "jersey")
    with pytest.raises(UnknownLabelError, match="Did you mean"):
        resolve_label(ImageNetTarget(), "jerse")


def test_no_gradient_path_errors(tmp_path: Path) -> None:
    with pytest.raises(NoGradientPathError, match="ONNX"):
        load_explain_model(str(tmp_path / "model.onnx"))

    class OnnxImageEncoder:  # what load_image_encoder returns on CPU
        backend = "onnx-cpu"
        model_id = "efficientnet-lite0"

    with pytest.raises(NoGradientPathError):
        Explainer(tower=OnnxImageEncoder(), spec=TOY_SPEC)
    numpy_head = HeadTarget(lambda e: e.detach().numpy(), ["red", "blue"], name="sk")
    with pytest.raises(NoGradientPathError, match="not a torch tensor"):
        toy_explainer().explain(red_square(), numpy_head)
    detached = HeadTarget(lambda e: e.detach() * 2, ["red", "blue"], name="detached", normalize=False)
    with pytest.raises(NoGradientPathError):
        toy_explainer().explain(red_square(), detached, "red")


def test_unreadable_image(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageError):
        toy_explainer().explain(bad, ToyTarget())
    with pytest.raises(ImageError):
        toy_explainer().explain(tmp_path / "missing.png", ToyTarget())


def test_save_outputs_and_source_geometry(tmp_path: Path) -> None:
    from dataclasses import replace

    ex = Explainer(tower=TimmTower(ColourNet()), spec=replace(TOY_SPEC, resize_mode="shortest"))
    img = Image.new("RGB", (64, 128), (255, 255, 255))  # portrait: the model sees the middle square
    ImageDraw.Draw(img).rectangle((8, 40, 30, 62), fill=(230, 10, 10))
    path = tmp_path / "p.png"
    img.save(path)
    e = ex.explain(path, ToyTarget(), "red")
    assert e.crop_box == pytest.approx((0.0, 32.0, 64.0, 96.0))
    files = e.save(tmp_path / "out")
    data = json.loads(Path(files["json"]).read_text())
    assert data["label"] == "red" and data["regions"] and data["image_size"] == [64, 128]
    box = data["regions"][0]["box"]
    assert iou(box, (8, 40, 31, 63)) > 0.4
    m = np.load(files["map"])
    assert m.shape == (128, 64) and m[:32].max() == 0 and m[96:].max() == 0  # outside the crop
    overlay = Image.open(files["overlay"])
    assert min(overlay.size) >= 64


def test_regions_and_to_source() -> None:
    m = np.zeros((20, 20), np.float32)
    m[2:6, 2:6] = 1.0
    m[12:18, 10:19] = 0.8
    found = regions(m, (0, 0, 40, 40), threshold=0.5)
    assert len(found) == 2
    assert found[0].box == pytest.approx([20.0, 24.0, 38.0, 36.0])  # bigger mass first, scaled x2
    assert found[1].box == pytest.approx([4.0, 4.0, 12.0, 12.0])
    assert sum(r.share for r in found) == pytest.approx(1.0)
    src = to_source(m, (10, 0, 30, 20), (40, 20))
    assert src.shape == (20, 40) and src[:, :10].max() == 0 and src[:, 30:].max() == 0
    assert regions(np.zeros((4, 4), np.float32), (0, 0, 4, 4)) == []


def test_match_contributions_sum_to_similarity(tmp_path: Path) -> None:
    import timm

    torch.manual_seed(0)
    tower = TimmTower(timm.create_model("test_efficientnet", pretrained=False)).eval()
    spec = ModelSpec("tiny-eff", "timm", "test_efficientnet", input_size=(3, 96, 96))
    ex = Explainer(tower=tower, spec=spec)
    a, b = red_square(size=(90, 120)), red_square(box=(20, 20, 50, 50), size=(90, 120))
    me = explain_match(ex, a, b)
    assert me.exact, (me.similarity, me.pooled_similarity)
    assert float(me.query_map.sum()) == pytest.approx(me.similarity, abs=1e-4)
    assert float(me.match_map.sum()) == pytest.approx(me.similarity, abs=1e-4)
    assert me.pairs and me.query_input.max() <= 1.0
    same = explain_match(ex, a, a)
    assert same.similarity == pytest.approx(1.0, abs=1e-5)
    cos = explain_match(ex, a, b, mode="cosine")
    assert np.all(np.abs(cos.query_map) <= 1.0 + 1e-5)
    files = me.save(tmp_path)
    assert Image.open(files["image"]).width > 2 * 64
    assert json.loads(Path(files["json"]).read_text())["exact"] is True


def test_draw_regions_accepts_boxes_and_quality_results() -> None:
    from catalens.quality.result import CheckResult

    img = Image.new("RGB", (60, 80), (255, 255, 255))
    res = CheckResult("text", 0.3, "ratio", "fail", "text found", regions=[[5, 5, 30, 20]])
    ok = CheckResult("border", 0.0, "px", "pass", "fine", regions=[])
    drawn = draw_regions(img, [res, ok, [40, 50, 55, 70, "logo"], {"box": [0, 0, 10, 10], "label": "x"}])
    assert drawn.size[1] >= 240  # thumbnails are scaled up for display
    scale = drawn.size[0] / 60
    px = np.asarray(drawn)
    assert tuple(px[round(12 * scale), round(5 * scale)]) == (230, 40, 40)  # fail colour on the box edge
    assert draw_regions(img, []).size == drawn.size


def test_image_references_resolve_through_the_catalog(tmp_path: Path) -> None:
    from catalens.core import Catalog
    from catalens.errors import UnreadableError
    from catalens.explain.refs import resolve_image_ref
    from tests.conftest import make_product_image

    folder = tmp_path / "imgs"
    make_product_image(folder / "p1.jpg", 1)
    with Catalog.open(tmp_path / "home") as cat:
        cat.ingest(folder, embed=False)
        (img,) = cat.db.ok_images()
        assert resolve_image_ref(cat.db, img.sha256[:12]).name == "p1.jpg"
        assert resolve_image_ref(cat.db, folder / "p1.jpg") == folder / "p1.jpg"
        with pytest.raises(UnreadableError, match="no catalog image"):
            resolve_image_ref(cat.db, "nothing-like-this")


def test_smoothing_option() -> None:
    """smooth=0 is the plain bilinear upsampling; the default smooths the map but keeps its peak
    on the evidence; out-of-range values are refused."""
    from catalens.explain.explainer import DEFAULT_SMOOTH
    from catalens.explain.maps import normalise, smooth, upsample

    ex = toy_explainer()
    plain = ex.explain(red_square(), ToyTarget(), "red", smooth=0)
    assert np.allclose(plain.input_map, normalise(upsample(plain.grid_map, (SIZE, SIZE))))
    smoothed = ex.explain(red_square(), ToyTarget(), "red")
    assert smoothed.smooth == DEFAULT_SMOOTH > 0 and smoothed.to_dict()["smooth"] == DEFAULT_SMOOTH
    assert np.array_equal(smoothed.grid_map, plain.grid_map)
    assert not np.allclose(smoothed.input_map, plain.input_map)
    peak = np.unravel_index(np.argmax(smoothed.input_map), smoothed.input_map.shape)
    assert 8 <= peak[0] < 32 and 8 <= peak[1] < 32
    assert iou(smoothed.regions[0].box, (8, 8, 32, 32)) > 0.6
    spike = np.zeros((21, 21), np.float32)
    spike[10, 10] = 1.0
    blurred = smooth(spike, 2.0)
    assert blurred.sum() == pytest.approx(1.0, abs=1e-4) and blurred.argmax() == spike.argmax()
    assert np.array_equal(smooth(spike, 0), spike)
    with pytest.raises(ConfigError):
        ex.explain(red_square(), ToyTarget(), "red", smooth=-0.1)
