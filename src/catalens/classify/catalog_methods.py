"""``Catalog`` methods for classification, tagging, colour, brand, evaluation (mixed into :class:`catalens.core.Catalog`).

Keep these thin: each method calls the functions of this package with the catalog's
database, settings and stored vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from catalens.catalog_base import CatalogParts

if TYPE_CHECKING:
    import numpy as np

    from catalens.classify.classifier import Classifier
    from catalens.classify.colour.features import ColourResult
    from catalens.classify.results import (
        BrandReport,
        BrandTag,
        ClassifierEvaluation,
        ClassifierInfo,
        ClassifyReport,
        ImagePrediction,
    )
    from catalens.core import Catalog
    from catalens.quality.catalog_methods import ProgressFactory


class ClassifyMixin(CatalogParts):
    """Methods for classification, tagging, colour, brand, evaluation."""

    def train_classifier(
        self,
        name: str,
        fields: Sequence[str],
        *,
        labels: str | Path | None = None,
        method: str = "linear",
        model: str | None = None,
        text_model: str | None = None,
        hierarchy: Sequence[str] | None = None,
        taxonomy: str | Path | None = None,
        drop_rare: bool = False,
        skip_unknown: bool = False,
        holdout: float = 0.2,
        holdout_seed: int = 0,
        holdout_out: str | Path | None = None,
        propagate: Sequence[str] = (),
        use_colour: bool | None = None,
        **options: Any,
    ) -> Classifier:
        """Train and save a classifier (labels CSV, or the catalog's own attributes when None).

        ``holdout`` (default 0.2) of the labelled products, stratified by the first field, are kept
        out of training; the version folder records the training images and the held-out rows
        (:mod:`catalens.classify.holdout`), ``evaluate_classifier`` scores those by default and
        refuses rows the classifier saw. ``holdout_out``: also write the held-out rows as a labels CSV.
        ``propagate``: fields whose labels spread to the catalog's unlabelled images before training
        (:mod:`catalens.classify.propagate`; the held-out rows never join).

        ``name``: the classifier's name; ``method``: a registered head (linear, prototype, prototype-lr)
        or finetune; ``model`` / ``text_model``: the image model and, for image + title, the title
        model; ``hierarchy`` / ``taxonomy``: fields that form a hierarchy and a taxonomy YAML;
        ``drop_rare``: leave out classes with too few examples instead of refusing; ``skip_unknown``:
        leave out label rows whose image is not in the catalog; ``holdout_seed``: the split's seed;
        ``use_colour``: the product's colour descriptor as an input (:mod:`catalens.classify.colour.calibration`):
        ``None`` (default) for the colour fields (``baseColour``, ``color``...) of a linear classifier
        without title inputs,
        ``True`` for every field, ``False`` never.
        ``options``: method options (e.g. ``C``, ``views``, ``calibration``). Returns the saved
        :class:`~catalens.classify.classifier.Classifier`.

        ``fields``: the label fields, one head each; ``labels``: a labels CSV (None: the catalog's own
        attributes).
        """
        from catalens.classify.holdout import image_sources, save_split, split_holdout, write_holdout
        from catalens.classify.labels import catalog_labels, read_labels
        from catalens.classify.taxonomy import load_taxonomy
        from catalens.classify.train import train_classifier

        flds = list(fields)
        ls = (
            catalog_labels(self.db, flds)
            if labels is None
            else read_labels(self.db, labels, flds, skip_unknown=skip_unknown)
        )
        tr, te = split_holdout(ls, holdout, holdout_seed)
        train_set, held = ls.subset(tr), ls.subset(te)
        spread_info = None
        if propagate:
            from catalens.classify.propagate import propagate as spread_labels

            train_set, spread_info = spread_labels(
                self,
                train_set,
                list(propagate),
                model=model or self.settings.default_model,
                text_model=text_model,
                exclude=held.shas,
                seed=holdout_seed,
            )
        tax = load_taxonomy(taxonomy) if taxonomy else None
        clf = train_classifier(
            self,
            name,
            train_set,
            flds,
            method,
            model=model,
            text_model=text_model,
            hierarchy=list(hierarchy or []),
            taxonomy=tax,
            use_colour=use_colour,
            drop_rare=drop_rare,
            **options,
        )
        sources = image_sources(self.db, held.shas)
        folder = getattr(clf, "folder", None)
        if folder is not None:
            save_split(Path(folder), train_set, held, flds, sources)
        if holdout_out is not None:
            write_holdout(Path(holdout_out), held, flds, sources)
        clf.data["holdout"] = {"rows": len(held), "fraction": holdout, "seed": holdout_seed}
        if spread_info is not None:
            clf.data["propagated"] = spread_info
        return clf

    def zeroshot_classifier(
        self,
        model: str,
        *,
        taxonomy: str | Path | None = None,
        fields: Sequence[str] | None = None,
        name: str | None = None,
        save: bool = False,
        templates: Sequence[str] | None = None,
        threshold: float = 0.0,
        text_encoder: Any = None,
    ) -> Classifier:
        """A zero-shot classifier (CLIP-type ``model``, classes = taxonomy names); saved when ``save``.

        ``taxonomy``: a taxonomy YAML (default: the built-in e-commerce one); ``fields``: the taxonomy
        fields to score; ``name``: the classifier's name; ``templates``: prompt templates for every
        field (default: each field's own); ``threshold``: the abstain threshold; ``text_encoder``:
        anything with ``encode(list[str])`` instead of the model's text tower (tests). Returns the
        :class:`~catalens.classify.classifier.Classifier`."""
        from catalens.classify.classifier import save_classifier
        from catalens.classify.taxonomy import load_taxonomy
        from catalens.classify.zeroshot import zeroshot_classifier

        tax = load_taxonomy(taxonomy) if taxonomy else None
        clf = zeroshot_classifier(
            model,
            tax,
            fields=fields,
            name=name,
            templates=templates,
            threshold=threshold,
            text_encoder=text_encoder,
        )
        if save:
            save_classifier(self.settings.home, clf)
        return clf

    def classify(
        self,
        paths: Sequence[str | Path],
        classifier: str = "builtin",
        *,
        top_k: int = 3,
        hierarchy: str = "joint",
        threshold: float | None = None,
        titles: Sequence[str | None] | None = None,
    ) -> list[ImagePrediction]:
        """Classify image files (``builtin``: the out-of-the-box e-commerce taxonomy): per file its
        source and, per field, the label, probability, ``top_k`` alternatives and ``needs_review``
        (below the classifier's abstain threshold, or ``threshold``). ``hierarchy`` "joint" keeps
        hierarchical labels consistent; ``titles`` (one per file) feed image + title classifiers.

        ``paths``: image files.

        ``classifier``: a trained classifier's name, ``builtin``, or ``a+b`` for an ensemble.

        Returns one :class:`~catalens.classify.results.ImagePrediction` per file, in order (a
        :class:`~catalens.classify.results.FieldPrediction` per field; ``to_dict()`` for JSON)."""
        from catalens.classify.catalog_scoring import classify_files

        return classify_files(
            self, paths, classifier, top_k=top_k, hierarchy=hierarchy, threshold=threshold, titles=titles
        )

    def classify_all(
        self,
        classifier: str,
        *,
        hierarchy: str = "joint",
        threshold: float | None = None,
        top_k: int = 3,
        store: bool = True,
        batch: int = 4096,
        ray: str | None = None,
        progress: ProgressFactory | None = None,
    ) -> ClassifyReport:
        """Classify every stored image from its stored embedding and store the predictions (one row
        per image and field, unless ``store=False``). ``ray``: score on that Ray cluster ("auto": the
        running one). Returns a :class:`~catalens.classify.results.ClassifyReport`: images scored,
        how many need review, seconds, and counts per field and label.

        ``classifier``: a trained classifier's name (or ``builtin``; ``a+b`` for an ensemble);
        ``hierarchy`` and ``threshold`` as in :meth:`classify`; ``top_k`` alternatives kept per field;
        ``batch``: embeddings scored at once (512 at most for a classifier with colour features, whose
        descriptors of images not seen before are computed on the way); ``progress``: a factory
        ``(stage, total) -> tick(n)`` for a progress bar over the images.

        ``store``: keep the predictions (table ``classify_predictions``)."""
        from catalens.classify.catalog_scoring import classify_all

        return classify_all(
            cast("Catalog", self),  # a mixin of Catalog: classify_all embeds what a fine-tuned model lacks
            classifier,
            hierarchy=hierarchy,
            threshold=threshold,
            top_k=top_k,
            store=store,
            batch=batch,
            ray=ray,
            progress=progress,
        )

    def evaluate_classifier(
        self,
        classifier: str,
        labels: str | Path | None = None,
        *,
        fields: Sequence[str] | None = None,
        report_dir: str | Path | None = None,
        hierarchy: str = "joint",
        skip_unknown: bool = False,
        allow_train_overlap: bool = False,
    ) -> ClassifierEvaluation:
        """Accuracy, macro-F1, weighted-F1 and ECE per field; ``report_dir`` writes an HTML report.

        ``labels`` None: the classifier's own held-out split (else the catalog's attributes).
        Label rows the classifier was trained on raise ``TrainOverlapError`` unless
        ``allow_train_overlap=True`` (the result then carries ``train_overlap`` and a warning).

        ``fields``: only these fields; ``hierarchy``: joint | independent decoding of hierarchical
        fields; ``skip_unknown``: leave out label rows whose image is not in the catalog instead of
        refusing.

        ``classifier``: the classifier's name; ``allow_train_overlap``: score rows it was trained on
        anyway. Returns a :class:`~catalens.classify.results.ClassifierEvaluation` (a
        :class:`~catalens.classify.results.FieldMetrics` per field; the report's path in ``report``)."""
        from catalens.classify.catalog_scoring import evaluate

        return evaluate(
            self, classifier, labels, fields=fields, report_dir=report_dir, hierarchy=hierarchy,
            skip_unknown=skip_unknown, allow_train_overlap=allow_train_overlap,
        )  # fmt: skip

    def classifiers(self) -> list[ClassifierInfo]:
        """Every saved classifier (brand taggers too), by name: a
        :class:`~catalens.classify.results.ClassifierInfo` each (name, newest version, versions,
        method, model and fields)."""
        from catalens.classify.classifier import list_classifiers
        from catalens.classify.results import ClassifierInfo

        return [ClassifierInfo.from_dict(row) for row in list_classifiers(self.settings.home)]

    def load_classifier(self, name: str, version: str | None = None) -> Classifier:
        """The saved classifier ``name`` (its newest version, or ``version``)."""
        from catalens.classify.classifier import load_classifier

        return load_classifier(self.settings.home, name, version)

    def train_brand_tagger(
        self,
        name: str,
        *,
        model: str | None = None,
        min_examples: int = 10,
        target_precision: float = 0.8,
        save: bool = True,
        brand_col: str | None = None,
    ) -> Classifier:
        """Learn and save a brand tagger (labels: the ``brand_col`` attribute, else the title words
        before the gender word; brands with fewer than ``min_examples`` products are left out; the
        abstain threshold aims at ``target_precision``).

        ``name``: the tagger's name; ``model``: the embedding model (default: the configured one).
        Returns the saved :class:`~catalens.classify.classifier.Classifier`.

        ``save``: write it under the home (else only return it)."""
        from catalens.classify.brand.catalog_tagging import train_brands

        return train_brands(
            self, name, model=model, min_examples=min_examples, target_precision=target_precision,
            save=save, brand_col=brand_col,
        )  # fmt: skip

    def brands(
        self,
        paths: Sequence[str | Path],
        tagger: str = "brands",
        *,
        ocr: bool = True,
        threshold: float | None = None,
    ) -> list[BrandTag]:
        """Brand of image files (``ocr``: OCR'd brand names win over the logo head).

        ``paths``: image files; ``tagger``: the brand tagger's name (``train_brand_tagger``);
        ``threshold``: the logo head's abstain threshold (default: the tagger's own). Returns one
        :class:`~catalens.classify.results.BrandTag` per file: its brand, probability and which
        source answered."""
        from catalens.classify.brand.catalog_tagging import tag_files

        return tag_files(self, paths, tagger, ocr=ocr, threshold=threshold)

    def brands_all(
        self, tagger: str = "brands", *, ocr: bool = False, threshold: float | None = None, store: bool = True
    ) -> BrandReport:
        """Brand of every stored image, stored as predictions of field ``brand`` (OCR, cached per
        image, only with ``ocr``).

        ``tagger``: the brand tagger's name; ``threshold``: the logo head's abstain threshold (default:
        the tagger's own); ``store``: keep the predictions. Returns a
        :class:`~catalens.classify.results.BrandReport` (counts: images, unknown, read by OCR, per
        brand)."""
        from catalens.classify.brand.catalog_tagging import tag_all

        return tag_all(self, tagger, ocr=ocr, threshold=threshold, store=store)

    def colours(
        self,
        path: str | Path,
        *,
        k: int = 5,
        max_pixels: int = 4000,
        product_mask: np.ndarray | None = None,
        detect_on_white: bool = True,
    ) -> ColourResult:
        """Dominant product colours (foreground only) named against the retail palette, with percentages
        (at most ``k``). On a plain white backdrop the packaged product detector's mask is the
        foreground (``detect_on_white``); ``product_mask`` (a boolean array) gives it instead.

        ``path``: an image file; ``max_pixels``: pixels sampled for the palette. Returns a
        :class:`~catalens.classify.colour.features.ColourResult`: the primary colour, the named colours
        with their shares and mean RGB, and how the foreground was found (``to_dict()``: percentages)."""
        from catalens.classify.colour.features import dominant_colours
        from catalens.imageio import open_image

        return dominant_colours(
            open_image(path).image, k, max_pixels, product_mask=product_mask, detect_on_white=detect_on_white
        )
