"""The public results of classification, brand tagging and classifier evaluation (issue 19).

Typed, frozen dataclasses returned by the ``Catalog`` methods of :mod:`catalens.classify.catalog_methods`;
``to_dict()`` gives what the CLI's ``--json`` and the REST API print (rounding happens there, the
attributes keep the full values).

* :meth:`Catalog.classify <catalens.core.Catalog.classify>` - one :class:`ImagePrediction` per file,
  a :class:`FieldPrediction` per field;
* ``classify_all`` - a :class:`ClassifyReport`; ``evaluate_classifier`` - a
  :class:`ClassifierEvaluation` (a :class:`FieldMetrics` per field, :class:`TrainOverlap`);
* ``classifiers`` - a :class:`ClassifierInfo` per saved classifier;
* ``brands`` - a :class:`BrandTag` per file; ``brands_all`` - a :class:`BrandReport`.

``Catalog.colours`` returns :class:`catalens.classify.colour.features.ColourResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldPrediction:
    """One field's answer: the label, its calibrated probability, the ``top_k`` alternatives
    (label, probability; most probable first) and ``needs_review`` (below the abstain threshold)."""

    label: str
    prob: float
    top_k: list[tuple[str, float]]
    needs_review: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "prob": round(float(self.prob), 6),
            "needs_review": self.needs_review,
            "top_k": [{"label": c, "prob": round(float(p), 6)} for c, p in self.top_k],
        }


@dataclass(frozen=True, slots=True)
class ImagePrediction:
    """The classification of one image file: its ``source``, the ``classifier`` that answered (an
    ensemble's name is ``a+b``) and a :class:`FieldPrediction` per field."""

    source: str
    classifier: str
    fields: dict[str, FieldPrediction]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "classifier": self.classifier,
            "fields": {f: p.to_dict() for f, p in self.fields.items()},
        }


@dataclass(frozen=True, slots=True)
class ClassifyReport:
    """Classification of every stored image: how many, how many need review (any field flagged),
    how long, whether the predictions were stored, and per field the 20 most frequent labels with
    their counts (most frequent first)."""

    classifier: str
    images: int
    needs_review: int
    seconds: float
    stored: bool
    labels: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "classifier": self.classifier,
            "images": self.images,
            "needs_review": self.needs_review,
            "seconds": round(self.seconds, 3),
            "stored": self.stored,
            "labels": {f: dict(c) for f, c in self.labels.items()},
        }


@dataclass(frozen=True, slots=True)
class FieldMetrics:
    """One field's scores over the labelled rows: ``n`` rows, accuracy, macro- and weighted-F1, ECE
    (None when no labelled class is known to the head) and the labelled classes the head lacks."""

    n: int
    accuracy: float
    macro_f1: float
    weighted_f1: float
    ece: float | None
    unknown_classes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "weighted_f1": self.weighted_f1,
            "ece": self.ece,
            "unknown_classes": list(self.unknown_classes),
        }


@dataclass(frozen=True, slots=True)
class TrainOverlap:
    """How many of the ``of`` label rows the classifier was trained on (``rows``); ``how``: ``listed``
    (its saved training list) or ``same-data`` (the same images as its training data)."""

    rows: int
    of: int
    how: str

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "of": self.of, "how": self.how}


@dataclass(frozen=True, slots=True)
class ClassifierEvaluation:
    """A classifier scored on labelled images: where the ``labels`` came from, a
    :class:`FieldMetrics` per field, the overlap with its training rows (None: it cannot be told),
    a ``warning`` when it scored rows it was trained on, and the HTML ``report`` when one was written."""

    classifier: str
    labels: str
    fields: dict[str, FieldMetrics]
    train_overlap: TrainOverlap | None = None
    warning: str | None = None
    report: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "classifier": self.classifier,
            "labels": self.labels,
            "fields": {f: m.to_dict() for f, m in self.fields.items()},
        }
        if self.train_overlap is not None:
            out["train_overlap"] = self.train_overlap.to_dict()
        if self.warning:
            out["warning"] = self.warning
        if self.report is not None:
            out["report"] = str(self.report)
        return out


@dataclass(frozen=True, slots=True)
class ClassifierInfo:
    """A saved classifier (or brand tagger): its name, newest version, every version, method, image
    model and fields (None where its metadata lacks them)."""

    name: str
    latest: str
    versions: tuple[str, ...]
    method: str | None
    model: str | None
    fields: tuple[str, ...]

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> ClassifierInfo:
        """From a row of :func:`catalens.classify.classifier.list_classifiers`."""
        return cls(
            name=row["name"],
            latest=row["latest"],
            versions=tuple(row["versions"]),
            method=row.get("method"),
            model=row.get("model"),
            fields=tuple(row.get("fields", ())),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "latest": self.latest,
            "versions": list(self.versions),
            "method": self.method,
            "model": self.model,
            "fields": list(self.fields),
        }


@dataclass(frozen=True, slots=True)
class BrandTag:
    """The brand of one image file (``unknown`` below the abstain threshold), its probability and
    which source answered (``by``: ``ocr`` or ``logo``)."""

    source: str
    brand: str
    prob: float
    by: str

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "brand": self.brand, "prob": round(self.prob, 6), "by": self.by}


@dataclass(frozen=True, slots=True)
class BrandReport:
    """Brand tagging of every stored image: how many, how many ``unknown``, how many read by OCR, how
    long, whether stored, and the 20 most frequent brands with their counts (most frequent first)."""

    classifier: str
    images: int
    unknown: int
    by_ocr: int
    seconds: float
    stored: bool
    brands: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "classifier": self.classifier,
            "images": self.images,
            "unknown": self.unknown,
            "by_ocr": self.by_ocr,
            "seconds": round(self.seconds, 3),
            "stored": self.stored,
            "brands": dict(self.brands),
        }
