"""Classification from few labels, using the unlabelled catalog: learning curves (issue 20 item 8).

    catalens --home /tmp/semi-home ingest ../shared/data/myntra-dev/labels.csv --id-col id --text-col productDisplayName   # the bench home: Lite0, titles, labels
    python bench/classify_semi.py --home /tmp/semi-home --half dev        # choose here
    python bench/classify_semi.py --home /tmp/semi-home --half lockbox    # report once

Rows: the labelled myntra-dev images of the home, in groups that share a title or a pixel hash (one
product's photos, exact copies: a group is wholly on one side). Groups are split by the md5 of
``semi:<first product id>``: ``pool`` 60% (labels are drawn from it, the rest of it is the unlabelled
catalog), ``dev`` 20%, ``lockbox`` 20%. Fields: articleType, gender, baseColour.

Methods, each trained with the library's linear heads, thumbnail views and rare classes dropped
(``train_on_matrix``, as ``catalens classify train --drop-rare`` does), for 100, 300 and 1,000 labelled rows (two seeded draws each, mean) and the
whole pool:
- ``supervised``: the labelled rows alone;
- ``self_training``: the supervised classifier labels the unlabelled pool; rows whose calibrated
  probability of the top label is >= 0.9 join the training rows with that label (per field), refit once;
- ``propagation``: labels spread over the kNN graph of the pool (scikit-learn ``LabelSpreading``,
  10 neighbours, alpha 0.2, on the classifier's input), rows whose spread label has >= 0.9 of its
  distribution join as above, refit once.
Inputs: ``image`` (the Lite0 embedding) and ``image+title`` (with the MiniLM title embedding,
``train.fuse``; the graph then joins products by look and by title).

Scored: weighted-F1 per field on the half's rows as stored (225x300) and as 60x80 thumbnails (the
``thumb`` view; rows scored by the small heads, as a 60x80 photo would be). Nothing here is tuned:
the 0.9 limit, k and alpha are set as written before the first run (variants tried on dev: 1).
A method is kept for the library only if it beats ``supervised`` on the lock-box part.

``--library-check N``: instead, the library path of the kept method - ``Catalog.train_classifier`` on a
labels CSV of the first seeded draw of N pool rows, articleType, views off, no hold-out, with and
without ``propagate=["articleType"]`` (unlabelled set: every other image of the home) - scored on
the half's rows as stored.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

FIELDS = ["articleType", "gender", "baseColour"]
LABELS = (100, 300, 1000)
MIN_P = 0.9
MODEL = "efficientnet-lite0"


def parts(cat, labels) -> dict[str, list[int]]:  # type: ignore[no-untyped-def]
    """Row indices of ``pool``, ``dev`` and ``lockbox``: groups of rows sharing a title or pixel hash
    (``classify_myntra.groups``) go wholly to one part, by the md5 of their first product id."""
    from classify_myntra import groups

    out: dict[str, list[int]] = {"pool": [], "dev": [], "lockbox": []}
    for rows in groups(cat, labels):
        key = min(labels.product_ids[i] or labels.shas[i] for i in rows)
        u = int(hashlib.md5(f"semi:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        out["pool" if u < 0.6 else "dev" if u < 0.8 else "lockbox"].extend(rows)
    return {k: sorted(v) for k, v in out.items()}


def weighted_f1s(clf, E: np.ndarray, sizes, labels, rows: list[int], fields: list[str]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Weighted-F1 per field of ``clf`` on the inputs ``E`` of ``rows`` (rows without a label for a
    field are left out of it); ``sizes``: the photos' sizes, for routing to the small heads."""
    from sklearn.metrics import f1_score

    from catalens.classify.predict import field_probas

    probs = field_probas(clf, E, sizes=sizes)
    out = {}
    for f in fields:
        keep = [j for j, i in enumerate(rows) if labels.labels[f][i] is not None]
        pred = np.array(clf.head(f).classes)[probs[f].argmax(1)]
        truth = [labels.labels[f][rows[j]] for j in keep]
        out[f] = float(f1_score(truth, pred[keep], average="weighted", zero_division=0))
    return out


def with_pseudo(labels, lab: list[int], unl: list[int], guesses: dict[str, tuple[np.ndarray, np.ndarray]]):  # type: ignore[no-untyped-def]
    """A LabelSet of the labelled rows plus the unlabelled rows, whose labels per field are the
    guess where its probability is >= MIN_P (else None: not used for that field)."""
    from catalens.classify.labels import LabelSet

    base = labels.subset(lab + unl)
    new = {}
    for f in FIELDS:
        names, p = guesses[f]
        keep = p >= MIN_P
        new[f] = base.labels[f][: len(lab)] + [str(n) if k else None for n, k in zip(names, keep, strict=True)]
    return LabelSet(base.shas, base.product_ids, base.titles, new, base.source), {
        f: float((guesses[f][1] >= MIN_P).mean()) for f in FIELDS
    }


def library_check(home: str, half: str, n: int) -> int:
    import csv
    import tempfile

    from catalens.classify.labels import catalog_labels
    from catalens.classify.train import image_matrix
    from catalens.core import Catalog

    cat = Catalog.open(home)
    L = catalog_labels(cat.db, ["articleType"])
    split = parts(cat, L)
    lab = sorted(np.random.default_rng(n).choice(split["pool"], size=n, replace=False).tolist())
    held = split[half]
    X, _ = image_matrix(cat, [L.shas[i] for i in held], MODEL)
    out: dict[str, object] = {"half": half, "labels": n}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "labels.csv"
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["sha256", "articleType"])
            w.writerows([L.shas[i], L.labels["articleType"][i]] for i in lab)
        for name, spread in (("supervised", ()), ("propagate", ("articleType",))):
            clf = cat.train_classifier(
                "semi-check", ["articleType"], labels=path, drop_rare=True, holdout=0.0,
                propagate=spread, train_views="none", save=False,
            )  # fmt: skip
            f1 = weighted_f1s(clf, X, None, L, held, ["articleType"])["articleType"]
            out[name] = {"articleType": round(f1, 4), "propagated": clf.data.get("propagated")}
    print(json.dumps(out))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--half", choices=("dev", "lockbox"), required=True)
    ap.add_argument("--draws", type=int, default=2)
    ap.add_argument("--library-check", type=int, default=None, metavar="N")
    args = ap.parse_args()
    if args.library_check:
        return library_check(args.home, args.half, args.library_check)
    import torch
    from sklearn.semi_supervised import LabelSpreading

    from catalens.classify.labels import catalog_labels
    from catalens.classify.predict import field_probas
    from catalens.classify.thumbnail_views import view_matrix
    from catalens.classify.train import fuse, image_matrix, text_matrix, train_on_matrix
    from catalens.core import Catalog

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    cat = Catalog.open(args.home)
    L = catalog_labels(cat.db, FIELDS)
    X, version = image_matrix(cat, L.shas, MODEL)
    V, problems = view_matrix(cat, L.shas, MODEL, version, X, "thumb")
    T = text_matrix(L.titles, "minilm")
    split = parts(cat, L)
    pool, held = split["pool"], split[args.half]
    inputs = {"image": (X, V), "image+title": (fuse(X, T), fuse(V, T))}
    small = np.tile([[60, 80]], (len(held), 1))

    def score(clf, M: np.ndarray, Mv: np.ndarray) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
        return {
            "225x300": weighted_f1s(clf, M[held], None, L, held, FIELDS),
            "60x80": weighted_f1s(clf, Mv[held], small, L, held, FIELDS),
        }

    def fit(rows_labels, M: np.ndarray, Mv: np.ndarray, rows: list[int], seed: int):  # type: ignore[no-untyped-def]
        return train_on_matrix(
            M[rows], rows_labels, FIELDS, "linear", name="semi", model=MODEL, model_version=version,
            text_model="minilm" if M.shape[1] != X.shape[1] else None, seed=seed, views={"thumb": Mv[rows]},
            drop_rare=True,
        )

    results = []
    for n in [*LABELS, len(pool)]:
        draws = 1 if n >= len(pool) else args.draws
        for draw in range(draws):
            rng = np.random.default_rng(1000 * draw + n)
            lab = sorted(rng.choice(pool, size=min(n, len(pool)), replace=False).tolist())
            unl = sorted(set(pool) - set(lab))
            for inp, (M, Mv) in inputs.items():
                sup = fit(L.subset(lab), M, Mv, lab, draw)
                row = {"n": n, "draw": draw, "input": inp, "supervised": score(sup, M, Mv)}
                if unl:
                    probs = field_probas(sup, M[unl])
                    guesses = {
                        f: (np.array(sup.head(f).classes)[probs[f].argmax(1)], probs[f].max(1)) for f in FIELDS
                    }
                    ls, used = with_pseudo(L, lab, unl, guesses)
                    row["self_training"] = score(fit(ls, M, Mv, lab + unl, draw), M, Mv)
                    row["self_training_used"] = used
                    spread = {}
                    for f in FIELDS:
                        names = sorted({L.labels[f][i] for i in lab if L.labels[f][i] is not None})
                        y = np.array(
                            [names.index(L.labels[f][i]) if L.labels[f][i] is not None else -1 for i in lab]
                            + [-1] * len(unl)
                        )
                        model = LabelSpreading(kernel="knn", n_neighbors=10, alpha=0.2, max_iter=100)
                        model.fit(M[lab + unl], y)
                        dist = model.label_distributions_[len(lab) :]
                        spread[f] = (np.array(names)[dist.argmax(1)], np.nan_to_num(dist.max(1)))
                    ls, used = with_pseudo(L, lab, unl, spread)
                    row["propagation"] = score(fit(ls, M, Mv, lab + unl, draw), M, Mv)
                    row["propagation_used"] = used
                print(json.dumps(row), flush=True)
                results.append(row)
    # learning curves: the mean over draws, per input, method, size and field
    summary: dict[str, dict[str, list[float]]] = {}
    for row in results:
        for method in ("supervised", "self_training", "propagation"):
            for size, fields in row.get(method, {}).items():
                for f, v in fields.items():
                    key = f"{row['input']}|{method}|{size}|{f}"
                    summary.setdefault(key, {}).setdefault(str(row["n"]), []).append(v)
    curves = {k: {n: round(float(np.mean(v)), 4) for n, v in d.items()} for k, d in summary.items()}
    print(
        json.dumps(
            {
                "half": args.half,
                "pool": len(pool),
                "held": len(held),
                "view_problems": len(problems),
                "curves": curves,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
