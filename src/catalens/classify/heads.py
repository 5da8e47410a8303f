"""Fitting heads on embeddings: prototypes, linear probes, temperature scaling, abstain threshold.

Every head is affine (``logits = x @ W.T + b``), see :mod:`catalens.classify.classifier`.
Registry: :data:`HEAD_FITTERS` (a :class:`catalens.registry.Registry`) maps a method name to
``fit(X, y, n_classes, **opts) -> (W, b)``; ``register_head`` adds one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from catalens.errors import ClassifierError
from catalens.registry import Registry

MIN_EXAMPLES = {"prototype": 1, "prototype-lr": 1, "linear": 2, "finetune": 2}


def fit_prototype(
    X: np.ndarray, y: np.ndarray, n_classes: int, *, centre: np.ndarray | None = None, **_: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest class mean, cosine: ``W`` = L2-normalised class means, ``b`` = 0.

    ``centre`` (e.g. the mean embedding of the unlabelled catalog) is subtracted first: the
    class means of centred features, ``b = -W @ centre``, so ``logits = (x - centre) @ W.T``
    (affine; per row the ranking equals cosine similarity to the centred prototypes).
    """
    X = np.asarray(X, np.float32)
    if centre is not None:
        X = X - np.asarray(centre, np.float32)[None, :]
    W = np.zeros((n_classes, X.shape[1]), np.float32)
    np.add.at(W, y, X)
    W /= np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-12)
    b = np.zeros(n_classes, np.float32) if centre is None else -(W @ np.asarray(centre, np.float32))
    return W, b.astype(np.float32)


def add_prototype(W: np.ndarray, X: np.ndarray) -> np.ndarray:
    """A new class from its examples, appended without retraining the others."""
    m = np.asarray(X, np.float32).mean(axis=0)
    m /= max(float(np.linalg.norm(m)), 1e-12)
    return np.vstack([W, m[None, :]])


FIT_THREADS = int(os.environ.get("CATALENS_FIT_THREADS", "1"))


def _minimise(
    params: list[Any], loss: Callable[[], Any], *, max_iter: int, threads: int | None, **opts: Any
) -> None:
    """Minimise ``loss()`` over the torch tensors ``params`` with L-BFGS (strong Wolfe line search)
    on ``threads`` torch threads (default ``CATALENS_FIT_THREADS``), restoring the thread count."""
    import torch

    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe", **opts)

    def closure() -> Any:
        opt.zero_grad()
        value = loss()
        value.backward()
        return value

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads or FIT_THREADS))
    try:
        opt.step(closure)
    finally:
        torch.set_num_threads(before)


def fit_linear(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    C: float = 0.5,
    max_iter: int = 50,
    init: tuple[np.ndarray, np.ndarray] | None = None,
    threads: int | None = None,
    sd_floor: float = 0.0,
    **_: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression on standardised features (full-batch L-BFGS in torch).

    Same objective as scikit-learn's ``LogisticRegression(C=C)``: ``C * sum(CE) + ||W||^2 / 2``
    (scaled by ``1 / (C n)``). The standardisation is folded into ``W``, ``b``. Classes absent
    from ``y`` get a bias of -30 so they never win. ``init`` (a previous ``(W, b)``, e.g. the fit
    on the calibration split) warm-starts the optimiser. At most ``max_iter`` L-BFGS iterations
    (50 reach the held-out accuracy of a converged fit on Lite0 features; early stopping acts as
    extra regularisation). ``threads`` (default ``CATALENS_FIT_THREADS``, 1): torch threads for the
    fit; one thread avoids the collapse of multi-threaded BLAS on busy shared cores. ``sd_floor``:
    column standard deviations below ``sd_floor * median(sd)`` are raised to it, so that sparse,
    nearly constant columns (title words present in almost every training row) are not blown up
    when a new row differs there.
    """
    import torch

    X = np.asarray(X, np.float32)
    n = len(X)
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    if sd_floor > 0:
        sd = np.maximum(sd, np.float32(sd_floor) * np.median(sd[sd > 0]) if (sd > 0).any() else sd)
    sd = sd + 1e-6
    Z = torch.from_numpy((X - mu) / sd)
    t = torch.from_numpy(np.asarray(y, np.int64))
    present = np.unique(y)
    if init is not None:
        W0 = np.asarray(init[0], np.float32) * sd[None, :]
        b0 = np.clip(np.asarray(init[1], np.float32) + np.asarray(init[0], np.float32) @ mu, -20.0, 20.0)
        Wt = torch.from_numpy(np.ascontiguousarray(W0)).requires_grad_(True)
        bt = torch.from_numpy(np.ascontiguousarray(b0)).requires_grad_(True)
    else:
        Wt = torch.zeros((n_classes, X.shape[1]), requires_grad=True)
        bt = torch.zeros(n_classes, requires_grad=True)
    mask = torch.full((n_classes,), -30.0)
    mask[torch.from_numpy(present)] = 0.0
    lam = 1.0 / (2.0 * C * n)

    def loss() -> Any:
        logits = Z @ Wt.T + bt + mask
        return torch.nn.functional.cross_entropy(logits, t) + lam * (Wt * Wt).sum()

    _minimise([Wt, bt], loss, max_iter=max_iter, threads=threads, tolerance_grad=1e-6)
    Wp = Wt.detach().numpy() / sd[None, :]
    bp = bt.detach().numpy() + mask.numpy() - Wp @ mu
    return Wp.astype(np.float32), bp.astype(np.float32)


def fit_prototype_lr(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    scale: float = 3.0,
    anchor: float = 0.01,
    max_iter: int = 30,
    threads: int | None = None,
    **_: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Prototypes refined by logistic regression anchored at them (for few labelled examples).

    Starts from the cosine prototypes ``W0`` (:func:`fit_prototype`) and minimises the cross-entropy
    of ``scale * x @ W.T`` plus ``anchor * ||W - W0||^2``: the examples move each class direction away
    from the examples of the other classes, and the penalty pulls it back toward its class mean instead
    of toward zero (a plain linear probe's prior), which is what a handful of examples per class can
    afford. ``scale`` (the inverse temperature of the cosine logits) and ``anchor`` were chosen on
    draws of clothing-dev other than the reported ones (bench/RESULTS.md, few-shot). The head is
    ``(scale * W, 0)``; classes absent from ``y`` get a bias of -30. A warm start (``init``) is
    ignored: the anchor is always the prototypes of the rows given.
    """
    import torch

    X = np.asarray(X, np.float32)
    W0, _ = fit_prototype(X, y, n_classes)
    present = np.unique(y)
    mask = np.full(n_classes, -30.0, np.float32)
    mask[present] = 0.0
    Xt = torch.from_numpy(X)
    t = torch.from_numpy(np.asarray(y, np.int64))
    W0t = torch.from_numpy(W0)
    Wt = W0t.clone().requires_grad_(True)
    mt = torch.from_numpy(mask)

    def loss() -> Any:
        return torch.nn.functional.cross_entropy(scale * Xt @ Wt.T + mt, t) + anchor * ((Wt - W0t) ** 2).sum()

    _minimise([Wt], loss, max_iter=max_iter, threads=threads)
    return (scale * Wt.detach().numpy()).astype(np.float32), mask


HeadFitter = Callable[..., tuple[np.ndarray, np.ndarray]]
HEAD_FITTERS: Registry[HeadFitter] = Registry(
    "classifier head", error=ClassifierError, extra_names=("finetune",)
)


def register_head(name: str, fit: HeadFitter, *, overwrite: bool = False) -> HeadFitter:
    """Make ``fit(X, y, n_classes, **opts) -> (W, b)`` available as training method ``name``."""
    return HEAD_FITTERS.register(name, fit, overwrite=overwrite)


register_head("prototype", fit_prototype)
register_head("prototype-lr", fit_prototype_lr)
register_head("linear", fit_linear)


def nll(logits: np.ndarray, y: np.ndarray, t: float) -> float:
    """Mean negative log-likelihood of ``softmax(logits / t)`` (log-sum-exp in float64)."""
    z = np.asarray(logits, np.float64) / t
    z -= z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(lse - z[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising held-out NLL (golden-section search on log T)."""
    if len(y) == 0:
        return 1.0
    lo, hi = np.log(1e-3), np.log(1e3)
    g = (np.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(logits, y, np.exp(c)), nll(logits, y, np.exp(d))
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(logits, y, np.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(logits, y, np.exp(d))
    return float(np.exp((a + b) / 2))


def fit_vector_scaling(
    logits: np.ndarray, y: np.ndarray, *, reg: float = 0.01, max_iter: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Vector scaling (Guo et al. 2017): per-class scales ``a`` and biases ``c`` minimising the NLL
    of ``softmax(a * logits + c)`` on held-out logits, with an L2 penalty ``reg`` pulling the
    log-scales and biases towards 0 (a = 1, c = 0) around one shared temperature. Affine, so it
    folds into a head: ``W' = a[:, None] * W``, ``b' = a * b + c``."""
    import torch

    z = torch.from_numpy(np.asarray(logits, np.float32))
    t = torch.from_numpy(np.asarray(y, np.int64))
    n_classes = z.shape[1]
    log_a = torch.zeros(n_classes, requires_grad=True)
    c = torch.zeros(n_classes, requires_grad=True)
    log_t = torch.zeros(1, requires_grad=True)  # shared temperature, not penalised
    opt = torch.optim.LBFGS([log_a, c, log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        out = z * torch.exp(log_a - log_t) + c
        loss = torch.nn.functional.cross_entropy(out, t) + reg * ((log_a**2).mean() + (c**2).mean())
        loss.backward()
        return loss

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, FIT_THREADS))
    try:
        opt.step(closure)
    finally:
        torch.set_num_threads(before)
    a = torch.exp(log_a - log_t).detach().numpy().astype(np.float32)
    return a, c.detach().numpy().astype(np.float32)


def abstain_threshold(probs: np.ndarray, y: np.ndarray, target_precision: float = 0.9) -> float:
    """Smallest top-1 probability above which held-out accuracy reaches ``target_precision``.

    Predictions below it are flagged needs-review. 0.5 when there is too little held-out data.
    """
    if len(y) < 20:
        return 0.5
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    order = np.argsort(-conf)
    acc = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    ok = np.nonzero(acc >= target_precision)[0]
    if len(ok) == 0:
        return float(conf.max())
    # the largest accepted set meeting the precision target
    return float(conf[order][ok[-1]])
