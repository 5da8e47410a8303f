"""The out-of-the-box classifier (``catalens classify photo.jpg``, no training) against catalog labels.

The built-in taxonomy classifier maps the packaged Lite0's ImageNet classes onto e-commerce
categories (``src/catalens/classify/data/ecommerce.yaml``): the probabilities of a node's classes
are summed and the answer is "unknown" below ``unknown_below``. This scores its ``category`` answer
on labelled photos, side by side with a baseline: the node of the single most probable ImageNet
class (no summing, "unknown" only when that class is unmapped).

Ground truth, from the datasets' own labels (documented here, not tuned):
myntra masterCategory Apparel -> apparel, Footwear -> footwear, Personal Care -> beauty and personal
care, Sporting Goods -> sports, Home -> home; Accessories by subCategory: Bags and Wallets -> bags,
Watches -> watches, Jewellery -> jewellery, Eyewear -> eyewear, Socks -> footwear (the built-in tree
files socks under footwear), Water Bottle -> kitchen, any other -> accessories; Free Items are skipped.
clothing-dev: hat -> accessories, shoes -> footwear, the other eight classes -> apparel.

Sets: myntra-dev and clothing-dev from stored Lite0 embeddings (as ``classify --all -c builtin``
scores them: typical feature norm), myntra-fullres-dev from the files (exact norm) at full size and
shrunk to fit 60x80, and myntra-dev shrunk to fit 60x80. Prints one JSON line per (set, method)
with accuracy (unknown counts as wrong), the share answered and the precision of the answers,
then, for the built-in rule, the same at other ``unknown_below`` values.

    python bench/classify_builtin.py --home /work/bench-home --clothing-home /work/bench-home-clothing \\
        --data ../shared/data
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classify_sizes import shrink  # noqa: E402

ACCESSORY_SUBS = {
    "Bags": "bags",
    "Wallets": "bags",
    "Watches": "watches",
    "Jewellery": "jewellery",
    "Eyewear": "eyewear",
    "Socks": "footwear",
    "Water Bottle": "kitchen",
}
MASTER = {
    "Apparel": "apparel",
    "Footwear": "footwear",
    "Personal Care": "beauty and personal care",
    "Sporting Goods": "sports",
    "Home": "home",
}
THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def myntra_truth(master: str | None, sub: str | None) -> str | None:
    if master == "Accessories":
        return ACCESSORY_SUBS.get(sub or "", "accessories")
    return MASTER.get(master or "")


def clothing_truth(label: str | None) -> str | None:
    return None if not label else {"hat": "accessories", "shoes": "footwear"}.get(label, "apparel")


def scores(pred: list[str], truth: list[str]) -> dict[str, float]:
    n = len(truth)
    answered = [i for i, p in enumerate(pred) if p != "unknown"]
    right = sum(pred[i] == truth[i] for i in range(n))
    return {
        "n": n,
        "accuracy": round(right / max(n, 1), 4),
        "answered": round(len(answered) / max(n, 1), 4),
        "precision": round(sum(pred[i] == truth[i] for i in answered) / max(len(answered), 1), 4),
    }


def evaluate(name: str, clf, top_node: list[str | None], x: np.ndarray, scale, truth: list[str]) -> None:
    from catalens.classify.classifier import softmax

    head = clf.head("category")
    P = softmax(head.logits(x, scale))
    C = P @ head.aggregate
    cats = clf.classes("category")
    best = C.argmax(1)
    conf = C[np.arange(len(C)), best]
    pred = [cats[j] if c >= head.threshold else "unknown" for j, c in zip(best, conf, strict=True)]
    emit(
        {
            "set": name,
            "method": f"builtin (summed, unknown below {head.threshold:.2f})",
            **scores(pred, truth),
        }
    )
    base = [top_node[k] or "unknown" for k in P.argmax(1)]
    emit({"set": name, "method": "baseline: node of the top ImageNet class", **scores(base, truth)})
    curve = {}
    for t in THRESHOLDS:
        p = [cats[j] if c >= t else "unknown" for j, c in zip(best, conf, strict=True)]
        curve[str(t)] = scores(p, truth)
    emit({"set": name, "method": "builtin at other unknown_below", "curve": curve})
    per: dict[str, dict[str, int]] = {}
    for p, t in zip(pred, truth, strict=True):
        d = per.setdefault(t, {"n": 0, "right": 0, "unknown": 0})
        d["n"] += 1
        d["right"] += int(p == t)
        d["unknown"] += int(p == "unknown")
    emit({"set": name, "per_category": per})


def stored(cat, shas: list[str]) -> np.ndarray:
    from catalens.classify.train import image_matrix

    return image_matrix(cat, shas, "efficientnet-lite0")[0]


def from_files(cat, paths: list[str], size: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    from catalens.imageio import open_image
    from catalens.vectors import l2_normalize

    enc = cat.encoder("efficientnet-lite0")
    rows = []
    for s in range(0, len(paths), 32):
        ims = [open_image(p).image for p in paths[s : s + 32]]
        if size:
            ims = [shrink(im, size) for im in ims]
        rows.append(np.asarray(enc.encode(np.stack([enc.preprocess(im) for im in ims])), np.float32))
    raw = np.concatenate(rows)
    return l2_normalize(raw), np.linalg.norm(raw, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True, help="catalog of myntra-dev with Lite0 embeddings")
    ap.add_argument("--clothing-home", help="catalog of clothing-dev with Lite0 embeddings")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    a = ap.parse_args()
    from catalens.classify.builtin import builtin_classifier, mapping_table
    from catalens.classify.labels import catalog_labels
    from catalens.core import Catalog

    clf = builtin_classifier()
    top_node = [str(r["node"]).split(" > ")[0] if r["node"] else None for r in mapping_table()]
    cat = Catalog.open(a.home)
    L = catalog_labels(cat.db, ["masterCategory", "subCategory"])
    keep = [
        i
        for i in range(len(L.shas))
        if myntra_truth(L.labels["masterCategory"][i], L.labels["subCategory"][i])
    ]
    truth = [myntra_truth(L.labels["masterCategory"][i], L.labels["subCategory"][i]) for i in keep]
    shas = [L.shas[i] for i in keep]
    evaluate("myntra-dev (stored)", clf, top_node, stored(cat, shas), None, truth)  # type: ignore[arg-type]
    paths = []
    for s in shas:
        rec = cat.db.image(s)
        paths.append(rec.stored_path or rec.source)
    x, norm = from_files(cat, paths, (60, 80))
    evaluate("myntra-dev 60x80 (files)", clf, top_node, x, norm, truth)  # type: ignore[arg-type]
    if a.clothing_home:
        cc = Catalog.open(a.clothing_home)
        Lc = catalog_labels(cc.db, ["label"])
        idx = [i for i in range(len(Lc.shas)) if clothing_truth(Lc.labels["label"][i])]
        truth_c = [clothing_truth(Lc.labels["label"][i]) for i in idx]
        evaluate("clothing-dev (stored)", clf, top_node, stored(cc, [Lc.shas[i] for i in idx]), None, truth_c)  # type: ignore[arg-type]
    full = Path(a.data) / "myntra-fullres-dev"
    with open(full / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if myntra_truth(r["masterCategory"], r["subCategory"])]
    paths_f = [str(full / r["image"]) for r in rows]
    truth_f = [myntra_truth(r["masterCategory"], r["subCategory"]) for r in rows]
    for size in (None, (60, 80)):
        x, norm = from_files(cat, paths_f, size)
        name = "myntra-fullres-dev " + ("full (files)" if size is None else "60x80 (files)")
        evaluate(name, clf, top_node, x, norm, truth_f)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
