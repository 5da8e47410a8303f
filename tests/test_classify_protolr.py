"""Unit tests of the prototype-anchored logistic regression head (``--method prototype-lr``)."""

from __future__ import annotations

import numpy as np

from catalens.classify.heads import MIN_EXAMPLES, fit_prototype, fit_prototype_lr
from catalens.classify.labels import LabelSet
from catalens.classify.train import train_on_matrix


def _nuisance(n_per: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """3 classes apart along a few directions, plus a strong per-image nuisance shared by all classes
    (lighting, background): class means of a few examples are pulled along it, the cosine prototypes
    misjudge, examples of the other classes show which directions to ignore."""
    rng = np.random.default_rng(seed)
    dim, n_cls = 32, 3
    base = np.random.default_rng(99)
    centres = base.standard_normal((n_cls, dim)) * 0.6
    nuisance = base.standard_normal((4, dim))
    y = np.repeat(np.arange(n_cls), n_per)
    X = (
        centres[y]
        + rng.standard_normal((len(y), 4)) @ nuisance * 1.2
        + rng.standard_normal((len(y), dim)) * 0.3
    )
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), y


def test_anchored_refinement_beats_prototypes_with_few_examples() -> None:
    Xt, yt = _nuisance(400, seed=1)
    gains = []
    for seed in range(5):
        X, y = _nuisance(10, seed=10 + seed)
        Wp, bp = fit_prototype(X, y, 3)
        Wr, br = fit_prototype_lr(X, y, 3)
        assert Wr.shape == Wp.shape and br.shape == (3,)
        acc_p = ((Xt @ Wp.T + bp).argmax(1) == yt).mean()
        acc_r = ((Xt @ Wr.T + br).argmax(1) == yt).mean()
        gains.append(acc_r - acc_p)
    assert np.mean(gains) > 0.03, gains


def test_strong_anchor_keeps_the_prototypes_and_absent_classes_never_win() -> None:
    X, y = _nuisance(5, seed=3)
    Wp, _ = fit_prototype(X, y, 4)
    Wr, br = fit_prototype_lr(X, y, 4, anchor=1e4, scale=2.0)
    np.testing.assert_allclose(Wr[:3] / 2.0, Wp[:3], atol=1e-3)
    assert br[3] == -30.0 and (br[:3] == 0).all()
    assert ((X @ Wr.T + br).argmax(1) != 3).all()


def test_train_on_matrix_with_one_example_per_class() -> None:
    X, y = _nuisance(1, seed=4)
    names = ["a", "b", "c"]
    labels = LabelSet([f"s{i}" for i in range(3)], [None] * 3, [None] * 3, {"f": [names[i] for i in y]}, "t")
    assert MIN_EXAMPLES["prototype-lr"] == 1
    clf = train_on_matrix(X, labels, ["f"], "prototype-lr", name="few", model="fake", model_version=None)
    assert clf.method == "prototype-lr" and clf.heads["f"].classes == names
    head = clf.heads["f"]
    assert ((X @ head.W.T + head.b).argmax(1) == y).all()
