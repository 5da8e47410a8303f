"""The README's classification figures re-measured on a lock-box (issue 20 item 1): Lite0 vs Lite0-hc,
with and without thumbnail views, as stored (225x300) and as 60x80 thumbnails.

    catalens --home /tmp/semi-home ingest ../shared/data/myntra-dev/labels.csv --id-col id --text-col productDisplayName   # the bench home: Lite0, titles, labels
    catalens --home /tmp/semi-home embed --model efficientnet-lite0-hc
    python bench/classify_lockbox.py --home /tmp/semi-home --half dev
    python bench/classify_lockbox.py --home /tmp/semi-home --half lockbox

Rows and split: those of ``bench/classify_semi.py`` (title / pixel groups by the md5 of ``semi:``): linear
heads (library ``train_on_matrix``, rare classes dropped, as ``catalens classify train --drop-rare``) trained on
every labelled ``pool`` row (60%), scored on ``dev`` or ``lockbox`` (20% each). The choices these figures
stand for (Lite0-hc as the classifier input, thumbnail views with routing by size) were made earlier on
another split of the same photos (``bench/classify_myntra.py``, ``classify_sizes.py``); nothing is
chosen here: this is their held-out measurement. Weighted-F1 per model, views, size and field.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from classify_semi import parts, weighted_f1s  # noqa: E402

FIELDS = ["articleType", "gender", "baseColour"]
MODELS = ("efficientnet-lite0", "efficientnet-lite0-hc")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--half", choices=("dev", "lockbox"), required=True)
    args = ap.parse_args()
    from catalens.classify.labels import catalog_labels
    from catalens.classify.thumbnail_views import view_matrix
    from catalens.classify.train import image_matrix, train_on_matrix
    from catalens.core import Catalog

    t0 = time.perf_counter()
    cat = Catalog.open(args.home)
    L = catalog_labels(cat.db, FIELDS)
    split = parts(cat, L)
    pool, held = split["pool"], split[args.half]
    small = np.tile([[60, 80]], (len(held), 1))
    out: dict[str, object] = {"half": args.half, "train_rows": len(pool), "held_rows": len(held)}
    for model in MODELS:
        X, version = image_matrix(cat, L.shas, model)
        V, problems = view_matrix(cat, L.shas, model, version, X, "thumb")
        for views in ("none", "thumb"):
            clf = train_on_matrix(
                X[pool], L.subset(pool), FIELDS, "linear", name="lockbox", model=model, model_version=version,
                drop_rare=True, views={"thumb": V[pool]} if views == "thumb" else None,
            )  # fmt: skip
            row = {
                size: {f: round(v, 4) for f, v in weighted_f1s(clf, E, sizes, L, held, FIELDS).items()}
                for size, (E, sizes) in {"225x300": (X[held], None), "60x80": (V[held], small)}.items()
            }
            out[f"{model}|views={views}"] = row
        out[f"{model}|view_problems"] = len(problems)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
