"""Product detection on the :class:`~catalens.core.Catalog`: find the products in a photo and
search, classify or name the colours of each one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from catalens.catalog_base import CatalogParts
from catalens.detect.per_product import PhotoDetections

if TYPE_CHECKING:
    from catalens.core import Catalog


class DetectMixin(CatalogParts):
    """Detection methods of :class:`~catalens.core.Catalog` (see :mod:`catalens.detect.per_product`)."""

    def image_regions(self, sha256: str) -> dict[str, Any]:
        """Products cut out of the photo ``sha256`` by ``ingest --detect`` (``crops``), and the photo
        and box it was cut from when it is itself such a crop (``crop_of``)."""
        from catalens.errors import NotFoundError

        if self.db.image(sha256) is None:
            raise NotFoundError(f"no image {sha256} in the catalog")
        found: dict[str, Any] = self.db.regions(sha256)
        return found

    def detect(
        self, path: str | Path, *, threshold: float | None = None, max_items: int = 10
    ) -> PhotoDetections:
        """The products in the photo at ``path``: box, mask, score and coarse category, best first.

        ``threshold``: the detector's score limit (default: the packaged model's); ``max_items``: at
        most this many products."""
        from catalens.detect.per_product import detect_photo

        return detect_photo(path, settings=self.settings, threshold=threshold, max_items=max_items)[1]

    def search_image_each(
        self,
        path: str | Path,
        k: int = 10,
        *,
        where: str | None = None,
        all_images: bool = False,
        model: str | None = None,
        threshold: float | None = None,
        max_items: int = 10,
    ) -> PhotoDetections:
        """One list of similar products per product detected in the photo at ``path``.

        ``k``: results per product; ``where``, ``all_images``, ``model``: as in :meth:`search_image`;
        ``threshold``: the detector's score limit; ``max_items``: at most this many products."""
        from catalens.detect.per_product import search_each

        return search_each(
            cast("Catalog", self),  # a mixin of Catalog: search_each uses its searcher
            path,
            k,
            where=where,
            all_images=all_images,
            model=model,
            threshold=threshold,
            max_items=max_items,
        )

    def classify_each(
        self,
        path: str | Path,
        classifier: str = "builtin",
        *,
        top_k: int = 3,
        hierarchy: str = "joint",
        threshold: float | None = None,
        max_items: int = 10,
    ) -> PhotoDetections:
        """Classifier fields for each product detected in the photo at ``path``.

        ``classifier``: as in :meth:`classify`; ``top_k``, ``hierarchy``, ``threshold``: as in
        :meth:`classify`, ``threshold`` also the detector's score limit; ``max_items``: at most this
        many products."""
        from catalens.detect.per_product import classify_each

        return classify_each(
            self, path, classifier, top_k=top_k, hierarchy=hierarchy, threshold=threshold, max_items=max_items
        )

    def colours_each(
        self, path: str | Path, *, threshold: float | None = None, max_items: int = 10
    ) -> PhotoDetections:
        """Dominant colours of each product detected in the photo at ``path`` (its own pixels).

        ``threshold``: the detector's score limit (default: the packaged model's); ``max_items``: at
        most this many products."""
        from catalens.detect.per_product import colours_each

        return colours_each(path, settings=self.settings, threshold=threshold, max_items=max_items)
