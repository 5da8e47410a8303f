"""Few-shot classification on clothing-dev (10 classes, user photos): k examples per class.

Uses the stored embeddings of a catalens home of clothing-dev (attrs ``label``, ``split``):
training examples are drawn from ``split == train`` (k per class, 5 seeded draws, mean
accuracy), evaluation is on ``split == validation``. Methods: prototype (cosine nearest class
mean), prototype on features centred with the mean of the unlabelled training-split embeddings
(no labels used), linear probe (calibrated L-BFGS logistic regression), and both on all
training data.

    python bench/classify_fewshot.py --home /tmp/bench-home-clothing-copy
    python bench/classify_fewshot.py --home /tmp/clothing-l2 --ensemble-model efficientnet-lite2

``--ensemble-model``: the home also holds that model's embeddings (``catalens embed --model ...``);
adds the probability-averaging ensemble of the two prototype classifiers, trained and combined by
the library (``train_on_matrix`` + ``Ensemble``, as ``catalens classify -c a+b``), and the same
ensemble of two ``prototype-lr`` classifiers. ``--methods NAME...`` keeps the methods whose name
starts so; ``--first-seed N`` draws with seeds N..N+seeds-1 (choose settings on draws other than 0-4).
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def run(
    home: str,
    model: str,
    seeds: int,
    shots: list[int],
    ensemble_model: str | None = None,
    methods_only: list[str] | None = None,
    first_seed: int = 0,
) -> None:
    from catalens.classify.heads import fit_linear, fit_prototype, fit_prototype_lr
    from catalens.classify.labels import catalog_labels
    from catalens.classify.predict import Ensemble
    from catalens.classify.train import image_matrix, train_on_matrix
    from catalens.core import Catalog

    cat = Catalog.open(home)
    L = catalog_labels(cat.db, ["label", "split"])
    X, _ = image_matrix(cat, L.shas, model)
    X2 = image_matrix(cat, L.shas, ensemble_model)[0] if ensemble_model else None
    classes = sorted({v for v in L.labels["label"] if v})
    col = {c: j for j, c in enumerate(classes)}
    y = np.array([col.get(v, -1) if v else -1 for v in L.labels["label"]])
    split = np.array([v or "" for v in L.labels["split"]])
    tr = np.nonzero((split == "train") & (y >= 0))[0]
    te = np.nonzero((split == "validation") & (y >= 0))[0]
    centre = X[tr].mean(axis=0)  # unlabelled: no label is used
    print(json.dumps({"classes": len(classes), "train": len(tr), "test": len(te)}), flush=True)

    def accuracy(W: np.ndarray, b: np.ndarray) -> float:
        return float(((X[te] @ W.T + b).argmax(1) == y[te]).mean())

    methods = {
        "prototype": lambda idx: fit_prototype(X[idx], y[idx], len(classes)),
        "prototype+centring": lambda idx: fit_prototype(X[idx], y[idx], len(classes), centre=centre),
        "prototype-lr": lambda idx: fit_prototype_lr(X[idx], y[idx], len(classes)),
        "linear": lambda idx: fit_linear(X[idx], y[idx], len(classes)),
    }

    def ensemble_accuracy(idx: np.ndarray, method: str = "prototype") -> float:
        """Library path: two saved-style classifiers averaged (``classify -c a+b``)."""
        sub = L.subset(idx.tolist())
        members = [
            train_on_matrix(Xm[idx], sub, ["label"], method, name=f"fs{j}", model=m, model_version=None)
            for j, (Xm, m) in enumerate(((X, model), (X2, ensemble_model)))
        ]
        P = Ensemble(members).proba([X[te], X2[te]])["label"]  # type: ignore[index]
        names = members[0].classes("label")
        return float((np.array([col[names[j]] for j in P.argmax(1)]) == y[te]).mean())

    if X2 is not None:
        methods[f"prototype ensemble {model}+{ensemble_model}"] = ensemble_accuracy  # type: ignore[assignment]
        methods[f"prototype-lr ensemble {model}+{ensemble_model}"] = lambda idx: ensemble_accuracy(  # type: ignore[assignment]
            idx, "prototype-lr"
        )
    if methods_only:
        methods = {k: v for k, v in methods.items() if any(k.startswith(m) for m in methods_only)}
    for k in shots:
        for name, fit in methods.items():
            accs = []
            for seed in range(seeds):
                rng = np.random.default_rng(first_seed + seed)
                idx = np.concatenate(
                    [
                        rng.choice(tr[y[tr] == c], min(k, int((y[tr] == c).sum())), replace=False)
                        for c in range(len(classes))
                    ]
                )
                r = fit(idx)
                accs.append(r if isinstance(r, float) else accuracy(*r))
            print(
                json.dumps(
                    {
                        "shots": k,
                        "method": name,
                        "accuracy_mean": round(float(np.mean(accs)), 4),
                        "accuracy_std": round(float(np.std(accs)), 4),
                        "draws": seeds,
                    }
                ),
                flush=True,
            )
    for name, fit in methods.items():
        r = fit(tr)
        acc = r if isinstance(r, float) else accuracy(*r)
        print(json.dumps({"shots": "all", "method": name, "accuracy": round(acc, 4)}), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--shots", default="1,5,10,20")
    ap.add_argument("--ensemble-model", default=None, help="second model (stored embeddings) to ensemble")
    ap.add_argument("--methods", nargs="*", default=None, help="only methods whose name starts so")
    ap.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="seeds first..first+seeds-1 (tune settings on others than 0-4)",
    )
    a = ap.parse_args()
    shots = [int(s) for s in a.shots.split(",")]
    run(a.home, a.model, a.seeds, shots, a.ensemble_model, a.methods, a.first_seed)
