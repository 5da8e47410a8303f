"""Metrics: accuracy, macro / weighted F1, expected calibration error, reliability bins."""

from __future__ import annotations

from typing import Any

import numpy as np


def ece(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error of the top-1 probability (equal-width bins)."""
    if len(y) == 0:
        return 0.0
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


def reliability(probs: np.ndarray, y: np.ndarray, n_bins: int = 10) -> list[dict[str, float]]:
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    out = []
    for b in range(n_bins):
        m = bins == b
        out.append(
            {
                "lo": b / n_bins,
                "hi": (b + 1) / n_bins,
                "count": int(m.sum()),
                "confidence": float(conf[m].mean()) if m.any() else 0.0,
                "accuracy": float(correct[m].mean()) if m.any() else 0.0,
            }
        )
    return out


def scores(
    y_true: list[str], y_pred: list[str], probs: np.ndarray | None = None, y_idx: np.ndarray | None = None
) -> dict[str, Any]:
    """accuracy, macro-F1, weighted-F1 (over the true classes) and, with probabilities, ECE."""
    from sklearn.metrics import accuracy_score, f1_score

    labels = sorted(set(y_true))
    out: dict[str, Any] = {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)) if y_true else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
        if y_true
        else 0.0,
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0))
        if y_true
        else 0.0,
    }
    if probs is not None and y_idx is not None:
        out["ece"] = ece(probs, y_idx)
    return out


def per_class(y_true: list[str], y_pred: list[str]) -> list[dict[str, Any]]:
    from sklearn.metrics import precision_recall_fscore_support

    labels = sorted(set(y_true) | set(y_pred))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return [
        {"class": c, "precision": float(pi), "recall": float(ri), "f1": float(fi), "support": int(si)}
        for c, pi, ri, fi, si in zip(labels, p, r, f, s, strict=True)
    ]
