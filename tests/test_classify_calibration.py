"""Calibration modes of trained heads: hold-out temperature, cross-fitted temperature, vector scaling."""

from __future__ import annotations

import numpy as np
import pytest

from catalens.classify.classifier import softmax
from catalens.classify.heads import fit_vector_scaling
from catalens.classify.labels import LabelSet
from catalens.classify.metrics import ece
from catalens.classify.train import fit_field, train_on_matrix
from catalens.errors import ClassifierError


def _noisy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """4 overlapping classes of unequal size (a linear head on them is overconfident)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((4, 120)) * 0.25
    y = rng.choice(4, size=n, p=[0.55, 0.25, 0.15, 0.05])
    X = centres[y] + rng.standard_normal((n, 120))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), y


def test_vector_scaling_folds_into_the_head_and_calibrates() -> None:
    X, y = _noisy(400, 0)
    Xt, yt = _noisy(2000, 1)
    vals = [f"c{v}" for v in y]
    eces = {}
    for mode in ("holdout", "crossfit", "vector"):
        head, info = fit_field(X, vals, "f", "linear", calibration=mode, opts={"C": 50.0, "max_iter": 200})
        assert head.classes == ["c0", "c1", "c2", "c3"]
        p = head.proba(Xt)
        assert np.allclose(p.sum(1), 1.0, atol=1e-5)
        eces[mode] = ece(p, yt)
        if mode != "holdout":
            assert info["held_out"]["n"] == len(y) and info["held_out"]["calibration"] == mode
        if mode == "vector":
            assert head.temperature == 1.0  # the per-class scales and biases live in W and b
        else:  # weakly regularised on 120-d noise: overconfident before scaling
            assert head.temperature > 1.0 and ece(head.proba(Xt, temperature=1.0), yt) > 0.04
    assert max(eces.values()) < 0.035, eces


def test_fit_vector_scaling_recovers_scales_and_biases() -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4000, 3)).astype(np.float32) * 2
    a_true, c_true = np.array([0.5, 1.0, 2.0]), np.array([0.3, 0.0, -0.3])
    p = softmax((z * a_true + c_true).astype(np.float32))
    y = np.array([rng.choice(3, p=pi / pi.sum()) for pi in p])
    a, c = fit_vector_scaling(z, y, reg=0.0)
    assert np.allclose(a, a_true, atol=0.15) and np.allclose(c - c.mean(), c_true - c_true.mean(), atol=0.15)


def test_calibration_per_field_and_errors() -> None:
    X, y = _noisy(200, 2)
    labels = LabelSet([f"s{i}" for i in range(len(y))], [None] * len(y), [None] * len(y),
                      {"a": [f"c{v}" for v in y], "b": [f"c{v % 2}" for v in y]}, "t")  # fmt: skip
    clf = train_on_matrix(X, labels, ["a", "b"], "prototype", name="t", model="m", model_version=None,
                          calibration={"a": "vector"})  # fmt: skip
    assert clf.head("a").temperature == 1.0 and clf.metrics["held_out"]["a"]["calibration"] == "vector"
    assert "calibration" not in clf.metrics["held_out"]["b"]  # hold-out temperature
    with pytest.raises(ClassifierError, match="unknown calibration"):
        train_on_matrix(
            X, labels, ["a"], "linear", name="t", model="m", model_version=None, calibration="platt"
        )
    with pytest.raises(ClassifierError, match="not trained"):
        train_on_matrix(X, labels, ["a"], "linear", name="t", model="m", model_version=None,
                        calibration={"zz": "vector"})  # fmt: skip


def test_cli_calibration_option_parses_modes_and_field_maps() -> None:
    import typer

    from catalens.classify.cli import _parse_calibration

    assert _parse_calibration("vector") == "vector"
    assert _parse_calibration("gender=vector, articleType=crossfit") == {
        "gender": "vector",
        "articleType": "crossfit",
    }
    with pytest.raises(typer.Exit):
        _parse_calibration("gender=vector,oops")
