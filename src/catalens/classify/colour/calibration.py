"""Learned colour calibration: a foreground colour descriptor, cached per image, for colour heads.

The descriptor (:func:`colour_descriptor`, ``DESCRIPTOR_DIM`` values) describes the product's
foreground (the mask of :func:`catalens.classify.colour.features.foreground_mask` on a copy whose long side
is ``SIDE`` px) in CIELAB:

* a coarse Lab histogram (``L`` x ``a`` x ``b`` = 5 x 7 x 7 bins) of the foreground, and the same
  histogram of the foreground without skin-tone pixels (models wear many catalog products);
* soft palette histograms (fractions per retail colour name) of both pixel sets;
* the Lab mean and standard deviation of the skin-free foreground;
* the three k-means colours of the skin-free foreground, largest first, with their fractions;
* the foreground and skin fractions.

Histograms are square-rooted (Hellinger) so that a linear head compares them sensibly. A colour
field trained with colour features (``input`` ``image+colour``; on by default for colour fields of
linear classifiers, see :func:`catalens.classify.train.colour_fields`) concatenates the image
embedding and this descriptor; the head is the usual calibrated linear probe.

The descriptor has versions (:data:`DESCRIPTORS`), because a head only fits the inputs it was trained
on: each classifier records the version it was trained with (``Classifier.extra["colour_descriptor"]``;
classifiers saved before versions were recorded used ``colour-v2``) and is always scored with it.

* ``colour-v2``: the foreground from the backdrop separation of
  :func:`~catalens.classify.colour.features.foreground_mask` (backdrop colour, GrabCut on busy photos);
* ``colour-v3`` (default for new classifiers): on a plain white backdrop the packaged product
  detector's mask is the foreground (it keeps white and pale garments that the backdrop separation
  loses), elsewhere as ``colour-v2``; it scored best on the lock-box of ``bench/classify_colour_mask.py``
  (bench/RESULTS.md "classify: baseColour from the product's own pixels").

Descriptors are computed once per image sha and version and stored in ``classify_image_cache``
(kind = the version; a thumbnail view's own descriptor under ``<version>@<view kind>``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from catalens.classify.colour.features import PALETTE_LAB, _kmeans, foreground_mask, rgb_to_lab, skin_mask
from catalens.errors import ClassifierError
from catalens.registry import Registry

if TYPE_CHECKING:
    from catalens.catalog_base import CatalogParts

LEGACY_DESCRIPTOR = "colour-v2"  # what classifiers without a recorded version were trained on
DEFAULT_DESCRIPTOR = "colour-v3"  # what new classifiers train on
SIDE = 128
L_BINS, AB_BINS, AB_RANGE = 5, 7, 60.0
MAX_PIXELS = 2500
DESCRIPTOR_DIM = 2 * L_BINS * AB_BINS * AB_BINS + 2 * len(PALETTE_LAB) + 6 + 3 * 4 + 2


def _lab_hist(lab: np.ndarray) -> np.ndarray:
    if len(lab) == 0:
        return np.zeros(L_BINS * AB_BINS * AB_BINS, np.float32)
    li = np.clip((lab[:, 0] / 100.0 * L_BINS).astype(int), 0, L_BINS - 1)
    ai = np.clip(((lab[:, 1] + AB_RANGE) / (2 * AB_RANGE) * AB_BINS).astype(int), 0, AB_BINS - 1)
    bi = np.clip(((lab[:, 2] + AB_RANGE) / (2 * AB_RANGE) * AB_BINS).astype(int), 0, AB_BINS - 1)
    h = np.bincount((li * AB_BINS + ai) * AB_BINS + bi, minlength=L_BINS * AB_BINS * AB_BINS)
    return (h / len(lab)).astype(np.float32)


def _palette_hist(lab: np.ndarray) -> np.ndarray:
    if len(lab) == 0:
        return np.zeros(len(PALETTE_LAB), np.float32)
    d = np.linalg.norm(lab[:, None, :] - PALETTE_LAB[None], axis=-1)
    w = np.exp(-((d - d.min(1, keepdims=True)) ** 2) / (2 * 8.0**2))
    w /= w.sum(1, keepdims=True)
    return w.mean(0).astype(np.float32)


def colour_descriptor(img: Any, product_mask: np.ndarray | None = None) -> np.ndarray:
    """The fixed-length (:data:`DESCRIPTOR_DIM`) foreground colour descriptor of a PIL image;
    ``product_mask`` (bool, any size of the image's shape ratio) replaces the foreground separation
    (bench/classify_colour_mask.py measures the product detector's mask there)."""
    im = img.convert("RGB")
    im.thumbnail((SIDE, SIDE))  # downscale before masking: the mask and histograms need no more
    arr = np.asarray(im, np.uint8)
    if product_mask is not None and product_mask.any():
        from catalens.classify.colour.features import _resize_mask

        mask = _resize_mask(product_mask, arr.shape[:2])
    else:
        mask, _ = foreground_mask(arr)
    px = arr[mask]
    if len(px) > MAX_PIXELS:
        px = px[np.random.default_rng(0).choice(len(px), MAX_PIXELS, replace=False)]
    if len(px) == 0:
        px = arr.reshape(-1, 3)
    skin = skin_mask(px)
    lab = rgb_to_lab(px).astype(np.float32)
    cloth = lab[~skin] if (~skin).sum() >= 20 else lab
    centres, assign = _kmeans(cloth.astype(np.float64).copy(), 3, iters=8)
    frac = np.bincount(assign, minlength=len(centres)) / max(len(assign), 1)
    order = np.argsort(-frac)
    km = np.zeros((3, 4), np.float32)
    for r, j in enumerate(order[:3]):
        km[r] = [*(centres[j] / 50.0), frac[j]]
    stats = np.concatenate([cloth.mean(0), cloth.std(0)]) / 50.0
    parts = [
        np.sqrt(_lab_hist(lab)),
        np.sqrt(_lab_hist(cloth)),
        np.sqrt(_palette_hist(lab)),
        np.sqrt(_palette_hist(cloth)),
        stats,
        km.ravel(),
        [float(mask.mean()), float(skin.mean())],
    ]
    return np.concatenate([np.asarray(p, np.float32).ravel() for p in parts])


def _describe_v2(img: Any) -> np.ndarray:
    return colour_descriptor(img)


def _describe_v3(img: Any) -> np.ndarray:
    from catalens.classify.colour.features import _small, detected_mask, white_backdrop

    im = img.convert("RGB")
    mask = detected_mask(im) if white_backdrop(_small(im)) else None  # as dominant_colours decides
    return colour_descriptor(im, mask)


def _known_descriptors() -> Registry[Callable[[Any], np.ndarray]]:
    reg: Registry[Callable[[Any], np.ndarray]] = Registry("colour descriptor", error=ClassifierError)
    reg.register("colour-v2", _describe_v2)
    reg.register("colour-v3", _describe_v3)
    return reg


DESCRIPTORS = _known_descriptors()


def describe(img: Any, version: str = DEFAULT_DESCRIPTOR) -> np.ndarray:
    """The colour descriptor of a PIL image in the given version (:data:`DESCRIPTORS`)."""
    return DESCRIPTORS.get(version)(img)


def descriptor_version(clf: Any) -> str:
    """The descriptor version a classifier was trained with (``colour-v2`` when it recorded none)."""
    return str(getattr(clf, "extra", {}).get("colour_descriptor") or LEGACY_DESCRIPTOR)


def colour_descriptors(
    cat: CatalogParts,
    shas: Sequence[str],
    progress: Callable[[int, int], None] | None = None,
    *,
    version: str = LEGACY_DESCRIPTOR,
    problems: list[str] | None = None,
) -> np.ndarray:
    """(N, DESCRIPTOR_DIM) descriptors of stored images, computed once per sha and version (cached in
    the catalog). An image whose file cannot be read is a LabelsError naming it; with ``problems``
    (a list) it is appended there as ``"path: reason"`` instead, nothing is stored for it, and its row
    is the average descriptor of the others (the rest of the batch goes on)."""
    from catalens.classify.cache import cached, decode_vector, encode_vector
    from catalens.errors import CatalensError, LabelsError
    from catalens.imageio import open_image

    fn = DESCRIPTORS.get(version)

    def compute(sha: str) -> bytes | None:
        rec = cat.db.image(sha)
        if rec is None:
            raise LabelsError(f"image {sha} is not in the catalog")
        path = rec.stored_path or rec.source
        try:
            img = open_image(path).image
        except (CatalensError, OSError, ValueError) as exc:
            if problems is None:
                raise LabelsError(f"{path}: cannot read it for its colour descriptor: {exc}") from exc
            problems.append(f"{path}: {exc}")
            return None
        return encode_vector(fn(img))

    raw = cached(cat.db, version, list(shas), compute, batch=256, progress=progress)
    got = [decode_vector(raw[s]) for s in shas if s in raw]
    filler = np.mean(got, axis=0) if got else np.zeros(DESCRIPTOR_DIM, np.float32)
    return np.stack([decode_vector(raw[s]) if s in raw else filler for s in shas]).astype(np.float32)


def view_descriptors(
    cat: CatalogParts, shas: Sequence[str], stored: np.ndarray, view_name: str, *, version: str
) -> tuple[np.ndarray, list[str]]:
    """Descriptors of the ``view_name`` view of each image (a 60x80 thumbnail: the descriptor a
    thumbnail of the product gets when it is classified), rows aligned with ``shas`` and ``stored``
    (the images' own descriptors). A photo that already fits the view, or whose file cannot be read
    (reported as ``"path: reason"``), keeps its own descriptor. Cached per sha, version and view."""
    from catalens.classify.cache import cached_rows, encode_vector, write_cache
    from catalens.classify.thumbnail_views import VIEWS, fits, view_image
    from catalens.errors import CatalensError
    from catalens.imageio import open_image

    view = VIEWS[view_name]
    fn = DESCRIPTORS.get(version)
    kind = f"{version}@{view.kind}"
    out, row_of, have = cached_rows(cat.db, kind, shas, stored)
    problems: list[str] = []
    pending: dict[str, bytes] = {}
    for s in row_of:
        if s in have:
            continue
        rec = cat.db.image(s)
        if rec is None or (rec.width and rec.height and fits(rec.width, rec.height, view)):
            continue  # not cataloged (reported by the embeddings) or already thumbnail-sized
        path = rec.stored_path or rec.source
        try:
            vec = fn(view_image(open_image(path, draft_to=2 * view.box[1]).image, view))
        except (CatalensError, OSError, ValueError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        out[row_of[s]] = vec
        pending[s] = encode_vector(vec)
        if len(pending) >= 256:
            write_cache(cat.db, kind, pending)
            pending = {}
    write_cache(cat.db, kind, pending)
    return out, problems
