"""Glue between a :class:`~catalens.core.Catalog` and the classify modules (used by ``catalog_methods``).

A classifier reference is a name (latest version), ``name@version``, ``builtin``,
``zeroshot:MODEL`` (a CLIP-type model over the built-in taxonomy), or several
joined by ``+`` for a probability-averaging ensemble (``lite0-clf+lite2-clf``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from catalens.classify.classifier import Classifier, load_classifier
from catalens.classify.predict import Ensemble, FieldArrays, field_probas, predict_arrays, predict_rows
from catalens.classify.results import (
    ClassifierEvaluation,
    ClassifyReport,
    FieldMetrics,
    FieldPrediction,
    ImagePrediction,
    TrainOverlap,
)
from catalens.errors import ClassifierError, TrainOverlapError
from catalens.vectors import l2_normalize

if TYPE_CHECKING:
    from catalens.catalog_base import CatalogParts
    from catalens.core import Catalog


def resolve(cat: CatalogParts, ref: str) -> Classifier | Ensemble:
    parts = [p.strip() for p in ref.split("+") if p.strip()]
    if not parts:
        raise ClassifierError("no classifier named")
    clfs = []
    for p in parts:
        if p.startswith("zeroshot:"):  # zeroshot:MODEL, the built-in taxonomy, no training
            from catalens.classify.zeroshot import zeroshot_classifier

            clfs.append(zeroshot_classifier(p.removeprefix("zeroshot:")))
            continue
        name, _, version = p.partition("@")
        clfs.append(load_classifier(cat.settings.home, name, version or None))
    return clfs[0] if len(clfs) == 1 else Ensemble(clfs)


def _members(clf: Classifier | Ensemble) -> list[Classifier]:
    return clf.members if isinstance(clf, Ensemble) else [clf]


def stored_inputs(
    cat: CatalogParts, clf: Classifier, shas: Sequence[str], titles: Sequence[str | None] | None = None
) -> np.ndarray:
    from catalens.classify.colour.calibration import descriptor_version
    from catalens.classify.train import build_inputs

    return build_inputs(
        cat,
        clf.input,
        list(shas),
        list(titles) if titles is not None else None,
        clf.model,
        clf.text_model,
        colour_version=descriptor_version(clf),
    )[0]


def has_small_heads(clf: Classifier | Ensemble) -> bool:
    return any(m.extra.get("small_view") for m in _members(clf))


def image_sizes(cat: CatalogParts, shas: Sequence[str]) -> np.ndarray:
    """(N, 2) stored widths and heights of cataloged images (0 where unknown)."""
    from sqlalchemy import select

    from catalens.catalog.schema import ImageRecord

    found: dict[str | None, tuple[int, int]] = {}
    want = list(dict.fromkeys(shas))
    with cat.db.session() as s:
        for i in range(0, len(want), 900):
            rows = s.execute(
                select(ImageRecord.sha256, ImageRecord.width, ImageRecord.height).where(
                    ImageRecord.sha256.in_(want[i : i + 900])
                )
            ).all()
            found.update({h: (w or 0, ht or 0) for h, w, ht in rows})
    return np.array([found.get(h, (0, 0)) for h in shas], np.int64).reshape(-1, 2)


def probas_stored(
    cat: CatalogParts,
    clf: Classifier | Ensemble,
    shas: Sequence[str],
    titles: Sequence[str | None] | None = None,
    sizes: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Probabilities for cataloged images from their stored embeddings (``sizes``: their stored
    widths and heights, looked up when the classifier has small heads and none are given)."""
    members = _members(clf)
    inputs = [stored_inputs(cat, m, shas, titles) for m in members]
    if sizes is None and has_small_heads(clf):
        sizes = image_sizes(cat, shas)
    if isinstance(clf, Ensemble):
        return clf.proba(inputs, sizes=sizes)
    return field_probas(clf, inputs[0], sizes=sizes)


def probas_images(
    cat: CatalogParts,
    clf: Classifier | Ensemble,
    images: Sequence[Any],
    titles: Sequence[str | None] | None = None,
) -> dict[str, np.ndarray]:
    """Probabilities for PIL images (runs each member's encoder; exact feature norms)."""
    from catalens.classify.train import title_parts

    inputs, norms = [], []
    for m in _members(clf):
        enc = cat.encoder(m.model)
        raw = np.asarray(enc.encode(np.stack([enc.preprocess(im) for im in images])), np.float32)
        x = l2_normalize(raw)
        kinds = m.input.split("+")
        if "text" in kinds or "words" in kinds:
            if titles is None or len(titles) != len(images) or any(t is None for t in titles):
                raise ClassifierError(
                    f"classifier {m.name!r} is fused image+title ({m.input}): give one title per image (--title)"
                )
            x = np.hstack([x, *title_parts(m.input, list(titles), m.text_model)])
        if "colour" in m.input.split("+"):
            from catalens.classify.colour.calibration import describe, descriptor_version

            version = descriptor_version(m)
            x = np.hstack([x, np.stack([describe(im, version) for im in images])])
        inputs.append(x)
        norms.append(np.linalg.norm(raw, axis=1))
    sizes = np.array([im.size for im in images], np.int64).reshape(-1, 2)
    if isinstance(clf, Ensemble):
        return clf.proba(inputs, sizes=sizes)
    return field_probas(clf, inputs[0], scale=norms[0], sizes=sizes)


def classify_files(
    cat: CatalogParts,
    paths: Sequence[str | Path],
    classifier: str = "builtin",
    *,
    top_k: int = 3,
    hierarchy: str = "joint",
    threshold: float | None = None,
    titles: Sequence[str | None] | None = None,
) -> list[ImagePrediction]:
    """Classify image files: an :class:`ImagePrediction` each (``source``: the path as given)."""
    from catalens.imageio import open_image

    images = [open_image(p).image for p in paths]
    name, rows = predict_images(
        cat, images, classifier, top_k=top_k, hierarchy=hierarchy, threshold=threshold, titles=titles
    )
    return [ImagePrediction(str(p), name, r) for p, r in zip(paths, rows, strict=True)]


def predict_images(
    cat: CatalogParts,
    images: Sequence[Any],
    classifier: str = "builtin",
    *,
    top_k: int = 3,
    hierarchy: str = "joint",
    threshold: float | None = None,
    titles: Sequence[str | None] | None = None,
) -> tuple[str, list[dict[str, FieldPrediction]]]:
    """The classifier's name and, per in-memory PIL image, a :class:`FieldPrediction` per field."""
    clf = resolve(cat, classifier)
    probs = probas_images(cat, clf, list(images), titles)
    sizes = [im.size for im in images]
    rows = predict_rows(clf, probs, top_k=top_k, hierarchy=hierarchy, threshold=threshold, sizes=sizes)
    return clf.name, rows


def classify_images(
    cat: CatalogParts,
    images: Sequence[Any],
    classifier: str = "builtin",
    *,
    top_k: int = 3,
    hierarchy: str = "joint",
    threshold: float | None = None,
    titles: Sequence[str | None] | None = None,
) -> list[dict[str, Any]]:
    """Classify in-memory PIL images (e.g. product crops): ``{"classifier", "fields"}`` each."""
    name, rows = predict_images(
        cat, images, classifier, top_k=top_k, hierarchy=hierarchy, threshold=threshold, titles=titles
    )
    return [{"classifier": name, "fields": {f: fp.to_dict() for f, fp in r.items()}} for r in rows]


def classify_all(
    cat: Catalog,
    classifier: str,
    *,
    hierarchy: str = "joint",
    threshold: float | None = None,
    top_k: int = 3,
    store: bool = True,
    batch: int = 4096,
    ray: str | None = None,
    progress: Callable[[str, int | None], Callable[[int], None]] | None = None,
) -> ClassifyReport:
    """Classify every stored embedding and store the predictions (one row per image and field).

    ``ray``: score on the Ray cluster at that address ("auto": the running one), and embed the
    images a fine-tuned member lacks there too; inputs are read and predictions stored here.
    ``progress``: a factory ``(stage, total) -> tick(n)``, ticked per batch scored."""
    import time

    clf = resolve(cat, classifier)
    members = _members(clf)
    if any("colour" in m.input.split("+") for m in members):
        batch = min(batch, 512)  # descriptors not cached yet cost ~16-32 ms each: tick often
    for m in members:
        if m.method == "finetune":  # its own fine-tuned model: embed the images that lack a vector
            cat.embed(m.model, ray=ray)
    hashes, vecs = cat.vectors(members[0].model)
    uses_titles = any(k in m.input.split("+") for m in members for k in ("text", "words"))
    titles = catalog_titles(cat, hashes) if uses_titles else None
    t0 = time.perf_counter()
    counts: dict[str, dict[str, int]] = {}
    review = 0
    version = "+".join(getattr(m, "version", "") for m in members)[:64]
    # image-only single classifier: score the stored matrix directly (no per-batch lookups)
    direct = not isinstance(clf, Ensemble) and clf.input == "image"
    opts: dict[str, Any] = {"top_k": top_k, "hierarchy": hierarchy, "threshold": threshold}

    def batches() -> Any:
        for start in range(0, len(hashes), batch):
            part = hashes[start : start + batch]
            sizes = image_sizes(cat, part) if has_small_heads(clf) else None
            if direct:
                inputs = [vecs[start : start + batch]]
            else:
                part_titles = titles[start : start + batch] if titles else None
                inputs = [stored_inputs(cat, m, part, part_titles) for m in members]
            yield part, (inputs, sizes)

    if ray is None:
        scored: Any = ((part, score_inputs(clf, *work, **opts)) for part, work in batches())
    else:
        from catalens.classify.ray_scoring import ray_score

        scored = ray_score(ray or "auto", clf, batches(), opts)
    tick = progress("classify", len(hashes)) if progress else None
    for part, arrays in scored:
        if store:
            store_predictions(cat, clf.name, version, part, arrays)
        if tick:
            tick(len(part))
        flagged = np.zeros(len(part), bool)
        for f, a in arrays.items():
            flagged |= a.review
            names, n = np.unique(np.asarray(a.labels(), dtype=object), return_counts=True)
            c = counts.setdefault(f, {})
            for k, v in zip(names.tolist(), n.tolist(), strict=True):
                c[k] = c.get(k, 0) + v
        review += int(flagged.sum())
    return ClassifyReport(
        classifier=clf.name,
        images=len(hashes),
        needs_review=review,
        seconds=time.perf_counter() - t0,
        stored=store,
        labels={f: dict(sorted(c.items(), key=lambda kv: -kv[1])[:20]) for f, c in counts.items()},
    )


def score_inputs(
    clf: Classifier | Ensemble,
    inputs: list[np.ndarray],
    sizes: np.ndarray | None,
    *,
    top_k: int,
    hierarchy: str,
    threshold: float | None,
) -> dict[str, FieldArrays]:
    """Predictions of one batch from its inputs (one matrix per member) and stored sizes: pure, so
    that it runs here or on a Ray worker alike."""
    if isinstance(clf, Ensemble):
        probs = clf.proba(inputs, sizes=sizes)
    else:
        probs = field_probas(clf, inputs[0], sizes=sizes)
    return predict_arrays(clf, probs, top_k=top_k, hierarchy=hierarchy, threshold=threshold, sizes=sizes)


def store_predictions(
    cat: CatalogParts, name: str, version: str, shas: Sequence[str], arrays: dict[str, FieldArrays]
) -> None:
    """Replace the stored predictions of classifier ``name`` for ``shas`` (one executemany).

    On SQLite the rows go straight to the driver (values pre-serialised as SQLAlchemy would:
    JSON text, the DateTime bind processor's string); other databases use a Core insert.
    """
    import json

    from sqlalchemy import Table, delete, insert

    from catalens.catalog.schema import utcnow
    from catalens.classify.tables import ClassPrediction

    tbl = cast(Table, ClassPrediction.__table__)
    now = utcnow()
    cols = (
        "image_sha256",
        "classifier",
        "version",
        "field",
        "label",
        "prob",
        "needs_review",
        "top_k",
        "created_at",
    )
    rows: list[tuple[Any, ...]] = []
    for f, a in arrays.items():
        labels = a.labels()
        probs = a.prob.tolist()
        review = a.review.tolist()
        quoted = [json.dumps(c) for c in a.classes]
        ti, tp = a.top_idx.tolist(), a.top_prob.astype(np.float64).tolist()
        tops = [
            "[" + ",".join(f"[{quoted[j]},{v:.6g}]" for j, v in zip(js, vs, strict=True)) + "]"
            for js, vs in zip(ti, tp, strict=True)
        ]
        rows.extend(
            (h, name, version, f, lab, pr, rv, tk, now)
            for h, lab, pr, rv, tk in zip(shas, labels, probs, review, tops, strict=True)
        )
    with cat.db.session() as s:
        conn = s.connection()
        for i in range(0, len(shas), 900):
            conn.execute(
                delete(tbl).where(tbl.c.classifier == name, tbl.c.image_sha256.in_(list(shas[i : i + 900])))
            )
        if not rows:
            return
        if conn.dialect.name == "sqlite" and conn.dialect.paramstyle == "qmark":
            proc = tbl.c.created_at.type.bind_processor(conn.dialect)
            stamp = proc(now) if proc else now
            fast = [(*r[:6], int(r[6]), r[7], stamp) for r in rows]
            conn.exec_driver_sql(
                f"INSERT INTO {tbl.name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", fast
            )
        else:
            conn.execute(
                insert(tbl),
                [dict(zip(cols, (*r[:7], json.loads(r[7]), r[8]), strict=True)) for r in rows],
            )


def catalog_titles(cat: CatalogParts, hashes: Sequence[str]) -> list[str | None]:
    from catalens.classify.labels import _catalog_maps

    _, _, _, owner = _catalog_maps(cat.db)
    return [owner.get(h, (None, None))[1] for h in hashes]


def evaluate(
    cat: CatalogParts,
    classifier: str,
    labels_csv: str | Path | None,
    *,
    fields: Sequence[str] | None = None,
    report_dir: str | Path | None = None,
    hierarchy: str = "joint",
    skip_unknown: bool = False,
    allow_train_overlap: bool = False,
) -> ClassifierEvaluation:
    """Per-field accuracy, macro-F1, weighted-F1 and ECE; an HTML report when ``report_dir``.

    ``labels_csv`` None: the classifier's held-out split (``holdout.csv`` in its folder), else the
    catalog's attributes. Rows the classifier was trained on raise :class:`TrainOverlapError`
    unless ``allow_train_overlap`` (then ``train_overlap`` and ``warning`` say so in the result)."""
    from catalens.classify.evaluate import evaluate_field, write_report
    from catalens.classify.holdout import holdout_path, train_overlap
    from catalens.classify.labels import catalog_labels, read_labels

    clf = resolve(cat, classifier)
    use = list(fields or clf.fields)
    for f in use:
        if f not in clf.fields:
            raise ClassifierError(
                f"classifier {clf.name!r} has no field {f!r} (fields: {', '.join(clf.fields)})"
            )
    held = holdout_path(_members(clf)) if labels_csv is None else None
    if held is not None:
        labels = read_labels(cat.db, held, use, skip_unknown=True)
        labels.source = f"held-out split of {clf.name} ({held})"
    elif labels_csv is None:
        labels = catalog_labels(cat.db, use)
    else:
        labels = read_labels(cat.db, labels_csv, use, skip_unknown=skip_unknown)
    overlap = train_overlap(_members(clf), labels.shas)
    warning = None
    if overlap and overlap["rows"]:
        what = (
            f"{overlap['rows']} of {overlap['of']} label rows ({labels.source}) were used to train "
            f"classifier {clf.name!r}"
        )
        if not allow_train_overlap:
            raise TrainOverlapError(
                f"{what}: scoring them would report training accuracy, not how it does on new products. "
                f"Evaluate on its held-out split (`catalens classify eval -c {clf.name}` with no --labels, or the "
                "CSV written by `train --holdout-out`), or pass --allow-train-overlap to score them anyway"
            )
        warning = f"{what}; these scores are optimistic (training data), not held-out performance"
    probs = probas_stored(cat, clf, labels.shas, labels.titles)
    rows = predict_rows(clf, probs, hierarchy=hierarchy, threshold=0.0)
    results = {}
    for f in use:
        y_pred = [r[f].label for r in rows]
        results[f] = evaluate_field(labels.labels[f], y_pred, probs[f], clf.classes(f))
    return ClassifierEvaluation(
        classifier=clf.name,
        labels=labels.source,
        fields={f: _metrics(r) for f, r in results.items()},
        train_overlap=None
        if overlap is None
        else TrainOverlap(overlap["rows"], overlap["of"], overlap["how"]),
        warning=warning,
        report=None if report_dir is None else write_report(report_dir, clf.name, results),
    )


def _metrics(r: dict[str, Any]) -> FieldMetrics:
    """The public scores of :func:`catalens.classify.evaluate.evaluate_field`'s result."""
    return FieldMetrics(
        n=r["n"],
        accuracy=r["accuracy"],
        macro_f1=r["macro_f1"],
        weighted_f1=r["weighted_f1"],
        ece=r.get("ece"),
        unknown_classes=tuple(r.get("unknown_classes", ())),
    )
