"""Training classifiers from labelled data on stored embeddings (prototype, linear; fused image+text).

Per field: classes with too few examples for the method are an error (or dropped with
``drop_rare``); a seeded held-out part (``calib_frac``) calibrates the temperature and the
abstain threshold of a head fitted on the rest; the head is then refitted on all rows and keeps
that temperature. Hierarchy fields (``hierarchy``, parent first) record the observed paths so
predictions stay consistent (see :mod:`catalens.classify.predict`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import numpy as np

from catalens.classify.artifact import Classifier, FieldHead, check_name
from catalens.classify.errors import ClassifierError, LabelsError
from catalens.classify.heads import HEAD_FITTERS, MIN_EXAMPLES, abstain_threshold, fit_temperature
from catalens.classify.labels import LabelSet
from catalens.classify.metrics import ece
from catalens.classify.taxonomy import Taxonomy

METHODS = ("prototype", "linear", "finetune")


def image_matrix(cat: Any, shas: list[str], model: str) -> tuple[np.ndarray, str | None]:
    """Stored L2-normalised embeddings of ``shas`` for ``model`` (error names the missing ones)."""
    hashes, vecs = cat.vectors(model)
    row = {h: i for i, h in enumerate(hashes)}
    missing = [s for s in shas if s not in row]
    if missing:
        raise LabelsError(
            f"{len(missing)} labelled images have no stored embedding for model {model!r} "
            f"(e.g. {missing[:2]}); run `catalens embed --model {model}`"
        )
    recs = [m for m in cat.db.models() if m.model_id == model]
    version = recs[-1].version if recs else None
    return np.asarray(vecs[[row[s] for s in shas]], np.float32), version


def text_matrix(titles: list[str | None], text_model: str) -> np.ndarray:
    from catalens.models import load_text_encoder

    enc = load_text_encoder(text_model)
    return np.asarray(enc.encode([t or "" for t in titles]), np.float32)


def colour_matrix(cat: Any, shas: list[str]) -> np.ndarray:
    """Foreground colour descriptors (:func:`catalens.classify.colour_calib.colour_descriptor`) of
    stored images, computed once per image and cached in the catalog."""
    from catalens.classify.colour_calib import colour_descriptors

    return colour_descriptors(cat, shas)


def build_inputs(
    cat: Any,
    clf_input: str,
    shas: list[str],
    titles: list[str | None] | None,
    model: str,
    text_model: str | None,
) -> tuple[np.ndarray, str | None]:
    """The classifier input for stored images: ``image``, plus ``+text`` and/or ``+colour`` parts."""
    X, version = image_matrix(cat, shas, model)
    parts = [X]
    if "text" in clf_input.split("+"):
        if titles is None:
            raise ClassifierError("this classifier uses titles (image+text): none given")
        parts.append(text_matrix(titles, text_model or "minilm"))
    if "colour" in clf_input.split("+"):
        parts.append(colour_matrix(cat, shas))
    return np.hstack(parts).astype(np.float32), version


def fuse(image: np.ndarray, text: np.ndarray) -> np.ndarray:
    """Fused input of image+text classifiers: the two L2-normalised embeddings side by side."""
    return np.hstack([np.asarray(image, np.float32), np.asarray(text, np.float32)])


def _split(y: np.ndarray, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded held-out indices; every class keeps at least one training row."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_val = int(round(frac * len(y)))
    val = set(order[:n_val].tolist())
    counts = Counter(y[[i for i in range(len(y)) if i not in val]].tolist())
    for i in list(order[:n_val]):
        if counts[y[i]] == 0:
            val.discard(i)
            counts[y[i]] += 1
    tr = np.array(sorted(set(range(len(y))) - val), np.int64)
    return tr, np.array(sorted(val), np.int64)


def fit_field(
    X: np.ndarray,
    values: list[str | None],
    field: str,
    method: str,
    *,
    drop_rare: bool = False,
    calib_frac: float = 0.15,
    seed: int = 0,
    allowed: list[str] | None = None,
    opts: dict[str, Any] | None = None,
) -> tuple[FieldHead, dict[str, Any]]:
    """One calibrated head for one field."""
    fitter = HEAD_FITTERS.get(method)
    if fitter is None:
        raise ClassifierError(f"unknown method {method!r}; use one of {', '.join(HEAD_FITTERS)}")
    rows = [i for i, v in enumerate(values) if v is not None]
    if not rows:
        raise LabelsError(f"field {field!r} is empty (no labelled row)")
    counts = Counter(values[i] for i in rows)
    if allowed is not None:
        bad = sorted(set(counts) - set(allowed))
        if bad:
            raise LabelsError(f"field {field!r}: values not in the taxonomy: {bad[:10]}")
    need = MIN_EXAMPLES[method]
    rare = sorted(c for c, n in counts.items() if n < need)
    dropped: list[str] = []
    if rare:
        if not drop_rare:
            raise LabelsError(
                f"field {field!r}: {len(rare)} class(es) have fewer than {need} examples, the minimum for "
                f"--method {method}: {rare[:10]}; add examples, use --method prototype, or pass --drop-rare"
            )
        dropped = rare
        rows = [i for i in rows if counts[values[i]] >= need]
    classes = sorted({values[i] for i in rows})  # type: ignore[type-var]
    if len(classes) < 2:
        raise LabelsError(f"field {field!r}: needs at least 2 classes with enough examples, got {classes}")
    col = {c: j for j, c in enumerate(classes)}
    Xf = X[rows]
    y = np.array([col[values[i]] for i in rows], np.int64)  # type: ignore[index]
    opts = opts or {}
    tr, va = _split(y, calib_frac, seed)
    temperature, threshold, held = 1.0, 0.5, {}
    if len(va) >= 5:
        W, b = fitter(Xf[tr], y[tr], len(classes), **opts)
        logits = Xf[va] @ W.T + b
        temperature = fit_temperature(logits, y[va])
        p = _softmax(logits / temperature)
        threshold = abstain_threshold(p, y[va])
        held = {
            "n": int(len(va)),
            "accuracy": float((p.argmax(1) == y[va]).mean()),
            "ece": ece(p, y[va]),
            "ece_uncalibrated": ece(_softmax(logits), y[va]),
        }
    W, b = fitter(Xf, y, len(classes), **({"init": (W, b)} if len(va) >= 5 else {}), **opts)
    head = FieldHead(
        name=field, classes=classes, W=W, b=b, kind=method, temperature=temperature, threshold=threshold
    )
    info = {
        "n_train": len(rows),
        "classes": len(classes),
        "dropped_rare": dropped,
        "held_out": held,
        "class_counts": {c: int(counts[c]) for c in classes},
    }
    return head, info


def _softmax(z: np.ndarray) -> np.ndarray:
    from catalens.classify.artifact import softmax

    return softmax(z)


def train_on_matrix(
    X: np.ndarray,
    labels: LabelSet,
    fields: list[str],
    method: str,
    *,
    name: str,
    model: str,
    model_version: str | None,
    hierarchy: list[str] | None = None,
    taxonomy: Taxonomy | None = None,
    text_model: str | None = None,
    use_colour: bool = False,
    drop_rare: bool = False,
    calib_frac: float = 0.15,
    seed: int = 0,
    opts: dict[str, Any] | None = None,
) -> Classifier:
    """Fit one head per field on the rows of ``X`` (aligned with ``labels``)."""
    check_name(name)
    if len(X) != len(labels):
        raise ClassifierError("embeddings and labels are not aligned")
    if not fields:
        raise LabelsError("no field to train")
    hier = list(taxonomy.hierarchy) if taxonomy and taxonomy.hierarchy else list(hierarchy or [])
    hier = [f for f in hier if f in fields]
    heads: dict[str, FieldHead] = {}
    info: dict[str, Any] = {}
    for f in fields:
        if f not in labels.labels:
            raise LabelsError(f"no labels for field {f!r}")
        allowed = taxonomy.values(f) if taxonomy and f in taxonomy.fields else None
        heads[f], info[f] = fit_field(
            X,
            labels.labels[f],
            f,
            method,
            drop_rare=drop_rare,
            calib_frac=calib_frac,
            seed=seed,
            allowed=allowed,
            opts=opts,
        )
    for i, f in enumerate(hier):
        heads[f].parent = hier[i - 1] if i else None
    paths: list[list[str]] = []
    if len(hier) >= 2:
        if taxonomy and taxonomy.hierarchy:
            paths = [list(p) for p in taxonomy.paths]
        else:
            rows = [
                tuple(labels.labels[f][i] for f in hier)
                for i in range(len(labels))
                if all(labels.labels[f][i] is not None for f in hier)
            ]
            # observed paths; real catalogues may file one value under two parents (e.g. Socks under
            # Apparel and Accessories): paths are scored as wholes, so that stays consistent
            paths = [list(p) for p in dict.fromkeys(rows)]
    digest = hashlib.sha256("\n".join(labels.shas).encode()).hexdigest()[:16]
    return Classifier(
        name=name,
        version="",
        method=method,
        model=model,
        model_version=model_version,
        heads=heads,
        input="image" + ("+text" if text_model else "") + ("+colour" if use_colour else ""),
        text_model=text_model,
        paths=paths,
        data={"source": labels.source, "n": len(labels), "images_sha256": digest, "seed": seed},
        metrics={"held_out": {f: info[f]["held_out"] for f in fields}},
        extra={"hierarchy": hier, "fields_info": info, "options": opts or {}},
    )


def train_classifier(
    cat: Any,
    name: str,
    labels: LabelSet,
    fields: list[str],
    method: str = "linear",
    *,
    model: str | None = None,
    text_model: str | None = None,
    use_colour: bool = False,
    save: bool = True,
    **kwargs: Any,
) -> Classifier:
    """Train on the catalog's stored embeddings and save a new version under ``<home>/classifiers``."""
    from catalens.classify.artifact import save_classifier

    if method not in METHODS:
        raise ClassifierError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    model = model or cat.settings.default_model
    if method == "finetune":
        from catalens.classify.finetune import finetune_classifier

        return finetune_classifier(
            cat,
            name,
            labels,
            fields,
            model=model,
            save=save,
            text_model=text_model,
            use_colour=use_colour,
            **kwargs,
        )
    X, version = image_matrix(cat, labels.shas, model)
    if text_model:
        X = fuse(X, text_matrix(labels.titles, text_model))
    if use_colour:
        X = np.hstack([X, colour_matrix(cat, labels.shas)])
    clf = train_on_matrix(
        X,
        labels,
        fields,
        method,
        name=name,
        model=model,
        model_version=version,
        text_model=text_model,
        use_colour=use_colour,
        **kwargs,
    )
    if save:
        save_classifier(cat.settings.home, clf)
    return clf
