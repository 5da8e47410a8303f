"""Evaluation of a classifier on labelled data: JSON metrics per field and an HTML report."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from catalens.classify.metrics import ece, per_class, reliability, scores


def evaluate_field(
    y_true: list[str | None], y_pred: list[str], probs: np.ndarray, classes: list[str]
) -> dict[str, Any]:
    """Metrics for one field over the labelled rows; ECE over rows whose class the head knows."""
    rows = [i for i, v in enumerate(y_true) if v is not None]
    yt = [y_true[i] for i in rows]
    yp = [y_pred[i] for i in rows]
    res = scores(yt, yp)  # type: ignore[arg-type]
    col = {c: j for j, c in enumerate(classes)}
    known = [i for i in rows if y_true[i] in col]
    if known:
        yi = np.array([col[y_true[i]] for i in known])
        res["ece"] = ece(probs[known], yi)
        res["reliability"] = reliability(probs[known], yi)
    else:
        res["ece"] = None
        res["reliability"] = []
    res["unknown_classes"] = sorted({y_true[i] for i in rows} - set(col))  # type: ignore[type-var]
    res["per_class"] = per_class(yt, yp)  # type: ignore[arg-type]
    res["_pairs"] = (yt, yp)
    return res


def _confusion_png(yt: list[str], yp: list[str], path: Path, max_classes: int = 40) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from collections import Counter

    import matplotlib.pyplot as plt

    top = [c for c, _ in Counter(yt).most_common(max_classes)]
    idx = {c: i for i, c in enumerate(top)}
    m = np.zeros((len(top), len(top)))
    for a, b in zip(yt, yp, strict=True):
        if a in idx and b in idx:
            m[idx[a], idx[b]] += 1
    m = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    size = max(4, 0.25 * len(top) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(top)), top, rotation=90, fontsize=7)
    ax.set_yticks(range(len(top)), top, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion (row-normalised, {len(top)} most frequent classes)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _reliability_png(bins: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    centres = [(b["lo"] + b["hi"]) / 2 for b in bins]
    ax.bar(centres, [b["accuracy"] if b["count"] else 0 for b in bins], width=0.09, label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(report_dir: str | Path, name: str, results: dict[str, dict[str, Any]]) -> Path:
    """index.html with, per field, the metrics, a per-class table, a confusion matrix and a reliability diagram."""
    d = Path(report_dir)
    d.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!doctype html><meta charset='utf-8'><title>catalens classify eval: " + html.escape(name) + "</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}</style>",
        f"<h1>Classifier {html.escape(name)}</h1>",
    ]
    for f, res in results.items():
        safe = "".join(ch if ch.isalnum() else "_" for ch in f)
        yt, yp = res["_pairs"]
        _confusion_png(yt, yp, d / f"confusion_{safe}.png")
        if res.get("reliability"):
            _reliability_png(res["reliability"], d / f"reliability_{safe}.png", f"{f}: ECE {res['ece']:.3f}")
        parts.append(f"<h2>{html.escape(f)}</h2>")
        parts.append(
            "<p>n={n} accuracy={accuracy:.4f} macro-F1={macro_f1:.4f} weighted-F1={weighted_f1:.4f} ECE={e}</p>".format(
                e="n/a" if res.get("ece") is None else f"{res['ece']:.4f}", **res
            )
        )
        parts.append(f"<img src='confusion_{safe}.png' alt='confusion matrix'>")
        if res.get("reliability"):
            parts.append(f"<img src='reliability_{safe}.png' alt='reliability diagram'>")
        parts.append(
            "<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>"
        )
        for row in sorted(res["per_class"], key=lambda r: -r["support"]):
            parts.append(
                f"<tr><td>{html.escape(str(row['class']))}</td><td>{row['precision']:.3f}</td>"
                f"<td>{row['recall']:.3f}</td><td>{row['f1']:.3f}</td><td>{row['support']}</td></tr>"
            )
        parts.append("</table>")
    out = d / "index.html"
    out.write_text("\n".join(parts))
    return out
