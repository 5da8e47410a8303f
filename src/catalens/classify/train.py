"""Training classifiers from labelled data on stored embeddings (prototype, linear; fused image+text).

Per field: classes with too few examples for the method are an error (or dropped with
``drop_rare``); a seeded held-out part (``calib_frac``) calibrates the temperature and the
abstain threshold of a head fitted on the rest; the head is then refitted on all rows and keeps
that temperature. Hierarchy fields (``hierarchy``, parent first) record the observed paths so
predictions stay consistent (see :mod:`catalens.classify.predict`).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from catalens.classify.classifier import Classifier, FieldHead, check_name
from catalens.classify.colour.calibration import DEFAULT_DESCRIPTOR, DESCRIPTOR_DIM, LEGACY_DESCRIPTOR
from catalens.classify.heads import (
    HEAD_FITTERS,
    MIN_EXAMPLES,
    abstain_threshold,
    fit_temperature,
    fit_vector_scaling,
)
from catalens.classify.labels import LabelSet
from catalens.classify.metrics import ece
from catalens.classify.taxonomy import Taxonomy
from catalens.errors import ClassifierError, LabelsError

if TYPE_CHECKING:
    from catalens.catalog_base import CatalogParts

CALIBRATIONS = ("holdout", "crossfit", "vector")
CROSSFIT_FOLDS = 5
# linear heads on fused image+title inputs (~5.8k columns): weaker regularisation, more L-BFGS
# iterations (chosen on myntra-dev articleType: bench/RESULTS.md "classify: image + title"),
# and a floor on column scales so that a title word missing from a new title is not blown up
FUSED_LINEAR_OPTS: dict[str, Any] = {"C": 2.0, "max_iter": 100, "sd_floor": 0.5}


def image_matrix(cat: CatalogParts, shas: list[str], model: str) -> tuple[np.ndarray, str | None]:
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


def colour_matrix(
    cat: CatalogParts, shas: list[str], version: str | None = None, problems: list[str] | None = None
) -> np.ndarray:
    """Foreground colour descriptors (:mod:`catalens.classify.colour.calibration`, in ``version``;
    default: the one classifiers saved without a version used) of stored images, computed once per
    image and version and cached in the catalog. With ``problems`` an image whose file cannot be read
    is listed there (``"path: reason"``) and gets the average descriptor; without, it is an error."""
    from catalens.classify.colour.calibration import colour_descriptors

    return colour_descriptors(cat, shas, version=version or LEGACY_DESCRIPTOR, problems=problems)


def colour_input(cat: CatalogParts, shas: list[str], version: str | None) -> np.ndarray:
    """The colour-descriptor part of a classifier's input for stored images (``version``: the
    classifier's own): an image whose file cannot be read gets the average descriptor and is named in
    one warning (:func:`warn_colour_problems`)."""
    problems: list[str] = []
    mat = colour_matrix(cat, shas, version, problems)
    warn_colour_problems(problems)
    return mat


def warn_colour_problems(problems: list[str]) -> None:
    """One :class:`~catalens.errors.CatalensWarning` naming the images scored without their own colour
    descriptor (their files could not be read)."""
    if problems:
        import warnings

        from catalens.errors import CatalensWarning

        warnings.warn(
            CatalensWarning(
                f"{len(problems)} image(s) could not be read for their colour descriptor (scored with the "
                f"average one): {'; '.join(problems[:3])}"
            ),
            stacklevel=3,
        )


COLOUR_FIELD = re.compile(r"colou?r", re.IGNORECASE)


def colour_fields(fields: Sequence[str]) -> list[str]:
    """The fields whose name says colour (``baseColour``, ``color``, ``primary_colour``...): the ones
    that get the colour descriptor by default (what it gains: bench/RESULTS.md "classify: baseColour from
    the product's own pixels"); the other fields' heads do not see it (their inputs, and so their
    answers, stay as without it)."""
    return [f for f in fields if COLOUR_FIELD.search(f)]


def title_parts(clf_input: str, titles: list[str | None] | None, text_model: str | None) -> list[np.ndarray]:
    """The title parts of a classifier input, in order: ``text`` (sentence embedding), ``words``."""
    kinds = clf_input.split("+")
    if "text" not in kinds and "words" not in kinds:
        return []
    if titles is None:
        raise ClassifierError(f"this classifier uses titles ({clf_input}): none given")
    parts = []
    if "text" in kinds:
        parts.append(text_matrix(titles, text_model or "minilm"))
    if "words" in kinds:
        from catalens.classify.text_features import word_features

        parts.append(word_features(titles))
    return parts


def input_name(text_model: str | None, title_words: bool, use_colour: bool) -> str:
    """The ``Classifier.input`` string: ``image`` plus ``+text``, ``+words``, ``+colour`` in that order."""
    return (
        "image"
        + ("+text" if text_model else "")
        + ("+words" if title_words else "")
        + ("+colour" if use_colour else "")
    )


def build_inputs(
    cat: CatalogParts,
    clf_input: str,
    shas: list[str],
    titles: list[str | None] | None,
    model: str,
    text_model: str | None,
    colour_version: str | None = None,
) -> tuple[np.ndarray, str | None]:
    """The classifier input for stored images: ``image``, plus ``+text``, ``+words``, ``+colour`` parts
    (the colour descriptor in ``colour_version``, the classifier's own)."""
    X, version = image_matrix(cat, shas, model)
    parts = [X, *title_parts(clf_input, titles, text_model)]
    if "colour" in clf_input.split("+"):
        parts.append(colour_input(cat, shas, colour_version))
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
    calibration: str = "holdout",
    views: Sequence[np.ndarray] = (),
) -> tuple[FieldHead, dict[str, Any]]:
    """One calibrated head for one field.

    ``views``: other embeddings of the same images (rows aligned with ``X``, e.g. thumbnails,
    :mod:`catalens.classify.thumbnail_views`), trained on with the same labels. Every split (calibration
    hold-out, cross-fit folds) is by image, so no view of a held-out image is fitted on, and the
    temperature is fitted on all views of the held-out images.

    ``calibration``: ``holdout`` fits the temperature (and the abstain threshold) on a seeded
    ``calib_frac`` part held out from a first fit; ``crossfit`` on the out-of-fold logits of
    every row (``CROSSFIT_FOLDS`` fits, 5x the training time, a steadier temperature); ``vector``
    fits per-class scales and biases (:func:`~catalens.classify.heads.fit_vector_scaling`) on
    the same out-of-fold logits and folds them into the head (temperature 1). The head itself is
    always refitted on all rows.
    """
    fitter = HEAD_FITTERS.get(method)
    if calibration not in CALIBRATIONS:
        raise ClassifierError(f"unknown calibration {calibration!r}; use one of {', '.join(CALIBRATIONS)}")
    labelled = {i: v for i, v in enumerate(values) if v is not None}
    rows = list(labelled)
    if not rows:
        raise LabelsError(f"field {field!r} is empty (no labelled row)")
    counts = Counter(labelled.values())
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
        rows = [i for i in rows if counts[labelled[i]] >= need]
    classes = sorted({labelled[i] for i in rows})
    if len(classes) < 2:
        raise LabelsError(f"field {field!r}: needs at least 2 classes with enough examples, got {classes}")
    col = {c: j for j, c in enumerate(classes)}
    y = np.array([col[labelled[i]] for i in rows], np.int64)
    stack = _Stack([X[rows], *(v[rows] for v in views)], y)
    opts = opts or {}
    if calibration != "holdout" and len(y) >= 4 * CROSSFIT_FOLDS:
        return _fit_crossfit(stack, classes, field, method, calibration, seed, opts, counts, dropped)
    tr, va = _split(y, calib_frac, seed)
    temperature, threshold, held = 1.0, 0.5, {}
    if len(va) >= 5:
        W, b = fitter(*stack.rows(tr), len(classes), **opts)
        Xv, yv = stack.rows(va)
        logits = Xv @ W.T + b
        temperature = fit_temperature(logits, yv)
        p = _softmax(logits / temperature)
        threshold = abstain_threshold(p, yv)
        held = {
            "n": int(len(va)),
            "accuracy": float((p.argmax(1) == yv).mean()),
            "ece": ece(p, yv),
            "ece_uncalibrated": ece(_softmax(logits), yv),
        }
        if views:
            held["n_rows"] = int(len(yv))
    W, b = fitter(*stack.rows(), len(classes), **({"init": (W, b)} if len(va) >= 5 else {}), **opts)
    head = FieldHead(
        name=field, classes=classes, W=W, b=b, kind=method, temperature=temperature, threshold=threshold
    )
    return head, _field_info(len(rows), classes, dropped, held, counts)


class _Stack:
    """Training rows of one field: the images' embeddings and their views (same labels)."""

    def __init__(self, parts: list[np.ndarray], y: np.ndarray) -> None:
        self.parts, self.y = parts, y

    def rows(self, idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(X, y) of the images ``idx`` (all by default), every view of each."""
        if len(self.parts) == 1:
            return (self.parts[0], self.y) if idx is None else (self.parts[0][idx], self.y[idx])
        sel = slice(None) if idx is None else idx
        return np.concatenate([p[sel] for p in self.parts]), np.tile(self.y[sel], len(self.parts))


def _fit_crossfit(
    stack: _Stack,
    classes: list[str],
    field: str,
    method: str,
    calibration: str,
    seed: int,
    opts: dict[str, Any],
    counts: Counter[str],
    dropped: list[str],
) -> tuple[FieldHead, dict[str, Any]]:
    """Calibration on out-of-fold logits of every row (``crossfit`` / ``vector``), then one fit on all."""
    fitter = HEAD_FITTERS[method]
    n_images = len(stack.y)
    folds = np.random.default_rng(seed).permutation(n_images) % CROSSFIT_FOLDS
    oofs, ys = [], []
    init = None
    for k in range(CROSSFIT_FOLDS):
        W, b = fitter(*stack.rows(np.flatnonzero(folds != k)), len(classes), **opts)
        Xh, yh = stack.rows(np.flatnonzero(folds == k))
        oofs.append(Xh @ W.T + b)
        ys.append(yh)
        init = (W, b)
    oof, y = np.concatenate(oofs).astype(np.float32), np.concatenate(ys)
    W, b = fitter(*stack.rows(), len(classes), init=init, **opts)
    temperature = 1.0
    if calibration == "vector":
        a, c = fit_vector_scaling(oof, y)
        p = _softmax(oof * a + c)
        W, b = (a[:, None] * W).astype(np.float32), (a * b + c).astype(np.float32)
    else:
        temperature = fit_temperature(oof, y)
        p = _softmax(oof / temperature)
    held = {
        "n": int(n_images),
        "calibration": calibration,
        "accuracy": float((p.argmax(1) == y).mean()),
        "ece": ece(p, y),
        "ece_uncalibrated": ece(_softmax(oof), y),
    }
    head = FieldHead(
        name=field,
        classes=classes,
        W=W,
        b=b,
        kind=method,
        temperature=temperature,
        threshold=abstain_threshold(p, y),
    )
    return head, _field_info(n_images, classes, dropped, held, counts)


def _field_info(
    n_train: int, classes: list[str], dropped: list[str], held: dict[str, Any], counts: Counter[str]
) -> dict[str, Any]:
    """The training metadata stored with a field's head."""
    return {
        "n_train": n_train,
        "classes": len(classes),
        "dropped_rare": dropped,
        "held_out": held,
        "class_counts": {c: int(counts[c]) for c in classes},
    }


def _softmax(z: np.ndarray) -> np.ndarray:
    from catalens.classify.classifier import softmax

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
    title_words: bool = False,
    use_colour: bool = False,
    drop_rare: bool = False,
    calib_frac: float = 0.15,
    seed: int = 0,
    opts: dict[str, Any] | None = None,
    calibration: str | dict[str, str] = "holdout",
    views: dict[str, np.ndarray] | None = None,
    colour_for: Sequence[str] | None = None,
    colour_version: str | None = None,
) -> Classifier:
    """Fit one head per field on the rows of ``X`` (aligned with ``labels``).

    ``calibration`` (see :func:`fit_field`): one mode for every field, or a ``{field: mode}`` map
    (fields not in it: ``holdout``). ``views``: ``{view name: matrix}``, other inputs of the same
    images (rows aligned with ``X``, e.g. thumbnails). With views, each field gets a second head,
    ``small``, fitted on the stored rows and the views together (see :func:`fit_field`), which
    scores small photos (:func:`catalens.classify.predict.small_rows`); the main head is fitted
    on the stored rows only, so photos of the stored size are scored as without views.

    With ``use_colour`` the last ``DESCRIPTOR_DIM`` columns of ``X`` are the colour descriptor (in
    ``colour_version``); ``colour_for`` (default: every field) names the fields whose heads use them:
    the other heads are fitted without those columns, and their weights there are zero."""
    check_name(name)
    views = views or {}
    if len(X) != len(labels) or any(v.shape != X.shape for v in views.values()):
        raise ClassifierError("embeddings and labels are not aligned")
    if not fields:
        raise LabelsError("no field to train")
    if isinstance(calibration, dict) and set(calibration) - set(fields):
        raise ClassifierError(
            f"calibration names fields not trained: {sorted(set(calibration) - set(fields))}"
        )
    if (text_model or title_words) and method == "linear":
        opts = {**FUSED_LINEAR_OPTS, **(opts or {})}
    hier = list(taxonomy.hierarchy) if taxonomy and taxonomy.hierarchy else list(hierarchy or [])
    hier = [f for f in hier if f in fields]
    heads: dict[str, FieldHead] = {}
    info: dict[str, Any] = {}
    for f in fields:
        if f not in labels.labels:
            raise LabelsError(f"no labels for field {f!r}")
        allowed = taxonomy.values(f) if taxonomy and f in taxonomy.fields else None
        common: dict[str, Any] = dict(
            drop_rare=drop_rare,
            calib_frac=calib_frac,
            seed=seed,
            allowed=allowed,
            opts=opts,
            calibration=calibration if isinstance(calibration, str) else calibration.get(f, "holdout"),
        )
        Xf, Vf = X, list(views.values())
        if use_colour and colour_for is not None and f not in colour_for:
            Xf, Vf = X[:, :-DESCRIPTOR_DIM], [v[:, :-DESCRIPTOR_DIM] for v in Vf]
        heads[f], info[f] = fit_field(Xf, labels.labels[f], f, method, **common)
        if views:
            small, small_info = fit_field(Xf, labels.labels[f], f, method, views=Vf, **common)
            heads[f].small = small
            info[f]["small_held_out"] = small_info["held_out"]
        if Xf is not X:
            _widen(heads[f], X.shape[1])
    for i, f in enumerate(hier):
        heads[f].parent = hier[i - 1] if i else None
    paths: list[list[str]] = []
    if len(hier) >= 2:
        if taxonomy and taxonomy.hierarchy:
            paths = [list(p) for p in taxonomy.paths]
        else:
            observed: list[tuple[str, ...]] = []
            for i in range(len(labels)):
                path = [labels.labels[f][i] for f in hier]
                if all(v is not None for v in path):
                    observed.append(tuple(str(v) for v in path))
            # observed paths; real catalogs may file one value under two parents (e.g. Socks under
            # Apparel and Accessories): paths are scored as wholes, so that stays consistent
            paths = [list(p) for p in dict.fromkeys(observed)]
    digest = hashlib.sha256("\n".join(labels.shas).encode()).hexdigest()[:16]
    return Classifier(
        name=name,
        version="",
        method=method,
        model=model,
        model_version=model_version,
        heads=heads,
        input=input_name(text_model, title_words, use_colour),
        text_model=text_model,
        paths=paths,
        data={"source": labels.source, "n": len(labels), "images_sha256": digest, "seed": seed},
        metrics={"held_out": {f: info[f]["held_out"] for f in fields}},
        extra={
            "hierarchy": hier,
            "fields_info": info,
            "options": opts or {},
            "calibration": calibration,
            "views": list(views),
            "small_view": next(iter(views), None),
            **(
                {
                    "colour_descriptor": colour_version or LEGACY_DESCRIPTOR,
                    "colour_fields": list(fields if colour_for is None else colour_for),
                }
                if use_colour
                else {}
            ),
        },
    )


def _widen(head: FieldHead, dim: int) -> None:
    """Zero weights for the input columns a head was fitted without (the colour descriptor of a
    classifier whose other fields use it): its logits are those of the narrower head."""
    for h in (head, head.small):
        if h is not None and h.W.shape[1] < dim:
            h.W = np.hstack([h.W, np.zeros((h.W.shape[0], dim - h.W.shape[1]), h.W.dtype)])


def train_classifier(
    cat: CatalogParts,
    name: str,
    labels: LabelSet,
    fields: list[str],
    method: str = "linear",
    *,
    model: str | None = None,
    text_model: str | None = None,
    title_words: bool = False,
    use_colour: bool | None = None,
    save: bool = True,
    train_views: str | Sequence[str] | None = None,
    view_progress: Callable[[int, int], None] | None = None,
    **kwargs: Any,
) -> Classifier:
    """Train on the catalog's stored embeddings and save a new version under ``<home>/classifiers``.

    ``train_views`` (:mod:`catalens.classify.thumbnail_views`): ``None``/``"auto"`` = the method's default (linear
    heads also train on 60x80 thumbnails of the images), ``"none"``, or view names. View
    embeddings are computed once per image and model and cached in the catalog; an image whose
    file cannot be read keeps its stored embedding and is listed in ``extra["view_problems"]``.
    The title parts of a view row are the image's own; its colour descriptor is the view's own (the
    one a thumbnail of the product gets when it is classified). An image whose file cannot be read
    for its colour descriptor trains with the average one and is listed in ``extra["colour_problems"]``.

    Colour features (:mod:`catalens.classify.colour.calibration`, version ``DEFAULT_DESCRIPTOR``):
    ``use_colour`` ``None`` (default) adds them for the colour fields (:func:`colour_fields`) of a
    ``linear`` classifier on images alone, used by those fields' heads only (with a title input the
    title names the colour: there the descriptor cost baseColour on dev, bench/RESULTS.md);
    ``True`` adds them for every field, ``False`` never.

    Fused image+title inputs: ``text_model`` (e.g. ``minilm``) adds the title's sentence embedding,
    ``title_words`` a hashed bag of title words (:mod:`catalens.classify.text_features`); titles are
    the products' titles in the catalog.
    """
    from catalens.classify.classifier import save_classifier

    if method != "finetune":
        HEAD_FITTERS.get(method)  # unknown: "unknown classifier head 'x'; known: ..."
    model = model or cat.settings.default_model
    colour_for: list[str] | None = None  # every field
    if use_colour is None:  # titles name the colour: with them the descriptor cost baseColour on dev
        colour_for = colour_fields(fields) if method == "linear" and not (text_model or title_words) else []
        use_colour = bool(colour_for)
    if method == "finetune":
        if train_views not in (None, "auto", "none"):
            raise ClassifierError(
                "training views (--views) apply to heads on stored embeddings; --method finetune has its own augmentations"
            )
        from catalens.classify.finetune.run import finetune_classifier

        return finetune_classifier(
            cat,
            name,
            labels,
            fields,
            model=model,
            save=save,
            text_model=text_model or ("words" if title_words else None),
            use_colour=use_colour,
            **kwargs,
        )
    from catalens.classify.thumbnail_views import parse_views, view_matrix

    view_names = parse_views(train_views, method)
    X, version = image_matrix(cat, labels.shas, model)
    view_X: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for v in view_names:
        view_X[v], bad = view_matrix(cat, labels.shas, model, version, X, v, progress=view_progress)
        problems += bad
    clf_input = input_name(text_model, title_words, use_colour)
    titles: list[np.ndarray] = []
    if text_model or title_words:
        if not any(labels.titles):
            raise LabelsError(
                "a fused image+title classifier needs product titles: none of the images has one"
            )
        titles = title_parts(clf_input, labels.titles, text_model)
    own: list[np.ndarray] = []  # the colour descriptor, last
    view_own: dict[str, list[np.ndarray]] = {v: [] for v in view_X}
    colour_problems: list[str] = []
    if use_colour:
        from catalens.classify.colour.calibration import view_descriptors

        own = [colour_matrix(cat, labels.shas, DEFAULT_DESCRIPTOR, colour_problems)]
        for v in view_X:
            desc, bad = view_descriptors(cat, labels.shas, own[0], v, version=DEFAULT_DESCRIPTOR)
            view_own[v], problems = [desc], problems + bad
    X = np.hstack([X, *titles, *own])
    view_X = {v: np.hstack([m, *titles, *view_own[v]]) for v, m in view_X.items()}
    clf = train_on_matrix(
        X,
        labels,
        fields,
        method,
        name=name,
        model=model,
        model_version=version,
        text_model=text_model,
        title_words=title_words,
        use_colour=use_colour,
        views=view_X,
        colour_for=colour_for,
        colour_version=DEFAULT_DESCRIPTOR,
        **kwargs,
    )
    if problems:
        clf.extra["view_problems"] = {"count": len(problems), "first": problems[:20]}
    if colour_problems:  # trained with the average descriptor in their rows
        clf.extra["colour_problems"] = {"count": len(colour_problems), "first": colour_problems[:20]}
    if save:
        save_classifier(cat.settings.home, clf)
    return clf
