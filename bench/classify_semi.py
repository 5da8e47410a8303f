"""Classification from few labels, using the unlabelled catalogue: learning curves (issue 20 item 8).

    cp -r /work/bench-home /tmp/semi-home      # myntra-dev with Lite0 embeddings, titles and labels
    python bench/classify_semi.py --home /tmp/semi-home --half dev        # choose here
    python bench/classify_semi.py --home /tmp/semi-home --half lockbox    # report once

Rows: the labelled myntra-dev images of the home, in groups that share a title or a pixel hash (one
product's photos, exact copies: a group is wholly on one side). Groups are split by the md5 of
``semi:<first product id>``: ``pool`` 60% (labels are drawn from it, the rest of it is the unlabelled
catalogue), ``dev`` 20%, ``lockbox`` 20%. Fields: articleType, gender, baseColour.

Methods, each trained with the library's linear heads, thumbnail views and rare classes dropped
(``train_on_matrix``, as ``catalens train --drop-rare`` does), for 100, 300 and 1,000 labelled rows (two seeded draws each, mean) and the
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
    """Row indices of ``pool``, ``dev`` and ``lockbox``: groups of rows sharing a title or pixel hash."""
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
    out: dict[str, list[int]] = {"pool": [], "dev": [], "lockbox": []}
    groups: dict[int, list[int]] = {}
    for i in range(len(labels)):
        groups.setdefault(find(i), []).append(i)
    for rows in groups.values():
        key = min(labels.product_ids[i] or labels.shas[i] for i in rows)
        u = int(hashlib.md5(f"semi:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        out["pool" if u < 0.6 else "dev" if u < 0.8 else "lockbox"].extend(rows)
    return {k: sorted(v) for k, v in out.items()}


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--half", choices=("dev", "lockbox"), required=True)
    ap.add_argument("--draws", type=int, default=2)
    args = ap.parse_args()
    import torch
    from sklearn.metrics import f1_score
    from sklearn.semi_supervised import LabelSpreading

    from catalens.classify.labels import catalog_labels
    from catalens.classify.predict import field_probas
    from catalens.classify.train import fuse, image_matrix, text_matrix, train_on_matrix
    from catalens.classify.views import view_matrix
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
    truth = {f: [L.labels[f][i] for i in held] for f in FIELDS}

    def score(clf, M: np.ndarray, Mv: np.ndarray) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
        out: dict[str, dict[str, float]] = {}
        for size, (E, sizes) in {"225x300": (M[held], None), "60x80": (Mv[held], small)}.items():
            probs = field_probas(clf, E, sizes=sizes)
            out[size] = {}
            for f in FIELDS:
                names = np.array(clf.head(f).classes)
                pred = names[probs[f].argmax(1)]
                keep = [j for j, t in enumerate(truth[f]) if t is not None]
                out[size][f] = float(
                    f1_score([truth[f][j] for j in keep], pred[keep], average="weighted", zero_division=0)
                )
        return out

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
