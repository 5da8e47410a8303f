"""baseColour from the product's own pixels: image embedding alone, + the foreground colour descriptor,
+ the same descriptor on the product detector's mask; neighbouring-colour confusions (issue 20 item 7).

    catalens --home /tmp/semi-home ingest ../shared/data/myntra-dev/labels.csv --id-col id --text-col productDisplayName   # the bench home: Lite0, titles, labels
    python bench/classify_colour_mask.py --home /tmp/semi-home --half dev       # choose here
    python bench/classify_colour_mask.py --home /tmp/semi-home --half lockbox   # report once

Rows and split: those of ``bench/classify_semi.py`` (title / pixel groups, md5 ``semi:``): the heads are
trained on every labelled row of ``pool`` (1,770), scored on ``dev`` or ``lockbox``, as stored
(225x300) and as 60x80 thumbnails (``classify.views.view_image``; the small heads score those).
Inputs (linear heads, thumbnail views, rare classes dropped, as ``catalens classify train --drop-rare``):
- ``image``: the Lite0 embedding;
- ``image+colour``: + ``colour_calib.colour_descriptor`` (what ``--colour-features`` uses: backdrop
  colour separation, GrabCut on a busy photo, skin removed);
- ``image+colour_mask``: + the same descriptor on the packaged product detector's mask where the
  photo has a plain white backdrop (``colour.white_backdrop``), the backdrop separation elsewhere.
Descriptors of every row (and of its thumbnail) are computed once into ``<home>/colour_mask_bench.npz``.
Printed: weighted-F1 and accuracy per input and size, and the confusion counts between neighbouring
colours (Navy Blue / Blue, Off White / Cream / White / Beige, Grey / Charcoal / Silver, Red / Maroon,
Pink / Peach, Olive / Green, Brown / Tan / Coffee Brown) of the best input.
Variants tried on dev: the three inputs above, nothing else (the descriptor and mask as written).

``--library-check``: instead, the library path that ships the kept input - ``Catalog.train_classifier``
on a labels CSV of every pool row (baseColour, articleType, gender; linear, thumbnail views, rare classes
dropped, no hold-out) with colour features off (the former default) and as by default (the
``colour-v3`` descriptor, for baseColour's heads only), image alone and fused with the title's MiniLM
embedding (and, for the title case, the descriptor given to baseColour anyway: what the default leaves
out there) - scored on the half's rows as stored (``stored_inputs``) and as 60x80 thumbnail files
classified like a user's (``probas_images``: the thumbnail's own embedding and descriptor).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from classify_semi import parts  # noqa: E402

FIELD = "baseColour"
MODEL = "efficientnet-lite0"
NEIGHBOURS = [
    ("Navy Blue", "Blue"),
    ("Off White", "Cream", "White", "Beige"),
    ("Grey", "Charcoal", "Silver"),
    ("Red", "Maroon"),
    ("Pink", "Peach"),
    ("Olive", "Green"),
    ("Brown", "Tan", "Coffee Brown"),
]


def _describe(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(plain, masked) descriptors of the photo, then of its 60x80 thumbnail."""
    from catalens.classify.colour.calibration import colour_descriptor
    from catalens.classify.colour.features import _small, detected_mask, white_backdrop
    from catalens.classify.thumbnail_views import VIEWS, view_image
    from catalens.imageio import open_image

    img = open_image(path).image.convert("RGB")
    out = []
    for im in (img, view_image(img, VIEWS["thumb"]).convert("RGB")):
        plain = colour_descriptor(im)
        mask = detected_mask(im) if white_backdrop(_small(im)) else None  # as dominant_colours decides
        out += [plain, colour_descriptor(im, mask) if mask is not None else plain]
    return out[0], out[1], out[2], out[3]


def descriptors(cat, shas: list[str], cache: Path) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    if cache.exists():
        data = dict(np.load(cache))
        if list(data["shas"]) == shas:
            return data
    paths = []
    for s in shas:
        rec = cat.db.image(s)
        paths.append(rec.stored_path or rec.source)
    with ProcessPoolExecutor(2) as pool:
        rows = list(pool.map(_describe, paths, chunksize=32))
    data = {
        "shas": np.array(shas),
        "plain": np.stack([r[0] for r in rows]),
        "mask": np.stack([r[1] for r in rows]),
        "plain_thumb": np.stack([r[2] for r in rows]),
        "mask_thumb": np.stack([r[3] for r in rows]),
    }
    np.savez(cache, **data)
    return data


def library_check(home: str, half: str) -> int:
    import csv
    import tempfile

    from sklearn.metrics import f1_score

    from catalens.classify.catalog_scoring import probas_images, stored_inputs
    from catalens.classify.labels import catalog_labels
    from catalens.classify.predict import field_probas
    from catalens.classify.thumbnail_views import VIEWS, view_image
    from catalens.core import Catalog
    from catalens.imageio import open_image

    t0 = time.perf_counter()
    fields = [FIELD, "articleType", "gender"]
    cat = Catalog.open(home)
    L = catalog_labels(cat.db, fields)
    split = parts(cat, L)
    held = [i for i in split[half] if L.labels[FIELD][i] is not None]
    shas = [L.shas[i] for i in held]
    thumbs = []
    for s in shas:
        rec = cat.db.image(s)
        thumbs.append(view_image(open_image(rec.stored_path or rec.source).image, VIEWS["thumb"]))
    out: dict[str, object] = {"half": half, "held_rows": len(held)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "labels.csv"
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["sha256", *fields])
            w.writerows([L.shas[i], *(L.labels[f][i] or "" for f in fields)] for i in split["pool"])
        variants = [(f"{what}{' + title' if text else ''}", use, text, fields)
                    for text in (None, "minilm") for what, use in (("colour off (before)", False), ("default", None))]  # fmt: skip
        # what the default leaves out with titles: the descriptor for baseColour (a classifier of it alone)
        variants.append(("descriptor + title (--colour-features, baseColour alone)", True, "minilm", [FIELD]))
        for name, use, text, flds in variants:
            clf = cat.train_classifier(
                "colour-check", flds, labels=path, drop_rare=True, holdout=0.0, use_colour=use, save=False,
                text_model=text,
            )  # fmt: skip
            row: dict[str, object] = {"input": clf.input, "descriptor": clf.extra.get("colour_descriptor")}
            titles = [L.titles[i] for i in held] if text else None
            for size, probs in (
                ("225x300", field_probas(clf, stored_inputs(cat, clf, shas, titles))),
                ("60x80", probas_images(cat, clf, thumbs, titles)),
            ):
                for f in flds:
                    keep = [j for j, i in enumerate(held) if L.labels[f][i] is not None]
                    truth = [L.labels[f][held[j]] for j in keep]
                    pred = np.array(clf.head(f).classes)[probs[f][keep].argmax(1)]
                    row[f"{f} {size}"] = round(float(f1_score(truth, pred, average="weighted", zero_division=0)), 4)
            out[name] = row
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--half", choices=("dev", "lockbox"), required=True)
    ap.add_argument("--library-check", action="store_true")
    args = ap.parse_args()
    if args.library_check:
        return library_check(args.home, args.half)
    from sklearn.metrics import accuracy_score, f1_score

    from catalens.classify.labels import catalog_labels
    from catalens.classify.predict import field_probas
    from catalens.classify.thumbnail_views import view_matrix
    from catalens.classify.train import image_matrix, train_on_matrix
    from catalens.core import Catalog

    t0 = time.perf_counter()
    cat = Catalog.open(args.home)
    L = catalog_labels(cat.db, [FIELD])
    X, version = image_matrix(cat, L.shas, MODEL)
    V, _ = view_matrix(cat, L.shas, MODEL, version, X, "thumb")
    D = descriptors(cat, list(L.shas), Path(args.home) / "colour_mask_bench.npz")
    split = parts(cat, L)
    pool = [i for i in split["pool"] if L.labels[FIELD][i] is not None]
    held = [i for i in split[args.half] if L.labels[FIELD][i] is not None]
    truth = [L.labels[FIELD][i] for i in held]
    inputs = {
        "image": (X, V),
        "image+colour": (np.hstack([X, D["plain"]]), np.hstack([V, D["plain_thumb"]])),
        "image+colour_mask": (np.hstack([X, D["mask"]]), np.hstack([V, D["mask_thumb"]])),
    }
    out: dict[str, object] = {"half": args.half, "train_rows": len(pool), "held_rows": len(held)}
    best, best_f1 = None, -1.0
    for name, (M, Mv) in inputs.items():
        clf = train_on_matrix(
            M[pool], L.subset(pool), [FIELD], "linear", name="colour", model=MODEL, model_version=version,
            drop_rare=True, views={"thumb": Mv[pool]},
        )  # fmt: skip
        row = {}
        for size, (E, sizes) in {
            "225x300": (M[held], None),
            "60x80": (Mv[held], np.tile([[60, 80]], (len(held), 1))),
        }.items():
            pred = np.array(clf.head(FIELD).classes)[field_probas(clf, E, sizes=sizes)[FIELD].argmax(1)]
            f1 = float(f1_score(truth, pred, average="weighted", zero_division=0))
            row[size] = {"weighted_f1": round(f1, 4), "accuracy": round(float(accuracy_score(truth, pred)), 4)}
            if size == "225x300" and f1 > best_f1:
                best, best_f1 = (name, pred), f1
        out[name] = row
    name, pred = best  # type: ignore[misc]
    conf: dict[str, dict[str, int]] = {}
    for group in NEIGHBOURS:
        c = Counter((t, p) for t, p in zip(truth, pred, strict=True) if t in group and p in group)
        conf["/".join(group)] = {f"{t}->{p}": n for (t, p), n in sorted(c.items())}
    out["neighbour_confusions_of"] = name
    out["neighbour_confusions"] = conf
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
