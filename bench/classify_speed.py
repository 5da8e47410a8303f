"""Speed of classification on stored embeddings and of linear-probe training (myntra-dev, Lite0).

Prints JSON lines: images/s of (a) scoring + hierarchy decoding + top-k/abstain arrays on the
stored matrix tiled 10x (median of 5), (b) the same plus per-row objects (the JSON/API form),
(c) ``classify_all`` end to end with predictions stored in the catalog; and the wall and CPU time
of training a 5-field linear classifier (fit + calibration refit). Run on a writable copy of the
bench home (``classify_all`` stores predictions).

    python bench/classify_speed.py --home /tmp/bench-home-copy
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

FIELDS = ["masterCategory", "subCategory", "articleType", "gender", "baseColour"]


def run(home: str, model: str) -> None:
    import torch

    torch.set_num_threads(2)
    from catalens.classify.classifier import save_classifier
    from catalens.classify.labels import catalog_labels
    from catalens.classify.predict import field_probas, predict_arrays, predict_rows
    from catalens.classify.train import image_matrix, train_on_matrix
    from catalens.core import Catalog

    cat = Catalog.open(home)
    L = catalog_labels(cat.db, FIELDS)
    X, _ = image_matrix(cat, L.shas, model)
    t0, c0 = time.perf_counter(), time.process_time()
    clf = train_on_matrix(
        X,
        L,
        FIELDS,
        "linear",
        name="speed-bench",
        model=model,
        model_version=None,
        hierarchy=FIELDS[:3],
        drop_rare=True,
    )
    print(
        json.dumps(
            {
                "train": "linear, 5 fields, fit + calibration refit",
                "rows": len(X),
                "wall_s": round(time.perf_counter() - t0, 2),
                "cpu_s": round(time.process_time() - c0, 2),
                "load_avg_1m": os.getloadavg()[0],
            }
        ),
        flush=True,
    )
    big = np.tile(X, (10, 1))
    arr_t, row_t = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        P = field_probas(clf, big)
        predict_arrays(clf, P)
        arr_t.append(time.perf_counter() - t0)
    for _ in range(3):
        t0 = time.perf_counter()
        predict_rows(clf, field_probas(clf, big[: len(X)]))
        row_t.append(time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "speed": "stored embeddings -> probabilities + hierarchy decoding + top-3 + abstain (arrays)",
                "images": len(big),
                "images_per_s": round(len(big) / float(np.median(arr_t))),
            }
        ),
        flush=True,
    )
    print(
        json.dumps(
            {
                "speed": "same, plus per-row prediction objects (JSON/API form)",
                "images": len(X),
                "images_per_s": round(len(X) / float(np.median(row_t))),
            }
        ),
        flush=True,
    )
    save_classifier(cat.settings.home, clf)
    res = cat.classify_all("speed-bench")
    print(
        json.dumps(
            {
                "speed": "classify_all (stored vectors, 5 fields, predictions stored)",
                "images": res.images,
                "seconds": round(res.seconds, 3),
                "images_per_s": round(res.images / max(round(res.seconds, 3), 1e-9)),
                "load_avg_1m": os.getloadavg()[0],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--model", default="efficientnet-lite0")
    a = ap.parse_args()
    run(a.home, a.model)
