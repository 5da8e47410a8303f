"""Extra training views of stored images: the same photo as a small thumbnail.

A head trained only on the embeddings of 225x300 catalog photos loses a lot on 60x80 thumbnails
of the same products (articleType and gender by about 10 and 16 points weighted-F1 with Lite0-hc;
``bench/classify_sizes.py``, bench/RESULTS.md "classify: photo sizes"): a shrunk photo is another input distribution for the
frozen backbone. So a classifier trained with views has two heads per field: the main head, fitted
on the stored embeddings as before, and a ``small`` head fitted on each image twice, as stored and
as a thumbnail, which scores photos whose shorter side is at most ``SMALL_FACTOR`` x the view's
(:func:`catalens.classify.predict.small_rows`; the photo's size is known for files and stored in the
catalog for cataloged images). A single head trained on both views closed most of the thumbnail
gap but cost up to 0.05 weighted-F1 at the stored size (Lite0 gender, baseColour); routing by size
keeps the stored-size results unchanged (bench/RESULTS.md, ``bench/classify_sizes.py``).

A view is data (:data:`VIEWS`): the box a photo is shrunk into (oriented like the photo) and the
JPEG quality of the round trip a thumbnail file would have had. View embeddings are derived data:
computed once per (image, model, model version, view) and kept in the catalog's per-image cache
(``classify_image_cache``), like colour descriptors. A photo that already fits the box is its own
view (its stored embedding is used). A file that cannot be read any more gives its stored
embedding too, and is reported by name.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from catalens.errors import ClassifierError

if TYPE_CHECKING:
    from catalens.catalog_base import CatalogParts


@dataclass(frozen=True)
class ViewSpec:
    """A photo shrunk to fit ``box`` (short side, long side; never enlarged), saved as a JPEG at ``quality``."""

    name: str
    box: tuple[int, int]
    quality: int = 90
    version: str = "v1"

    @property
    def kind(self) -> str:
        return f"view-{self.name}-{self.version}"


VIEWS: dict[str, ViewSpec] = {"thumb": ViewSpec("thumb", (60, 80))}
# photos whose shorter side is at most this many times the view's are scored by the small heads
# (myntra-dev, Lite0-hc: at 120x160 the thumbnail-trained head beats the stored-size one,
# articleType 0.771 vs 0.755, gender 0.815 vs 0.798; at 225x300 it is no better)
SMALL_FACTOR = 2.0
# the methods that train on views unless told otherwise: on prototypes (class means) the thumbnail
# views cost gender at both sizes on myntra-dev (Lite0-hc: 0.04 at 225x300, 0.03 at 60x80), so they
# stay opt-in there
DEFAULT_VIEWS: dict[str, tuple[str, ...]] = {"linear": ("thumb",)}


def parse_views(spec: str | Sequence[str] | None, method: str) -> tuple[str, ...]:
    """``auto``/``None`` -> the method's default; ``none`` -> no view; else names from :data:`VIEWS`."""
    if spec is None or spec == "auto" or spec == ["auto"]:
        return DEFAULT_VIEWS.get(method, ())
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if names == ["none"]:
        return ()
    bad = [n for n in names if n not in VIEWS]
    if bad or not names:
        raise ClassifierError(f"unknown view(s) {bad or names}; use auto, none or {', '.join(VIEWS)}")
    return tuple(dict.fromkeys(names))


def fits(width: int, height: int, view: ViewSpec) -> bool:
    short, long = view.box
    return min(width, height) <= short and max(width, height) <= long


def view_image(image: Any, view: ViewSpec) -> Any:
    """``image`` (PIL) as the view: shrunk into the box oriented like it, through a JPEG file."""
    from PIL import Image

    im = image.convert("RGB") if image.mode != "RGB" else image.copy()
    short, long = view.box
    box = (short, long) if im.height >= im.width else (long, short)
    im.thumbnail(box, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=view.quality)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


def view_matrix(
    cat: CatalogParts,
    shas: Sequence[str],
    model: str,
    version: str | None,
    stored: np.ndarray,
    view_name: str,
    *,
    batch: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Embeddings of the ``view_name`` view of each image (rows aligned with ``shas`` and ``stored``,
    the images' stored embeddings), and the problems met (``"path: reason"``; those rows keep
    their stored embedding)."""
    from catalens.classify.cache import cached_rows, encode_vector, write_cache
    from catalens.errors import CatalensError
    from catalens.imageio import open_image
    from catalens.vectors import l2_normalize

    view = VIEWS[view_name]
    kind = f"{view.kind}:{model}:{version or ''}"
    out, row_of, have = cached_rows(cat.db, kind, shas, stored)
    problems: list[str] = []
    todo: list[tuple[str, str]] = []  # (sha, file)
    for s in row_of:
        if s in have:
            continue
        rec = cat.db.image(s)
        if rec is None:
            problems.append(f"{s}: not in the catalog")
        elif rec.width and rec.height and fits(rec.width, rec.height, view):
            continue  # already thumbnail-sized: the stored embedding is the view
        else:
            todo.append((s, rec.stored_path or rec.source))
    enc = cat.encoder(model) if todo else None
    done = 0
    for start in range(0, len(todo), batch):
        part, images = [], []
        for s, path in todo[start : start + batch]:
            try:
                images.append(view_image(open_image(path, draft_to=2 * view.box[1]).image, view))
                part.append(s)
            except (CatalensError, OSError, ValueError) as exc:
                problems.append(f"{path}: {exc}")
        if part:
            vecs = l2_normalize(
                np.asarray(enc.encode(np.stack([enc.preprocess(im) for im in images])), np.float32)
            )
            for s, v in zip(part, vecs, strict=True):
                out[row_of[s]] = v
            write_cache(cat.db, kind, {s: encode_vector(v) for s, v in zip(part, vecs, strict=True)})
        done += len(todo[start : start + batch])
        if progress:
            progress(done, len(todo))
    return out, problems
