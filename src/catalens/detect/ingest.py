"""``ingest --detect``: store each product found in a photo as a catalog image of its own.

After the photos of an ingest are stored, each one is run through the detector; every product found
is cropped (:func:`catalens.detect.crops.product_crop`), written once as a PNG blob in the
home (``blobs/<sha[:2]>/<sha>.png``, named by its content hash, so a second run writes and stores
nothing new) and ingested like any other image (embedded, searchable, checkable). The link from crop
to photo, with the box, score, category and detector version, is kept in ``image_regions``; crops
are not linked to the photo's product (an outfit photo shows several products). A photo that
cannot be read again is reported as a failure of the crop job, and the rest go on.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalens.ingest.sources import SourceItem

if TYPE_CHECKING:
    from catalens.catalog_base import CatalogParts


def _blob(home: Path, data: bytes) -> tuple[str, Path]:
    from catalens.imageio import sha256_bytes

    sha = sha256_bytes(data)
    path = home / "blobs" / sha[:2] / f"{sha}.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return sha, path


def crop_photos(
    catalog: CatalogParts, shas: Iterable[str], *, threshold: float | None = None, max_items: int = 10
) -> tuple[list[SourceItem], list[dict[str, Any]], list[tuple[str, str]]]:
    """Detect the products of the stored photos ``shas``: the crops' source items, their region rows
    and ``(source, error)`` for photos that could not be read."""
    from catalens.detect.crops import product_crop
    from catalens.detect.detector import VERSION
    from catalens.detect.per_product import detect_photo

    items: list[SourceItem] = []
    regions: list[dict[str, Any]] = []
    failed: list[tuple[str, str]] = []
    home = Path(catalog.settings.home)
    for sha in shas:
        rec = catalog.db.image(sha)
        if rec is None or rec.status != "ok":
            continue
        path = rec.stored_path or rec.source
        try:
            rgb, found = detect_photo(
                path, settings=catalog.settings, threshold=threshold, max_items=max_items
            )
        except Exception as exc:  # noqa: BLE001 - one unreadable photo must not stop the others
            failed.append((str(path), f"{type(exc).__name__}: {exc}"))
            continue
        for it in found.items:
            buf = io.BytesIO()
            product_crop(rgb, it.detection).save(buf, "PNG")
            crop_sha, blob = _blob(home, buf.getvalue())
            x0, y0, x1, y1 = it.detection.box
            items.append(SourceItem(source=str(blob), path=blob))
            regions.append(
                {
                    "crop_sha256": crop_sha,
                    "source_sha256": sha,
                    "x0": x0,
                    "y0": y0,
                    "x1": x1,
                    "y1": y1,
                    "score": it.detection.score,
                    "category": it.detection.category,
                    "detector": VERSION,
                }
            )
    return items, regions, failed
