"""Text projection fits (kernel ridge, subset of regressors, ridge) on synthetic pairs."""

from __future__ import annotations

import numpy as np
import pytest

from catalens.errors import ConfigError
from catalens.search.text import _fit, apply_projection, fit_krr, recall_at_k, train_projection
from catalens.vectors import l2_normalize


def pairs(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit 'title' vectors and noisy image vectors that depend on them non-linearly."""
    rng = np.random.default_rng(seed)
    t = l2_normalize(rng.standard_normal((n, 6)).astype(np.float32))
    x = np.sin(2.5 * (t @ rng.standard_normal((6, 48)))) + 0.5 * rng.standard_normal((n, 48))
    return t, l2_normalize(x).astype(np.float32)


def test_krr_beats_ridge_on_nonlinear_pairs() -> None:
    t, x = pairs()
    tr, te = slice(0, 500), slice(500, 600)
    pids = [str(i) for i in range(600)]
    krr = fit_krr(t[tr], x[tr], 0.5, 0.01)
    assert krr["anchors"].shape == (500, 6) and krr["coef"].shape == (500, 48)
    q = apply_projection(t[te], krr)
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    r_krr = recall_at_k(q, pids[te], x, pids)
    w, mu = _fit(t[tr], x[tr], 0.1)
    r_ridge = recall_at_k(apply_projection(t[te], {"w": w, "mu_t": mu}), pids[te], x, pids)
    assert r_krr > 0.8 and r_krr > r_ridge + 0.2, (r_krr, r_ridge)


def test_subset_of_regressors_close_to_exact() -> None:
    t, x = pairs(400, 1)
    exact = fit_krr(t, x, 0.5, 0.01)
    sor = fit_krr(t, x, 0.5, 0.01, max_anchors=150, chunk=64)
    assert sor["anchors"].shape == (150, 6)
    qe, qs = apply_projection(t[:50], exact), apply_projection(t[:50], sor)
    # same direction for the queries, and the same product found first in most cases
    assert float(np.mean(np.sum(qe * qs, axis=1))) > 0.9
    assert np.mean((qe @ x.T).argmax(1) == (qs @ x.T).argmax(1)) > 0.7
    again = fit_krr(t, x, 0.5, 0.01, max_anchors=150, chunk=100)
    assert np.allclose(again["coef"], sor["coef"], atol=1e-3)


def test_unknown_method_rejected() -> None:
    with pytest.raises(ConfigError):
        train_projection(None, None, method="nope")  # type: ignore[arg-type]
