"""Image-only classifiers across photo sizes: 60x80 thumbnails to full resolution, side by side.

Heads are trained (library ``train_on_matrix``, linear, joint hierarchy decoding) on the stored
embeddings of the myntra-dev train split (``bench/classify_myntra.py``'s fixed split), then asked
about photos through the library's file path (``catalog_scoring.probas_images``: decode, the model's
preprocessing, encode), at several sizes:

- ``dev-test``: the 588 myntra-dev test-split photos (225x300 as stored), and the same photos
  shrunk to fit 60x80 (80x60 for a landscape photo; JPEG round trip, as a thumbnail file would be);
- ``fullres``: myntra-fullres-dev (200 other products, up to 1200 px; none shares an id or a title
  with myntra-dev), as they are, shrunk to fit 225x300 and to fit 60x80;
- ``clothing-val`` (with ``--clothing-home``): clothing-dev user photos (10 classes), heads trained
  on its train split, its validation split as stored (about 400x533) and shrunk to fit 60x80.

Each model is trained twice, side by side: on the stored embeddings only (``--views none``) and
on the stored embeddings plus their 60x80 thumbnail views (``thumb``, the default of ``catalens
train``; :mod:`catalens.classify.thumbnail_views`, computed once and cached in the home).

Prints one JSON line per (model, views, set, size, field): weighted-F1, accuracy, the drop against
the set's reference size (``225x300`` for dev-test, ``full`` for fullres), and the gain of the
views over none at that size.

    cp -r /tmp/hc-l2 /tmp/sizes-home     # myntra-dev with Lite0 and Lite0-hc embeddings
    cp -r /work/bench-home-clothing /tmp/cl-sizes   # clothing-dev with Lite0 embeddings
    python bench/classify_sizes.py --home /tmp/sizes-home --data ../shared/data \\
        --models efficientnet-lite0 efficientnet-lite0-hc [--clothing-home /tmp/cl-sizes]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classify_myntra import FIELDS, HIER, split  # noqa: E402

SIZES = {"60x80": (60, 80), "225x300": (225, 300)}


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def shrink(im, box: tuple[int, int]):
    """``im`` as a thumbnail file of ``box`` (short side, long side), oriented like the photo: the
    library's own view (``catalens.classify.thumbnail_views.view_image``: LANCZOS, JPEG round trip at 90)."""
    from catalens.classify.thumbnail_views import ViewSpec, view_image

    return view_image(im, ViewSpec(f"{box[0]}x{box[1]}", box))


def scores_for(
    clf, probs: dict, labels: list[dict[str, str | None]], hier: list[str]
) -> dict[str, dict[str, float]]:
    from catalens.classify.metrics import scores
    from catalens.classify.predict import decode

    classes = {f: clf.classes(f) for f in clf.fields}
    chosen = decode(probs, classes, [f for f in hier if f in probs], clf.paths, "joint")
    out = {}
    for f in clf.fields:
        idx = [k for k, row in enumerate(labels) if row.get(f)]
        res = scores([labels[k][f] for k in idx], [classes[f][int(chosen[f][k])] for k in idx])
        out[f] = {
            "weighted_f1": round(float(res["weighted_f1"]), 4),
            "accuracy": round(float(res["accuracy"]), 4),
        }
    return out


def compare(cat, L, tr: list[int], fields: list[str], hier: list[str], sets: dict, models: list[str],
            views_list: list[str], batch: int) -> None:  # fmt: skip
    """Train linear heads per (model, views) on rows ``tr`` of ``L``; score every set at every size."""
    from catalens.classify.catalog_scoring import probas_images
    from catalens.classify.thumbnail_views import parse_views, view_matrix
    from catalens.classify.train import image_matrix, train_on_matrix
    from catalens.imageio import open_image

    for model in models:
        X, version = image_matrix(cat, L.shas, model)
        base: dict[tuple[str, str, str], float] = {}
        for views in views_list:
            names = parse_views(views, "linear")
            t0 = time.perf_counter()
            V = {v: view_matrix(cat, L.shas, model, version, X, v)[0][tr] for v in names}
            view_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            clf = train_on_matrix(
                X[tr], L.subset(tr), fields, "linear", name="sizes", model=model, model_version=version,
                hierarchy=hier, drop_rare=True, views=V,
            )  # fmt: skip
            emit({"model": model, "views": views, "view_embed_s": round(view_s, 1),
                  "train_s": round(time.perf_counter() - t0, 1)})  # fmt: skip
            for set_name, (paths, labels, sizes) in sets.items():
                ref: dict[str, dict[str, float]] = {}
                for size in sizes:
                    t0 = time.perf_counter()
                    chunks: list[dict[str, np.ndarray]] = []
                    for s in range(0, len(paths), batch):
                        images = [open_image(p).image for p in paths[s : s + batch]]
                        if size in SIZES:
                            images = [shrink(im, SIZES[size]) for im in images]
                        chunks.append(probas_images(cat, clf, images))
                    probs = {f: np.concatenate([c[f] for c in chunks]) for f in chunks[0]}
                    res = scores_for(clf, probs, labels, hier)
                    if not ref:
                        ref = res
                    secs = time.perf_counter() - t0
                    for f, r in res.items():
                        key = (set_name, size, f)
                        base.setdefault(key, r["weighted_f1"])
                        emit({"model": model, "views": views, "set": set_name, "size": size, "field": f, **r,
                              "drop_vs_ref": round(ref[f]["weighted_f1"] - r["weighted_f1"], 4),
                              f"gain_vs_{views_list[0]}": round(r["weighted_f1"] - base[key], 4),
                              "img_per_s": round(len(paths) / secs, 1)})  # fmt: skip


def stored_paths(cat, shas: list[str]) -> list[str]:
    out = []
    for s in shas:
        rec = cat.db.image(s)
        out.append(rec.stored_path or rec.source)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--models", nargs="+", default=["efficientnet-lite0", "efficientnet-lite0-hc"])
    ap.add_argument("--views", nargs="+", default=["none", "thumb"])
    ap.add_argument(
        "--clothing-home", help="a catalog of clothing-dev (label, split columns) to score as well"
    )
    ap.add_argument("--clothing-models", nargs="+", default=["efficientnet-lite0"])
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from catalens.classify.labels import catalog_labels
    from catalens.core import Catalog

    cat = Catalog.open(a.home)
    L = catalog_labels(cat.db, FIELDS)
    tr, te = split(cat, L)
    dev_labels = [{f: L.labels[f][i] for f in FIELDS} for i in te]
    full_dir = Path(a.data) / "myntra-fullres-dev"
    with open(full_dir / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    full_paths = [str(full_dir / r["image"]) for r in rows]
    full_labels = [{f: (r.get(f) or None) for f in FIELDS} for r in rows]
    sets = {
        "dev-test": (stored_paths(cat, [L.shas[i] for i in te]), dev_labels, ["225x300", "60x80"]),
        "fullres": (full_paths, full_labels, ["full", "225x300", "60x80"]),
    }
    emit({"split": {"train": len(tr), "dev_test": len(te), "fullres": len(rows)}})
    compare(cat, L, tr, FIELDS, HIER, sets, a.models, a.views, a.batch)
    if a.clothing_home:
        cc = Catalog.open(a.clothing_home)
        Lc = catalog_labels(cc.db, ["label", "split"])
        trc = [i for i, v in enumerate(Lc.labels["split"]) if v == "train"]
        tec = [i for i, v in enumerate(Lc.labels["split"]) if v == "validation"]
        emit({"split": {"clothing_train": len(trc), "clothing_validation": len(tec)}})
        labels_c = [{"label": Lc.labels["label"][i]} for i in tec]
        sets_c = {
            "clothing-val": (stored_paths(cc, [Lc.shas[i] for i in tec]), labels_c, ["native", "60x80"])
        }
        compare(cc, Lc, trc, ["label"], [], sets_c, a.clothing_models, a.views, a.batch)


if __name__ == "__main__":
    main()
