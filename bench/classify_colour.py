"""baseColour on myntra-dev: image embedding vs foreground colour descriptor vs both (learned calibration).

Same fixed split as ``classify_myntra.py``. Descriptors are computed once per image and cached in
the home (run on a writable copy of the bench home); the first run prints the per-image time.

    python bench/classify_colour.py --home /tmp/bench-home-copy
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def run(home: str, model: str, field: str) -> None:
    from classify_myntra import split

    from catalens.classify.colour.calibration import colour_descriptors
    from catalens.classify.labels import catalog_labels
    from catalens.classify.metrics import ece, scores
    from catalens.classify.predict import field_probas, predict_rows
    from catalens.classify.train import image_matrix, train_on_matrix
    from catalens.core import Catalog

    cat = Catalog.open(home)
    L = catalog_labels(cat.db, [field])
    tr, te = split(cat, L)
    X, _ = image_matrix(cat, L.shas, model)
    t0 = time.perf_counter()
    D = colour_descriptors(cat, L.shas)
    print(
        json.dumps({"descriptor_s_total_cached_or_computed": round(time.perf_counter() - t0, 2)}), flush=True
    )
    inputs = {"image": X, "colour descriptor": D, "image+colour descriptor": np.hstack([X, D])}
    Ltr = L.subset(tr)
    for name, M in inputs.items():
        for C in (0.5, 0.1):
            t0, c0 = time.perf_counter(), time.process_time()
            clf = train_on_matrix(
                M[tr],
                Ltr,
                [field],
                "linear",
                name="b",
                model=model,
                model_version=None,
                drop_rare=True,
                opts={"C": C},
            )
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            P = field_probas(clf, M[te])
            rows = predict_rows(clf, P, threshold=0.0)
            idx = [k for k, i in enumerate(te) if L.labels[field][i] is not None]
            res = scores([L.labels[field][te[k]] for k in idx], [rows[k][field].label for k in idx])
            col = {c: j for j, c in enumerate(clf.classes(field))}
            known = [k for k in idx if L.labels[field][te[k]] in col]
            res["ece"] = ece(P[field][known], np.array([col[L.labels[field][te[k]]] for k in known]))
            print(
                json.dumps(
                    {
                        "input": name,
                        "C": C,
                        "field": field,
                        **{k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()},
                        "train_wall_s": round(wall, 2),
                        "train_cpu_s": round(cpu, 2),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--field", default="baseColour")
    a = ap.parse_args()
    run(a.home, a.model, a.field)
