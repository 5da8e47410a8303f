"""``Catalog`` methods for heatmaps and explanations (mixed into :class:`catalens.core.Catalog`).

Keep these thin: each method calls the functions of this package with the catalog's
database, settings and stored vectors.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalens.catalog_base import CatalogParts

if TYPE_CHECKING:
    from PIL import Image

    from catalens.explain.explainer import Explainer, Explanation
    from catalens.explain.match import MatchExplanation


class ExplainMixin(CatalogParts):
    """Methods for heatmaps and explanations."""

    def explainer(self, model: str | None = None) -> Explainer:
        """The torch explainer for ``model`` (default: the catalog's model), loaded once."""
        from catalens.explain.explainer import Explainer

        cache: dict[str, Explainer] = self.__dict__.setdefault("_explainers", {})
        name = model or self.settings.default_model
        if name not in cache:
            cache[name] = Explainer(name)
        return cache[name]

    def explain_target(
        self,
        classifier: str | None = None,
        field: str | None = None,
        *,
        imagenet: bool = False,
        model: str | None = None,
        image_size: tuple[int, int] | None = None,
    ) -> tuple[Any, str | None]:
        """``(target, model name or None)``: a trained classifier's field, or the model's ImageNet classifier
        (``image_size``: a small photo gets the classifier's small-photo head, where it has one).

        ``imagenet``: the model's ImageNet classifier instead of a trained one.

        ``classifier`` / ``field``: a trained classifier and its field (default: the built-in taxonomy
        for the packaged model, else the model's ImageNet classifier); ``model``: the backbone."""
        from catalens.explain.targets import default_target

        return default_target(
            self.settings.home,
            classifier=classifier,
            field=field,
            imagenet=imagenet,
            model=model or self.settings.default_model,
            image_size=image_size,
        )

    def explain_label(
        self,
        image: str | Path,
        *,
        classifier: str | None = None,
        field: str | None = None,
        label: str | int | None = None,
        imagenet: bool = False,
        model: str | None = None,
        method: str | None = None,
        threshold: float = 0.5,
        top_k: int = 5,
        smooth: float | None = None,
        on_product: bool = True,
    ) -> Explanation:
        """Heatmap of why ``label`` (default: the predicted one) is given to ``image``.

        ``image`` is a path, a catalog image sha256 (or prefix) or a product id. ``on_product`` (default):
        weight the map by the product the packaged detector finds (:mod:`catalens.explain.product`;
        more of the map's mass lies on the product and the deletion AUC margin over random maps grows:
        bench/RESULTS.md "explain: on the product").

        ``classifier`` / ``field``: the trained classifier and field to explain (``imagenet``: the
        model's ImageNet head instead); ``model``: the backbone (default: the classifier's); ``method``:
        a registered explanation method (gradcam, gradcam++, rollout, lib:*); ``threshold``: the map level
        (0..1) a region must reach; ``top_k``: at most this many regions; ``smooth``: sigma of the
        map's Gaussian smoothing as a fraction of the input's shorter side (default: the method's).
        """
        from catalens.explain.refs import resolve_image_ref

        path = resolve_image_ref(self.db, image)
        target, model_name = self.explain_target(
            classifier, field, imagenet=imagenet, model=model, image_size=_header_size(path)
        )
        return self.explainer(model_name).explain(
            path,
            target,
            label,
            method=method,
            threshold=threshold,
            top_k=top_k,
            smooth=smooth,
            on_product=on_product,
        )

    def explain_match(
        self, query: str | Path, match: str | Path, *, model: str | None = None, mode: str = "contribution"
    ) -> MatchExplanation:
        """Which regions of ``query`` and ``match`` agree (paths, image sha256s or product ids).

        ``model``: the embedding model; ``mode``: similarity | contribution (the query's map sums to the
        pair's cosine)."""
        from catalens.explain.match import explain_match
        from catalens.explain.refs import resolve_image_ref

        q = resolve_image_ref(self.db, query)
        m = resolve_image_ref(self.db, match)
        return explain_match(self.explainer(model), q, m, mode=mode)

    def draw_regions(self, image: str | Path, regions: Any) -> Image.Image:
        """``image`` with ``regions`` drawn on it (boxes, explanation regions or quality check results)."""
        from catalens.explain.explainer import load_image
        from catalens.explain.refs import resolve_image_ref
        from catalens.explain.render import draw_regions

        pil, _ = load_image(resolve_image_ref(self.db, image))
        return draw_regions(pil, regions)

    def explain_quality(
        self, image: str | Path, *, profile: str = "general", include_pass: bool = False
    ) -> tuple[Any, Image.Image]:
        """Run the quality checks of ``profile`` on ``image`` and draw the regions behind their
        verdicts (text, watermark, border, background... boxes, coloured by verdict).

        Returns ``(ImageQC, drawing)``; the result is not stored in the catalog.

        ``include_pass``: also draw the regions of checks that passed.
        """
        from catalens.explain.explainer import load_image
        from catalens.explain.refs import resolve_image_ref
        from catalens.explain.render import draw_regions

        path = resolve_image_ref(self.db, image)
        report = self.qc([path], profile=profile, store=False)  # type: ignore[attr-defined]
        qc = report.images[0]
        pil, _ = load_image(path)
        shown = [r for r in qc.results if r.regions and (include_pass or r.verdict != "pass")]
        return qc, draw_regions(pil, shown)


def _header_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the image header, or None when it cannot be read (the explainer then
    reports the problem with the file)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
