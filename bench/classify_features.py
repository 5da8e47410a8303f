"""Image-only classification on myntra-dev per stored embedding model, side by side (and ensembles).

Same fixed split as ``bench/classify_myntra.py`` / ``bench/classify_finetune.py`` (seeded 80/20 by
product, no shared title and no pixel-identical image across; product ids in
``bench/data/myntra_dev_split.json``), linear and prototype heads from the library
(``train_on_matrix``, joint hierarchy decoding), ensembles by the library's ``Ensemble``
(probability averaging, as ``catalens classify -c a+b``). Prints JSON lines: one per
(model or ensemble, method, field), then one ``delta`` line per field against the first model.

    cp -r /work/bench-home /tmp/hc-home
    catalens --home /tmp/hc-home embed --model efficientnet-lite0-hc
    python bench/classify_features.py --home /tmp/hc-home \\
        --models efficientnet-lite0 efficientnet-lite0-hc [--ensembles efficientnet-lite0-hc+efficientnet-lite2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classify_myntra import FIELDS, HIER, split  # noqa: E402


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def wf1(clf_classes: dict, P: dict, paths: list, L, te: list[int]) -> dict[str, dict[str, float]]:
    from catalens.classify.metrics import ece, scores
    from catalens.classify.predict import decode

    chosen = decode(P, clf_classes, [f for f in HIER if f in P], paths, "joint")
    out = {}
    for f in P:
        idx = [k for k, i in enumerate(te) if L.labels[f][i] is not None]
        res = scores([L.labels[f][te[k]] for k in idx], [clf_classes[f][int(chosen[f][k])] for k in idx])
        col = {c: j for j, c in enumerate(clf_classes[f])}
        known = [k for k in idx if L.labels[f][te[k]] in col]
        res["ece"] = ece(P[f][known], np.array([col[L.labels[f][te[k]]] for k in known]))
        out[f] = {k: round(float(res[k]), 4) for k in ("weighted_f1", "macro_f1", "accuracy", "ece")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--models", nargs="+", default=["efficientnet-lite0", "efficientnet-lite0-hc"])
    ap.add_argument("--methods", nargs="+", default=["linear", "prototype"])
    ap.add_argument("--ensembles", nargs="*", default=[], help="a+b: linear heads of models a and b averaged")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from catalens.classify.labels import catalog_labels
    from catalens.classify.predict import Ensemble, field_probas
    from catalens.classify.train import image_matrix, train_on_matrix
    from catalens.core import Catalog

    cat = Catalog.open(a.home)
    L = catalog_labels(cat.db, FIELDS)
    tr, te = split(cat, L)
    emit({"split": {"train": len(tr), "test": len(te)}})
    Ltr = L.subset(tr)
    X: dict[str, np.ndarray] = {}
    linear = {}
    results: dict[tuple[str, str], dict] = {}
    for model in a.models:
        X[model], version = image_matrix(cat, L.shas, model)
        for method in a.methods:
            t0 = time.perf_counter()
            clf = train_on_matrix(
                X[model][tr], Ltr, FIELDS, method, name="b", model=model, model_version=version, hierarchy=HIER,
                drop_rare=True,
            )  # fmt: skip
            train_s = round(time.perf_counter() - t0, 1)
            if method == "linear":
                linear[model] = clf
            classes = {f: clf.classes(f) for f in FIELDS}
            res = wf1(classes, field_probas(clf, X[model][te]), clf.paths, L, te)
            results[(model, method)] = res
            for f, r in res.items():
                emit({"model": model, "version": version, "dim": X[model].shape[1], "method": method,
                      "field": f, **r, "train_s": train_s})  # fmt: skip
    for spec in a.ensembles:
        names = spec.split("+")
        for n in names:
            if n not in linear:
                X[n], _ = image_matrix(cat, L.shas, n)
                linear[n] = train_on_matrix(
                    X[n][tr], Ltr, FIELDS, "linear", name="b", model=n, model_version=None, hierarchy=HIER,
                    drop_rare=True,
                )  # fmt: skip
        ens = Ensemble([linear[n] for n in names])
        P = ens.proba([X[n][te] for n in names])
        classes = {f: ens.classes(f) for f in ens.fields}
        res = wf1(classes, P, linear[names[0]].paths, L, te)
        results[(spec, "linear")] = res
        for f, r in res.items():
            emit({"model": spec, "method": "linear ensemble", "field": f, **r})
    base = a.models[0]
    for (model, method), res in results.items():
        if model == base or (base, method) not in results:
            continue
        emit({"delta_vs": f"{base} {method}", "model": model, "method": method,
              **{f: round(res[f]["weighted_f1"] - results[(base, method)][f]["weighted_f1"], 4) for f in res}})  # fmt: skip


if __name__ == "__main__":
    main()
