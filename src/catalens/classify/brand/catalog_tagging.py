"""Brand tagging on a catalog: train a saved brand tagger, tag image files or every stored image.

A brand tagger is saved as a classifier artefact (``<home>/classifiers/<name>/<version>/``,
method ``brand``, one field ``brand``): the logo head (linear on the stored image embeddings, over
the brands with at least ``min_examples`` examples), its temperature and abstain threshold, and in
``extra["brand"]`` every brand seen in the titles (the list OCR text is matched against).
Brand labels come from the catalog's product titles (:func:`catalens.classify.brand.tagger.brand_labels`).
Tagging: a confident OCR match wins (``--no-ocr`` skips OCR), else the logo head's brand, or
``unknown`` below the threshold. ``brand_all`` stores one ``classify_predictions`` row per image
(field ``brand``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from catalens.classify.brand.tagger import UNKNOWN, BrandTagger, ocr_image, ocr_texts, train_brand_tagger
from catalens.classify.classifier import Classifier, FieldHead, check_name, load_classifier, save_classifier
from catalens.classify.results import BrandReport, BrandTag
from catalens.errors import ClassifierError, LabelsError

if TYPE_CHECKING:
    from catalens.catalog_base import CatalogParts

FIELD = "brand"


def to_classifier(tagger: BrandTagger, name: str, model: str, model_version: str | None) -> Classifier:
    head = FieldHead(
        name=FIELD,
        classes=list(tagger.brands),
        W=tagger.W,
        b=tagger.b,
        kind="linear",
        temperature=tagger.temperature,
        threshold=tagger.threshold,
    )
    return Classifier(
        name=name,
        version="",
        method="brand",
        model=model,
        model_version=model_version,
        heads={FIELD: head},
        data={"source": "catalog titles", "n": tagger.info.get("n")},
        extra={"brand": {"all_brands": list(tagger.all_brands), **tagger.info}},
    )


def from_classifier(clf: Classifier) -> BrandTagger:
    if clf.method != "brand" or FIELD not in clf.heads:
        raise ClassifierError(
            f"classifier {clf.name!r} is not a brand tagger (method {clf.method!r}); "
            "train one with `catalens brand train NAME`"
        )
    h = clf.head(FIELD)
    info = dict(clf.extra.get("brand", {}))
    return BrandTagger(
        brands=list(h.classes),
        all_brands=list(info.pop("all_brands", h.classes)),
        W=h.W,
        b=h.b,
        temperature=h.temperature,
        threshold=h.threshold,
        info=info,
    )


def train_brands(
    cat: CatalogParts,
    name: str,
    *,
    model: str | None = None,
    min_examples: int = 10,
    target_precision: float = 0.8,
    save: bool = True,
    brand_col: str | None = None,
) -> Classifier:
    """Learn a brand tagger from the catalog's products and their stored embeddings. Brand labels:
    the products' ``brand_col`` attribute (a brand column of the ingested manifest), else the
    title words before the gender word (Myntra-style titles)."""
    from catalens.classify.labels import _catalog_maps
    from catalens.classify.train import image_matrix

    check_name(name)
    model = model or cat.settings.default_model
    _, _, _, owner = _catalog_maps(cat.db)
    labels = None
    if brand_col:
        brand_of = _attribute(cat, brand_col)
        shas = [h for h, (pid, _) in owner.items() if brand_of.get(pid)]
        labels = [brand_of[owner[h][0]] for h in shas]
    else:
        shas = [h for h, (_, title) in owner.items() if title]
        if not shas:
            raise LabelsError(
                "no product in the catalog has a title: brand labels come from titles, "
                "or give the brand column with --brand-col"
            )
    X, version = image_matrix(cat, shas, model)
    tagger = train_brand_tagger(
        X,
        [owner[h][1] for h in shas],
        min_examples=min_examples,
        target_precision=target_precision,
        labels=labels,
    )
    clf = to_classifier(tagger, name, model, version)
    if save:
        save_classifier(cat.settings.home, clf)
    return clf


def _attribute(cat: CatalogParts, column: str) -> dict[str, str]:
    """product id -> its ``column`` attribute (non-empty); LabelsError naming the known attributes
    when no product has it."""
    from sqlalchemy import select

    from catalens.catalog.schema import Product

    out: dict[str, str] = {}
    known: set[str] = set()
    with cat.db.session() as s:
        for pid, attrs in s.execute(select(Product.id, Product.attrs)):
            attrs = attrs or {}
            known.update(attrs)
            v = attrs.get(column)
            if v is not None and str(v).strip():
                out[pid] = str(v).strip()
    if not out:
        raise LabelsError(
            f"--brand-col {column!r}: no product has this attribute "
            f"(known: {', '.join(sorted(known)) or 'none; ingest a manifest with a brand column'})"
        )
    return out


def tag_files(
    cat: CatalogParts,
    paths: Sequence[str | Path],
    tagger_name: str,
    *,
    ocr: bool = True,
    threshold: float | None = None,
) -> list[BrandTag]:
    """Brand of each image file: a :class:`BrandTag` each (``source``: the path as given)."""
    from catalens.imageio import open_image
    from catalens.vectors import l2_normalize

    clf = load_classifier(cat.settings.home, tagger_name)
    tagger = from_classifier(clf)
    images = [open_image(p).image for p in paths]
    enc = cat.encoder(clf.model)
    X = l2_normalize(np.asarray(enc.encode(np.stack([enc.preprocess(im) for im in images])), np.float32))
    texts = [ocr_image(im) for im in images] if ocr else None
    rows = tagger.predict(X, texts, threshold=threshold)
    return [
        BrandTag(str(p), str(r["brand"]), float(r["prob"]), str(r["source"]))
        for p, r in zip(paths, rows, strict=True)
    ]


def tag_all(
    cat: CatalogParts,
    tagger_name: str,
    *,
    ocr: bool = False,
    threshold: float | None = None,
    store: bool = True,
) -> BrandReport:
    """Brand of every stored image (logo head on stored embeddings; OCR, cached per image, when
    ``ocr``); stored as predictions of field ``brand``."""
    import time

    clf = load_classifier(cat.settings.home, tagger_name)
    tagger = from_classifier(clf)
    t0 = time.perf_counter()
    hashes, vecs = cat.vectors(clf.model)
    texts = None
    if ocr:
        got = ocr_texts(cat, hashes)
        texts = [got[h] for h in hashes]
    rows = tagger.predict(np.asarray(vecs, np.float32), texts, threshold=threshold)
    if store:
        _store(cat, clf, hashes, rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["brand"]] = counts.get(r["brand"], 0) + 1
    return BrandReport(
        classifier=clf.name,
        images=len(hashes),
        unknown=counts.get(UNKNOWN, 0),
        by_ocr=sum(r["source"] == "ocr" for r in rows),
        seconds=time.perf_counter() - t0,
        stored=store,
        brands=dict(sorted(counts.items(), key=lambda kv: -kv[1])[:20]),
    )


def _store(cat: CatalogParts, clf: Classifier, shas: Sequence[str], rows: list[dict[str, Any]]) -> None:
    from sqlalchemy import delete

    from catalens.classify.tables import ClassPrediction

    with cat.db.session() as s:
        for i in range(0, len(shas), 900):
            s.execute(
                delete(ClassPrediction).where(
                    ClassPrediction.classifier == clf.name,
                    ClassPrediction.image_sha256.in_(list(shas[i : i + 900])),
                )
            )
        s.add_all(
            ClassPrediction(
                image_sha256=h,
                classifier=clf.name,
                version=clf.version,
                field=FIELD,
                label=r["brand"],
                prob=float(r["prob"]),
                needs_review=r["brand"] == UNKNOWN,
                top_k=[[r["brand"], float(r["prob"])]],
            )
            for h, r in zip(shas, rows, strict=True)
        )
