"""Fine-tuning (``--method finetune``): augmentations, split, sampling, training core, artefacts.

The model is a randomly initialised EfficientNet-Lite0 at 64x64 input (no weights needed).
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.usefixtures("catalog_backend")  # each test on SQLite and on PostgreSQL

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from catalens.classify.finetune.data import (  # noqa: E402
    AugmentConfig,
    augment,
    balanced_weights,
    grouped_split,
    is_colour_field,
)
from catalens.classify.finetune.run import FinetuneConfig, field_classes, finetune_arrays  # noqa: E402
from catalens.errors import ClassifierError, LabelsError  # noqa: E402

TINY = "tiny-lite0-ft-test"
COLOURS = {"Red": (200, 30, 30), "Blue": (30, 40, 190)}


@pytest.fixture(scope="module")
def tiny_spec():
    from catalens.models import get_spec, register_model

    base = get_spec("timm:tf_efficientnet_lite0?random=1")
    return register_model(replace(base, name=TINY, input_size=(3, 64, 64), dim=1280), overwrite=True)


def _image(kind: str, colour: str, seed: int) -> Image.Image:
    """A product on white: 'box' (filled rectangle) or 'ring' (thick outline), in a colour."""
    rng = np.random.default_rng(seed)
    a = np.full((80, 60, 3), 255, np.uint8)
    c = np.array(COLOURS[colour]) + rng.integers(-15, 15, 3)
    y0, x0 = int(rng.integers(8, 16)), int(rng.integers(6, 12))
    if kind == "box":
        a[y0 : 80 - y0, x0 : 60 - x0] = c
    else:
        a[y0 : 80 - y0, x0 : x0 + 8] = c
        a[y0 : 80 - y0, 60 - x0 - 8 : 60 - x0] = c
    return Image.fromarray(a)


def _dataset(n: int) -> tuple[list[Image.Image], dict[str, list[str]]]:
    kinds = ["box" if i % 2 else "ring" for i in range(n)]
    cols = ["Red" if (i // 2) % 2 else "Blue" for i in range(n)]
    return [_image(k, c, i) for i, (k, c) in enumerate(zip(kinds, cols, strict=True))], {
        "articleType": kinds,
        "baseColour": cols,
    }


def test_augment_keeps_shape_and_range_and_identity_when_off() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32)
    off = augment(x, AugmentConfig(crop=False, flip=False, jitter=0.0), jitter=False, generator=g)
    assert torch.allclose(off, x, atol=1e-5)
    on = augment(x, AugmentConfig(), jitter=True, generator=g)
    assert on.shape == x.shape and float(on.min()) >= 0.0 and float(on.max()) <= 1.0
    assert not torch.allclose(on, x)
    x = torch.rand(16, 3, 32, 32)
    flip = augment(x, AugmentConfig(crop=False, flip=True, jitter=0.0), jitter=False, generator=g)
    flipped = [torch.allclose(flip[i], x[i].flip(-1), atol=1e-4) for i in range(16)]
    same = [torch.allclose(flip[i], x[i], atol=1e-4) for i in range(16)]
    assert all(f or s for f, s in zip(flipped, same, strict=True))
    assert any(flipped) and any(same), (flipped, same)  # flips with p 1/2 (a no-op flip passed before)
    assert is_colour_field("baseColour") and is_colour_field("color") and not is_colour_field("gender")


def test_grouped_split_and_balanced_weights() -> None:
    groups = ["t1", "t1", "t2", "t2", "t3", None, None, "t4", "t4", "t5"]
    tr, va = grouped_split(len(groups), groups, 0.3, seed=1)
    assert sorted([*tr, *va]) == list(range(10)) and len(va) >= 3
    for g in {"t1", "t2", "t4"}:
        sides = {i in set(va.tolist()) for i, k in enumerate(groups) if k == g}
        assert len(sides) == 1  # a title never straddles the split
    y = np.array([0] * 90 + [1] * 10)
    w = balanced_weights(y, power=1.0)
    assert np.isclose(w[y == 0].sum(), w[y == 1].sum())
    w_sqrt = balanced_weights(y, power=0.5)
    assert 0.1 < w_sqrt[y == 1].sum() < 0.5  # square-root balancing: in between
    assert np.allclose(balanced_weights(y, power=0.0), 1 / 100)


def test_field_classes_errors() -> None:
    with pytest.raises(LabelsError, match="fewer than 2"):
        field_classes(["a", "a", "b"], "f", drop_rare=False)
    assert field_classes(["a", "a", "b", "b", "c", None], "f", drop_rare=True) == (["a", "b"], ["c"])
    with pytest.raises(LabelsError, match="at least 2 classes"):
        field_classes(["a", "a", "b"], "f", drop_rare=True)
    with pytest.raises(LabelsError, match="empty"):
        field_classes([None, None], "f", drop_rare=True)
    with pytest.raises(LabelsError, match="not in the taxonomy"):
        field_classes(["a", "a", "c", "c"], "f", drop_rare=False, allowed=["a", "b"])


def test_finetune_arrays_trains_tail_only_and_calibrates(tiny_spec) -> None:
    from catalens.classify.finetune.data import load_uint8
    from catalens.models import load_torch_model

    images, labels = _dataset(40)
    tower = load_torch_model(tiny_spec)
    stem_before = tower.backbone.conv_stem.weight.detach().clone()
    head_before = tower.backbone.conv_head.weight.detach().clone()
    rows = []
    res = finetune_arrays(
        load_uint8(images, tiny_spec),
        labels,
        tower,
        tiny_spec,
        FinetuneConfig(
            unfreeze_blocks=1, epochs=2, views=3, batch_size=8, threads=1, warm_steps=60, val_frac=0.3
        ),
        progress=rows.append,
    )
    assert res.mode == "cached" and res.device == "cpu" and res.n_val >= 10
    assert rows[0]["stage"] == "cache" and rows[0]["views"] == 3
    assert torch.equal(tower.backbone.conv_stem.weight, stem_before)  # frozen front untouched
    # the tail is trained; the best epoch is restored (epoch 0: warmed heads, tail as loaded)
    assert (res.best_epoch == 0) == torch.equal(tower.backbone.conv_head.weight, head_before)
    net = res.net
    assert all(p.requires_grad for p in net.tail_parameters())
    assert not any(p.requires_grad for m in net.front_modules() for p in m.parameters())
    for f in labels:
        h = res.heads[f]
        assert h.W.shape == (2, 1280) and h.kind == "finetune" and h.temperature > 0
    # articleType (shape) is learnable even from a random backbone: warm heads + tail beat chance
    assert res.held_out["articleType"]["accuracy"] >= 0.7
    assert len(res.history) >= 2 and "images_per_s" in res.history[-1]


def test_full_finetune_rejects_cache() -> None:
    from catalens.models import get_spec, load_torch_model

    spec = replace(get_spec("timm:tf_efficientnet_lite0?random=1"), name="tiny2", input_size=(3, 32, 32))
    images, labels = _dataset(12)
    from catalens.classify.finetune.data import load_uint8

    with pytest.raises(ClassifierError, match="frozen front"):
        finetune_arrays(
            load_uint8(images, spec),
            labels,
            load_torch_model(spec),
            spec,
            FinetuneConfig(unfreeze_blocks=None, cache="on", epochs=1, threads=1),
        )


def test_train_finetune_saves_model_and_classify_all_embeds_with_it(tmp_path: Path, tiny_spec) -> None:
    from catalens.classify.classifier import load_classifier
    from catalens.core import Catalog
    from catalens.models import get_spec, load_image_encoder

    images, labels = _dataset(24)
    folder = tmp_path / "imgs"
    folder.mkdir()
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "articleType", "baseColour"])
        for i, im in enumerate(images):
            im.save(folder / f"p{i}.png")
            w.writerow([f"imgs/p{i}.png", labels["articleType"][i], labels["baseColour"][i]])
    cat = Catalog.open(tmp_path / "home")
    cat.ingest(folder, embed=False)
    with pytest.raises(LabelsError, match="fewer than 2"):  # too few examples for the method
        rare = tmp_path / "rare.csv"
        rare.write_text("image,articleType\nimgs/p0.png,box\nimgs/p1.png,ring\nimgs/p2.png,ring\n")
        cat.train_classifier("bad", ["articleType"], labels=rare, method="finetune", model=TINY)
    with pytest.raises(ClassifierError, match="images only"):
        cat.train_classifier(
            "bad",
            ["articleType"],
            labels=tmp_path / "labels.csv",
            method="finetune",
            model=TINY,
            text_model="minilm",
        )
    clf = cat.train_classifier(
        "ft",
        ["articleType", "baseColour"],
        labels=tmp_path / "labels.csv",
        method="finetune",
        model=TINY,
        epochs=1,
        unfreeze_blocks=1,
        views=2,
        threads=1,
        warm_steps=30,
    )
    assert clf.method == "finetune" and clf.model.startswith("file:")
    back = load_classifier(cat.settings.home, "ft")
    assert back.model == clf.model and back.extra["base_model"] == TINY
    model_dir = Path(clf.model[len("file:") :])
    meta = json.loads((model_dir / "spec.json").read_text())
    assert meta["base"] == TINY and meta["extra"]["classifier"] == "ft"
    spec = get_spec(clf.model)  # resolvable in any process: a file: id
    assert spec.input_size == (3, 64, 64) and spec.num_classes == 0
    # the embedding pipeline exports it to ONNX (and checks it against torch)
    enc = load_image_encoder(clf.model, device="cpu", cache_dir=tmp_path / "cache")
    assert type(enc).__name__ == "OnnxImageEncoder" and enc.dim == 1280
    res = cat.classify_all("ft")  # embeds the missing images with the fine-tuned model first
    assert res.images == 24 and set(res.labels) == {"articleType", "baseColour"}
    hashes, vecs = cat.vectors(clf.model)
    assert len(hashes) == 24 and vecs.shape == (24, 1280)
    cat.close()


def test_cli_train_finetune_options(tmp_path: Path, tiny_spec) -> None:
    from typer.testing import CliRunner

    from catalens.cli import app
    from catalens.core import Catalog

    images, labels = _dataset(16)
    folder = tmp_path / "imgs"
    folder.mkdir()
    rows = ["image,articleType"]
    for i, im in enumerate(images):
        im.save(folder / f"q{i}.png")
        rows.append(f"imgs/q{i}.png,{labels['articleType'][i]}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    home = tmp_path / "home"
    with Catalog.open(home) as cat:
        cat.ingest(folder, embed=False)
    args = ["--home", str(home), "classify", "train", "cli-ft", "--labels", str(tmp_path / "labels.csv")]
    args += ["--field", "articleType", "--method", "finetune", "--model", TINY, "--unfreeze-blocks", "1"]
    args += ["--epochs", "1", "--device", "cpu", "--batch-size", "4", "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout[res.stdout.index("{") :])
    assert data["method"] == "finetune" and data["model"].startswith("file:")
    bad = CliRunner().invoke(app, [*args[:-7], "--unfreeze-blocks", "99", "--epochs", "1", "--json"])
    assert bad.exit_code != 0 and "unfreeze-blocks" in bad.output
