"""Unit tests of catalens.classify (synthetic data; no model weights needed except where marked)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from catalens.classify.classifier import Classifier, FieldHead, load_classifier, save_classifier
from catalens.classify.colour.features import dominant_colours, foreground_mask
from catalens.classify.heads import add_prototype, fit_linear, fit_prototype, fit_temperature
from catalens.classify.labels import LabelSet
from catalens.classify.metrics import ece
from catalens.classify.predict import Ensemble, decode, field_probas, predict_rows
from catalens.classify.taxonomy import load_taxonomy, parse_taxonomy
from catalens.classify.train import train_on_matrix
from catalens.errors import LabelsError, TaxonomyError


def _blobs(n_per: int, n_cls: int, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_cls, dim)) * 3
    X = np.concatenate([centres[c] + rng.standard_normal((n_per, dim)) for c in range(n_cls)])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), np.repeat(np.arange(n_cls), n_per)


def test_linear_and_prototype_heads_separate_blobs() -> None:
    X, y = _blobs(30, 4)
    for fit in (fit_linear, fit_prototype):
        W, b = fit(X, y, 4)
        assert ((X @ W.T + b).argmax(1) == y).mean() > 0.95


def test_prototype_from_one_example_and_new_class_without_retraining() -> None:
    X, y = _blobs(10, 3)
    W, _ = fit_prototype(X[[0, 10, 20]], y[[0, 10, 20]], 3)
    assert ((X @ W.T).argmax(1) == y).mean() > 0.9
    X4, _ = _blobs(10, 4, seed=0)
    W2 = add_prototype(W, X4[30:31])
    assert W2.shape[0] == 4 and np.allclose(W2[:3], W)


def test_temperature_scaling_reduces_ece() -> None:
    X, y = _blobs(50, 5, seed=1)
    rng = np.random.default_rng(0)
    noisy = y.copy()
    flip = rng.random(len(y)) < 0.3
    noisy[flip] = rng.integers(0, 5, flip.sum())
    W, b = fit_prototype(X, y, 5)
    logits = (X @ W.T + b) * 50  # overconfident
    from catalens.classify.classifier import softmax

    t = fit_temperature(logits, noisy)
    assert t > 1.0
    assert ece(softmax(logits / t), noisy) < ece(softmax(logits), noisy)


def _labelset(y_master: list[str], y_sub: list[str]) -> LabelSet:
    n = len(y_master)
    return LabelSet(
        [f"s{i}" for i in range(n)], [None] * n, [None] * n, {"m": list(y_master), "s": list(y_sub)}, "t"
    )


def test_train_save_load_and_torch_head(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    X, y = _blobs(20, 4)
    master = ["A" if c < 2 else "B" for c in y]
    sub = [f"s{c}" for c in y]
    clf = train_on_matrix(
        X,
        _labelset(master, sub),
        ["m", "s"],
        "linear",
        name="t1",
        model="fake",
        model_version="v",
        hierarchy=["m", "s"],
    )
    save_classifier(tmp_path, clf)
    back = load_classifier(tmp_path, "t1")
    assert back.fields == ["m", "s"] and back.classes("s") == ["s0", "s1", "s2", "s3"]
    assert back.head("s").parent == "m" and sorted(map(tuple, back.paths)) == [
        ("A", "s0"),
        ("A", "s1"),
        ("B", "s2"),
        ("B", "s3"),
    ]
    head = back.torch_head("s")
    x = torch.from_numpy(X[:5]).requires_grad_(True)
    logits = head(x)
    logits[:, 0].sum().backward()
    assert x.grad is not None and np.allclose(
        logits.detach().numpy(), back.head("s").logits(X[:5]), atol=1e-4
    )
    rows = predict_rows(back, field_probas(back, X))
    acc = np.mean([r["s"].label == s for r, s in zip(rows, sub, strict=True)])
    assert acc > 0.9


def test_too_few_examples_and_empty_field_errors() -> None:
    X, _ = _blobs(3, 2)
    ls = _labelset(["A"] * 5 + ["B"], ["x"] * 6)
    with pytest.raises(LabelsError, match="fewer than 2 examples"):
        train_on_matrix(X, ls, ["m"], "linear", name="t", model="f", model_version=None)
    ls2 = _labelset([None] * 6, ["x"] * 6)  # type: ignore[list-item]
    with pytest.raises(LabelsError, match="empty"):
        train_on_matrix(X, ls2, ["m"], "prototype", name="t", model="f", model_version=None)


def test_joint_decoding_keeps_hierarchy_consistent() -> None:
    probs = {"m": np.array([[0.55, 0.45]]), "s": np.array([[0.1, 0.0, 0.9]])}
    classes = {"m": ["A", "B"], "s": ["a1", "a2", "b1"]}
    paths = [["A", "a1"], ["A", "a2"], ["B", "b1"]]
    for mode, want in (("joint", ("B", "b1")), ("mask", ("A", "a1"))):
        ch = decode(probs, classes, ["m", "s"], paths, mode)
        assert (classes["m"][ch["m"][0]], classes["s"][ch["s"][0]]) == want


def test_taxonomy_contradictions() -> None:
    ok = parse_taxonomy(
        {"hierarchy": ["a", "b"], "tree": {"X": ["x1", "x2"], "Y": ["y1"]}, "attributes": {"g": ["M", "W"]}}
    )
    assert ok.values("b") == ["x1", "x2", "y1"] and ok.parent_of("b") == "a"
    bad = [
        {"hierarchy": ["a", "b"], "tree": {"X": ["x1"], "Y": ["x1"]}},  # two parents
        {"hierarchy": ["a", "b"], "tree": {"X": None}},  # too shallow
        {"hierarchy": ["a"], "tree": {"X": ["x"]}},  # list not at last level... deeper than hierarchy
        {"hierarchy": ["a"], "tree": ["X"], "attributes": {"a": ["v"]}},  # attribute named like a level
        {"attributes": {"g": ["M", "M"]}},  # duplicate values
        {"hierarchy": ["a"], "tree": {"X": {"imagenet": [1]}, "Y": {"imagenet": [1]}}},  # class mapped twice
    ]
    for data in bad:
        with pytest.raises(TaxonomyError):
            parse_taxonomy(data)


def test_builtin_taxonomy_covers_required_categories() -> None:
    tax = load_taxonomy("builtin")
    required = {
        "apparel",
        "footwear",
        "bags",
        "accessories",
        "jewellery",
        "watches",
        "eyewear",
        "electronics",
        "home",
        "kitchen",
        "furniture",
        "toys",
        "sports",
        "beauty and personal care",
        "food and grocery",
        "books and media",
        "tools",
        "automotive",
        "pet",
    }
    assert required <= set(tax.values("category"))


def test_ensemble_averages_probabilities() -> None:
    X, y = _blobs(10, 3)
    heads = []
    for seed in (0, 1):
        W, b = fit_prototype(X, y, 3)
        h = FieldHead("f", ["a", "b", "c"], W * (10 + seed), b)
        heads.append(Classifier(f"c{seed}", "v", "prototype", "m", None, {"f": h}))
    ens = Ensemble(heads)
    p = ens.proba([X, X])["f"]
    manual = (heads[0].head("f").proba(X) + heads[1].head("f").proba(X)) / 2
    assert np.allclose(p, manual, atol=1e-6)


def test_colour_ignores_white_background_and_cluttered_background() -> None:
    img = Image.new("RGB", (120, 160), (255, 255, 255))
    img.paste((200, 30, 40), (30, 30, 90, 130))  # a red product on white
    mask, method = foreground_mask(np.asarray(img))
    assert method == "border" and 0.25 < mask.mean() < 0.45
    res = dominant_colours(img)
    assert res.primary == "Red" and res.colours[0][1] > 0.8
    rng = np.random.default_rng(0)
    clutter = (rng.integers(0, 255, (160, 120, 3))).astype(np.uint8)  # noisy floor
    clutter[40:120, 30:90] = (30, 40, 160)  # a blue product in the centre
    res2 = dominant_colours(Image.fromarray(clutter))
    assert res2.colours[0][0] in ("Blue", "Navy Blue") and res2.colours[0][1] > 0.4


def test_label_spreading_labels_the_confident_unlabelled_rows() -> None:
    from catalens.classify.propagate import spread

    X, y = _blobs(20, 3, seed=4)
    lab = [0, 1, 20, 21, 40, 41]  # two labelled rows per blob
    unl = [i for i in range(len(y)) if i not in lab]
    guess = spread(X[lab], [f"c{y[i]}" for i in lab], X[unl])
    known = [(g, f"c{y[i]}") for g, i in zip(guess, unl, strict=True) if g is not None]
    assert len(known) >= 0.8 * len(unl) and all(g == t for g, t in known)
    assert spread(X[:2], ["a", "a"], X[2:5]) == [None, None, None]  # one class: nothing to spread
