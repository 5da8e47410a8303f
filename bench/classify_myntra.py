"""Classification benchmark on myntra-dev stored embeddings (a catalens home with the labels as attrs).

Fixed seeded 80/20 split by product id with no shared title and no duplicate image (pixel hash)
across the split. Prints one JSON line per (method, field) and a speed line.

    python bench/classify_myntra.py --home /work/bench-home [--colour] [--fused] [--only-fused]

``--fused`` adds image+title inputs (linear heads, ``train.FUSED_LINEAR_OPTS``): MiniLM title
embedding (``image+text``), hashed title words (``image+words``, :mod:`catalens.classify.text_features`)
and both; ``--fused-inputs`` picks some of them.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

FIELDS = ["masterCategory", "subCategory", "articleType", "gender", "baseColour"]
HIER = FIELDS[:3]


def groups(cat, labels) -> list[list[int]]:
    """Row indices grouped into connected components of (same title) or (same pixel hash): one
    product's photos and exact copies, which must stay on one side of any split."""
    parent = list(range(len(labels)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, sha in enumerate(labels.shas):
        rec = cat.db.image(sha)
        keys = [("pix", rec.pixel_sha256 or sha)]
        if labels.titles[i]:
            keys.append(("title", labels.titles[i].strip().lower()))
        for k in keys:
            if k in first:
                parent[find(i)] = find(first[k])
            else:
                first[k] = i
    out: dict[int, list[int]] = {}
    for i in range(len(labels)):
        out.setdefault(find(i), []).append(i)
    return list(out.values())


def split(cat, labels, seed: int = 0, test_frac: float = 0.2) -> tuple[list[int], list[int]]:
    """Groups (:func:`groups`) go wholly to one side."""
    groups_ = dict(enumerate(groups(cat, labels)))
    order = sorted(groups_, key=lambda g: min(labels.product_ids[i] or "" for i in groups_[g]))
    rng = np.random.default_rng(seed)
    rng.shuffle(order)
    test: list[int] = []
    for g in order:
        if len(test) >= test_frac * len(labels):
            break
        test.extend(groups_[g])
    ts = set(test)
    return [i for i in range(len(labels)) if i not in ts], sorted(test)


def run(
    home: str,
    colour: bool,
    fused: bool,
    only_fused: bool = False,
    fused_inputs: tuple[str, ...] = ("image+text", "image+words", "image+text+words"),
    calibration: str = "holdout",
    image_methods: tuple[str, ...] = ("prototype", "linear"),
    model: str = "efficientnet-lite0",
) -> None:
    import torch

    torch.set_num_threads(2)
    from catalens.classify.labels import catalog_labels
    from catalens.classify.metrics import ece, scores
    from catalens.classify.predict import field_probas, predict_rows
    from catalens.classify.train import colour_matrix, image_matrix, text_matrix, train_on_matrix
    from catalens.core import Catalog

    cat = Catalog.open(home)
    L = catalog_labels(cat.db, FIELDS)
    tr, te = split(cat, L)
    print(json.dumps({"split": {"train": len(tr), "test": len(te)}}), flush=True)
    Ximg, _ = image_matrix(cat, L.shas, model)
    inputs = {"image": Ximg}
    if fused:
        from catalens.classify.text_features import word_features

        T, Wd = text_matrix(L.titles, "minilm"), word_features(L.titles)
        for name, parts in (("image+text", [T]), ("image+words", [Wd]), ("image+text+words", [T, Wd])):
            if name in fused_inputs:
                inputs[name] = np.hstack([Ximg, *parts])
    if colour:
        t0 = time.perf_counter()
        C = colour_matrix(cat, L.shas)
        print(json.dumps({"colour_features_s_per_image": (time.perf_counter() - t0) / len(L)}), flush=True)
        inputs["image+colour"] = np.hstack([Ximg, C])
    Ltr = L.subset(tr)
    image_clf = train_on_matrix(
        Ximg[tr], Ltr, FIELDS[:1], "prototype", name="b", model="m", model_version=None
    )
    if only_fused:
        inputs.pop("image")
    for inp, X in inputs.items():
        methods = list(image_methods) if inp == "image" else ["linear"]
        fields = FIELDS if inp != "image+colour" else ["baseColour"]
        for method in methods:
            t0 = time.perf_counter()
            clf = train_on_matrix(
                X[tr],
                Ltr,
                fields,
                method,
                name="bench",
                model=model,
                model_version=None,
                hierarchy=HIER,
                drop_rare=True,
                text_model="minilm" if "text" in inp else None,
                title_words="words" in inp,
                use_colour="colour" in inp,
                calibration=calibration,
            )
            if inp == "image":
                image_clf = clf
            train_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            P = field_probas(clf, X[te])
            pred_s = time.perf_counter() - t0
            for mode in ("joint", "none") if inp == "image" else ("joint",):
                rows = predict_rows(clf, P, hierarchy=mode, threshold=0.0)
                for f in fields:
                    idx = [k for k, i in enumerate(te) if L.labels[f][i] is not None]
                    yt = [L.labels[f][te[k]] for k in idx]
                    yp = [rows[k][f].label for k in idx]
                    res = scores(yt, yp)
                    col = {c: j for j, c in enumerate(clf.classes(f))}
                    known = [k for k in idx if L.labels[f][te[k]] in col]
                    yi = np.array([col[L.labels[f][te[k]]] for k in known])
                    res["ece"] = ece(P[f][known], yi)
                    res["ece_uncalibrated"] = ece(clf.head(f).proba(X[te][known], temperature=1.0), yi)
                    print(
                        json.dumps(
                            {
                                "input": inp,
                                "method": method,
                                "calibration": calibration,
                                "hierarchy": mode,
                                "field": f,
                                **{k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()},
                                "train_s": round(train_s, 2),
                            }
                        ),
                        flush=True,
                    )
            print(
                json.dumps({"input": inp, "method": method, "predict_images_per_s": round(len(te) / pred_s)}),
                flush=True,
            )
    # speed: classifying stored embeddings, all 5 fields, large batch (median of 5)
    big = np.tile(Ximg, (10, 1))
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        field_probas(image_clf, big)
        times.append(time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "speed": "stored embeddings",
                "images": len(big),
                "images_per_s": round(len(big) / float(np.median(times))),
            }
        )
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", default="/work/bench-home")
    ap.add_argument("--colour", action="store_true")
    ap.add_argument("--fused", action="store_true")
    ap.add_argument("--only-fused", action="store_true", help="skip the image-only heads (implies --fused)")
    ap.add_argument("--fused-inputs", default="image+text,image+words,image+text+words")
    ap.add_argument("--calibration", default="holdout", help="holdout | crossfit | vector (train.fit_field)")
    ap.add_argument("--methods", default="prototype,linear", help="heads on the image-only input")
    ap.add_argument("--model", default="efficientnet-lite0", help="stored image embeddings to use")
    a = ap.parse_args()
    run(
        a.home,
        a.colour,
        a.fused or a.only_fused,
        a.only_fused,
        tuple(a.fused_inputs.split(",")),
        a.calibration,
        tuple(a.methods.split(",")),
        a.model,
    )
