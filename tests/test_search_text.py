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


def test_recall_at_k_in_blocks_matches_brute_force() -> None:
    rng = np.random.default_rng(5)
    g = l2_normalize(rng.standard_normal((300, 16)).astype(np.float32))
    q = l2_normalize(g[rng.integers(0, 300, 2500)] + 0.3 * rng.standard_normal((2500, 16)).astype(np.float32))
    gp = [str(i // 2) for i in range(300)]  # two images per product
    qp = [str(rng.integers(0, 150)) for _ in range(2500)]
    top = np.argsort(-(q @ g.T), axis=1)
    want = np.mean(
        [p in list(dict.fromkeys(gp[j] for j in row))[:10] for p, row in zip(qp, top, strict=True)]
    )
    assert recall_at_k(q, qp, g, gp) == pytest.approx(want)


def test_train_projection_large_catalog_path(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Above MAX_ANCHORS: sampled selection fits, subset-of-regressors refit, artefact round trip."""
    from types import SimpleNamespace

    import catalens.search.text as text

    t, x = pairs(700, 2)
    pids = [f"P{i}" for i in range(700)]
    monkeypatch.setattr(text, "MAX_ANCHORS", 200)
    monkeypatch.setattr(text, "SELECT_QUERIES", 50)
    monkeypatch.setattr(text, "titled_pairs", lambda s: (pids, [f"t{i}" for i in range(700)], np.arange(700)))
    monkeypatch.setattr(text, "_text_encoder", lambda name: SimpleNamespace(encode=lambda ts: t, version="1"))
    data = SimpleNamespace(model_id="m", version="v", matrix=lambda: x)
    searcher = SimpleNamespace(data=data, model="m")
    catalog = SimpleNamespace(settings=SimpleNamespace(home=tmp_path))
    meta = text.train_projection(catalog, searcher, holdout=0.2)  # type: ignore[arg-type]
    assert meta["anchors"] == 200 and meta["heldout_queries"] == 50 and meta["method_key"] == "krr"
    assert meta["heldout_recall_at_10"] > 0.5, meta
    art, stored = text.load_projection(catalog, searcher)  # type: ignore[misc,arg-type]
    assert stored["pairs"] == 700 and art["anchors"].shape == (200, 6)
    q = text.apply_projection(t[:20], art)
    assert np.mean((q @ x.T).argmax(axis=1) == np.arange(20)) > 0.5
