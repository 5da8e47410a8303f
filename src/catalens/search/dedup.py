"""Exact and near-duplicate images at catalog scale, without an all-pairs matrix.

Stages:

1. **Exact**: images with the same decoded pixels (``images.pixel_sha256``), and one image
   (same bytes) listed under several products.
2. **Candidates**: every embedded image's ``neighbours`` nearest images with cosine >=
   ``candidate_cosine`` (:func:`catalens.search.neighbours.neighbour_pairs`: exact flat search
   up to 20k images, a throw-away PCA+IVF above, re-scored with exact cosines; O(n k) pairs).
3. **Gate** (vectorised, microseconds per pair) with the copy descriptors of both images
   (:mod:`catalens.search.copy_descriptor`, computed once per image and stored): a pair goes on when
   ``cosine >= gate_cosine``, or its coarse structure (best of 31 windows at 8x8) is >=
   ``gate_structure`` and its coarse colour distance <= ``gate_colour``. Most look-alike
   pairs stop here.
4. **Alignment** (about a millisecond per pair, :func:`catalens.search.copy_descriptor.compare`): ECC
   affine alignment of the trimmed thumbnails (and of the whole images when the trimmed views do
   not align: a label pasted on the background stops one copy's trim), then per pair: ``structure``
   (correlation at the alignment), the colour of the *product's own cells* (foreground mask: the
   white studio background no longer swamps the Lab check), and the largest blob of disagreeing
   cells (``damage``) with the structure and colour outside it.
5. **Verdicts** (:func:`classify`): ``copy`` (clean, or one pasted-over blob - label, sticker,
   price tag, logo - with the rest identical), ``variant`` (same layout, the product's colour or
   pattern differs), ``reshoot`` (same-looking product in another shot), or nothing.
6. **Full detail** (:func:`refine`, :mod:`catalens.search.copydetail`, 10-30 ms per pair): the pairs
   the coarse stage cannot settle (:func:`needs_detail`: every coarse copy, a cosine >=
   ``detail_cosine``, and each image's ``detail_top`` nearest candidates) are compared on the photos themselves:
   keypoints, a fitted warp, pixels outside the pasted regions. Where both photos have enough
   keypoints it decides copy or not (:func:`detail_is_copy`); two products on one studio template,
   alike at 40x40, fail here.
7. **Groups**: union-find over exact pairs and copies (and re-shoots with ``include_reshoots``);
   variant pairs form ``families``, reported apart: a colour variant is a legitimate listing.

Default thresholds (:class:`DedupOptions`) were chosen on dev data of
``bench/search_dedup_lockbox.py`` and reported once on its lock-box parts (bench/RESULTS.md, "dedup:
copies, re-shoots and variant families"). The re-shoot thresholds were not measured (no natural
re-shoots in the data).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import func, select

from catalens.catalog.schema import ImageRecord
from catalens.errors import ConfigError, ImageError
from catalens.imageio import decode_image, pixel_hash, read_bytes, sha256_bytes
from catalens.search import copy_descriptor, copydetail
from catalens.search.engine import CatalogSearch, image_sources
from catalens.search.neighbours import neighbour_pairs
from catalens.search.tables import DedupFeature

if TYPE_CHECKING:
    from catalens.catalog_base import CatalogParts


@dataclass
class DedupOptions:
    candidate_cosine: float = 0.65
    neighbours: int = 10
    gate_cosine: float = 0.75
    gate_structure: float = 0.70
    gate_colour: float = 15.0
    # copy, clean path: aligned structure and the colour of the product's own pixels
    min_structure: float = 0.90
    max_colour: float = 8.0
    max_colour_p90: float = 12.0
    # copy, pasted-over path: one damaged blob (label, sticker, price tag, logo), the rest identical
    max_damage: float = 0.20
    min_structure_out: float = 0.95
    max_colour_out: float = 15.0
    # not a copy: same layout, other colour = variant; same colour, other shot = re-shoot
    variant_structure: float = 0.85
    reshoot_cosine: float = 0.93
    reshoot_colour: float = 10.0
    include_reshoots: bool = False
    # full-detail check (catalens.search.copydetail) of the pairs the coarse stage cannot settle:
    # it has the last word on "copy" whenever both photos have enough keypoints
    detail: bool = True
    # checked: every coarse copy, pairs with cosine >= detail_cosine, and each image's detail_top
    # nearest candidates (a pasted label can pull a copy's cosine to ~0.65)
    detail_cosine: float = 0.95
    detail_top: int = 3
    detail_min_keypoints: int = 40  # fewer (a plain or tiny photo): the coarse verdict stands
    detail_min_inliers: int = 15
    detail_min_inlier_ratio: float = 0.25
    detail_max_damage: float = 0.15  # pasted-over regions, share of the frame
    detail_max_bad_out: float = 0.03  # disagreeing product pixels outside them
    detail_max_diff: float = 4.0  # median CIELAB distance outside them
    # thumbnails whose keypoints do not register are compared frame to frame (copydetail "frame"):
    # without keypoint evidence no pasted-over region is allowed and the pixels must agree closely
    # (chosen on bench/search_dedup_lockbox.py dev_small + dev_thumbs with bench/search_dedup_frame.py:
    # 45 of 50 thumbnail resize / recompress copies, 0 of 7,130 pairs of two products; white socks
    # at 60 px: 3.04 / 8.6)
    detail_frame_max_damage: float = 0.01
    detail_frame_max_diff: float = 3.0  # median CIELAB distance
    detail_frame_max_p95: float = 8.0  # its 95th percentile

    @classmethod
    def overridden(cls, **values: Any) -> DedupOptions:
        """The defaults with the given values (see :meth:`with_values`)."""
        return cls().with_values(**values)

    def with_values(self, **values: Any) -> DedupOptions:
        """A validated copy with the given values (``None`` keeps the current one, each converted to
        the field's type); an unknown name is a ConfigError."""
        opts = replace(self)
        for key, value in values.items():
            if value is None:
                continue
            if not hasattr(opts, key):
                raise ConfigError(f"unknown dedup option {key!r}")
            setattr(opts, key, type(getattr(opts, key))(value))
        opts.validate()
        return opts

    def changed(self) -> dict[str, Any]:
        """The options that differ from the defaults, by name."""
        default = DedupOptions()
        return {k: v for k, v in asdict(self).items() if v != getattr(default, k)}

    def validate(self) -> None:
        if not -1.0 <= self.candidate_cosine <= 1.0:
            raise ConfigError("candidate_cosine must be in [-1, 1]")
        if self.neighbours < 1:
            raise ConfigError("neighbours must be at least 1")
        for name in ("min_structure", "gate_structure", "min_structure_out", "variant_structure"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [-1, 1]")
        colours = (
            self.max_colour,
            self.max_colour_p90,
            self.max_colour_out,
            self.gate_colour,
            self.reshoot_colour,
        )
        if min(colours) < 0:
            raise ConfigError("colour thresholds must be >= 0")
        for name in (
            "max_damage",
            "detail_max_damage",
            "detail_frame_max_damage",
            "detail_max_bad_out",
            "detail_min_inlier_ratio",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1]")
        if self.detail_top < 0:
            raise ConfigError("detail_top must be >= 0")
        if min(self.detail_max_diff, self.detail_frame_max_diff, self.detail_frame_max_p95) < 0:
            raise ConfigError("detail_max_diff, detail_frame_max_diff and detail_frame_max_p95 must be >= 0")
        if self.detail_min_inliers < 3 or self.detail_min_keypoints < 0 or self.detail_max_diff < 0:
            raise ConfigError(
                "detail_min_inliers must be >= 3, detail_min_keypoints and detail_max_diff >= 0"
            )


@dataclass
class DupPair:
    a: str
    b: str
    kind: str  # "exact-pixels" | "same-image" | "near" (a copy) | "reshoot" | "variant"
    cosine: float | None = None
    structure: float | None = None
    colour: float | None = None
    colour_p90: float | None = None
    inliers: int | None = None  # keypoint inliers of the full-detail check (None: not checked)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("cosine", "structure", "colour", "colour_p90"):
            if d[key] is not None:
                d[key] = round(float(d[key]), 4)
        return d


@dataclass
class DupGroup:
    kind: str  # "exact" (all pairs exact) | "near"
    images: list[dict[str, Any]]
    pairs: list[DupPair]
    score: float  # weakest link: min structure of near pairs (1.0 for exact groups)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "score": round(float(self.score), 4),
            "images": self.images,
            "pairs": [p.to_dict() for p in self.pairs],
        }


@dataclass
class DedupReport:
    groups: list[DupGroup]  # duplicates: copies (and re-shoots with include_reshoots)
    options: DedupOptions
    stats: dict[str, Any] = field(default_factory=dict)
    families: list[DupGroup] = field(default_factory=list)  # variant families (kind "variant")

    def to_dict(self) -> dict[str, Any]:
        return {
            "options": asdict(self.options),
            "stats": self.stats,
            "groups": [g.to_dict() for g in self.groups],
            "families": [g.to_dict() for g in self.families],
        }


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


# ---- descriptors --------------------------------------------------------------------------------
def _image_paths(catalog: CatalogParts, shas: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    with catalog.db.session() as s:
        for i in range(0, len(shas), 500):
            q = select(ImageRecord.sha256, ImageRecord.stored_path, ImageRecord.source).where(
                ImageRecord.sha256.in_(shas[i : i + 500])
            )
            for sha, stored, src in s.execute(q):
                if sha is not None:  # always: matched by ``IN (shas)``, which no NULL matches
                    out[sha] = stored or src
    return out


def _describe_file(path: str, settings: Any) -> bytes | None:
    try:
        data = read_bytes(path, max_bytes=settings.max_file_bytes)
        dec = decode_image(
            data, path, max_pixels=settings.max_pixels, max_side=settings.max_side, draft_to=160
        )
    except ImageError:
        return None
    return copy_descriptor.describe(dec.image)


def ensure_descriptors(catalog: CatalogParts, shas: Sequence[str]) -> dict[str, bytes]:
    """Descriptors of ``shas``: stored ones are read, missing ones computed from the image files and stored."""
    want = list(dict.fromkeys(shas))
    have: dict[str, bytes] = {}
    with catalog.db.session() as s:
        for i in range(0, len(want), 500):
            q = select(DedupFeature.image_sha256, DedupFeature.data).where(
                DedupFeature.image_sha256.in_(want[i : i + 500]),
                DedupFeature.version == copy_descriptor.FEATURE_VERSION,
            )
            have.update({h: bytes(d) for h, d in s.execute(q)})
    missing = [h for h in want if h not in have]
    if missing:
        paths = _image_paths(catalog, missing)
        todo = [h for h in missing if h in paths]
        workers = max(1, int(getattr(catalog.settings, "workers", 2)))
        with ThreadPoolExecutor(workers) as pool:
            blobs = list(pool.map(lambda h: _describe_file(paths[h], catalog.settings), todo))
        new = {h: b for h, b in zip(todo, blobs, strict=True) if b is not None}
        with catalog.db.session() as s:
            for h, b in new.items():
                s.merge(DedupFeature(image_sha256=h, version=copy_descriptor.FEATURE_VERSION, data=b))
        have.update(new)
    return have


# ---- catalog-wide -------------------------------------------------------------------------------
def _exact_pairs(catalog: CatalogParts, searcher: CatalogSearch) -> list[DupPair]:
    pairs: list[DupPair] = []
    with catalog.db.session() as s:
        dup_px = (
            select(ImageRecord.pixel_sha256)
            .where(ImageRecord.status == "ok", ImageRecord.pixel_sha256.is_not(None))
            .group_by(ImageRecord.pixel_sha256)
            .having(func.count() > 1)
        )
        rows = s.execute(
            select(ImageRecord.pixel_sha256, ImageRecord.sha256)
            .where(ImageRecord.pixel_sha256.in_(dup_px), ImageRecord.status == "ok")
            .order_by(ImageRecord.pixel_sha256, ImageRecord.sha256)
        ).all()
    by_px: dict[str, list[str]] = {}
    for px, sha in rows:
        if px is not None and sha is not None:  # always: px matched by IN, ok rows have a sha256
            by_px.setdefault(px, []).append(sha)
    for shas in by_px.values():
        pairs.extend(DupPair(shas[0], other, "exact-pixels", 1.0, 1.0, 0.0, 0.0) for other in shas[1:])
    for sha, pids in searcher.links.items():
        if len(pids) > 1:
            pairs.append(DupPair(sha, sha, "same-image", 1.0, 1.0, 0.0, 0.0))
    return pairs


def candidate_pairs(
    searcher: CatalogSearch, options: DedupOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pos_a, pos_b, cosine) with a < b: each image's nearest neighbours above ``candidate_cosine``."""
    positions = np.array([p for p in searcher.data.positions if int(p) in searcher.sha_at], dtype=np.int64)
    if len(positions) < 2:
        z = np.zeros(0, dtype=np.int64)
        return z, z, np.zeros(0, dtype=np.float32)
    mat = np.asarray(searcher.matrix()[positions], dtype=np.float32)
    workers = max(1, int(getattr(searcher.settings, "workers", 2)))
    ra, rb, cos = neighbour_pairs(mat, options.neighbours, options.candidate_cosine, threads=min(workers, 2))
    return positions[ra], positions[rb], cos


def neighbour_rank(a: np.ndarray, b: np.ndarray, cos: np.ndarray) -> np.ndarray:
    """Per pair: its rank by cosine among the candidate pairs of either image (0 = nearest), the smaller."""
    n = len(a)
    rank = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    if n == 0:
        return rank
    ends = np.concatenate([a, b])
    pair = np.concatenate([np.arange(n), np.arange(n)])
    order = np.lexsort((-np.concatenate([cos, cos]), ends))  # by image, then nearest first
    e = ends[order]
    start = np.r_[0, np.flatnonzero(e[1:] != e[:-1]) + 1]
    pos = np.arange(len(order)) - np.repeat(start, np.diff(np.r_[start, len(order)]))
    np.minimum.at(rank, pair[order], pos)
    return rank


@dataclass
class Verification:
    """Per-pair results of :func:`verify`."""

    ok: np.ndarray  # both descriptors present
    gated: np.ndarray  # passed the cheap gate (was aligned)
    structure: np.ndarray  # ECC correlation when aligned, else the coarse structure
    colour: np.ndarray  # aligned colour distance (75th pct) when aligned, else the coarse colour
    colour_p90: np.ndarray  # aligned colour distance, 90th percentile (999 when not aligned)
    scores: np.ndarray  # (n, len(copy_descriptor.SCORE_FIELDS)) every aligned score; NaN when not aligned

    def score(self, name: str) -> np.ndarray:
        return self.scores[:, copy_descriptor.SCORE_FIELDS.index(name)]


def verify(
    descs: dict[str, bytes],
    a_sha: Sequence[str],
    b_sha: Sequence[str],
    cosine: np.ndarray,
    options: DedupOptions,
    workers: int = 2,
) -> Verification:
    """Gate every pair with the vectorised coarse check, then align the ones that pass (threads)."""
    n = len(a_sha)
    ok = np.array([h in descs and g in descs for h, g in zip(a_sha, b_sha, strict=True)], dtype=bool)
    struct = np.full(n, -1.0, dtype=np.float32)
    colour = np.full(n, 999.0, dtype=np.float32)
    colour90 = np.full(n, 999.0, dtype=np.float32)
    gated = np.zeros(n, dtype=bool)
    scores = np.full((n, len(copy_descriptor.SCORE_FIELDS)), np.nan, dtype=np.float32)
    idx_ok = np.flatnonzero(ok)
    if len(idx_ok) == 0:
        return Verification(ok, gated, struct, colour, colour90, scores)
    ok_list: list[int] = idx_ok.tolist()  # Python ints: a Sequence takes no numpy index
    names = list(dict.fromkeys([a_sha[i] for i in ok_list] + [b_sha[i] for i in ok_list]))
    row = {h: i for i, h in enumerate(names)}
    thumbs = copy_descriptor.parse([descs[h] for h in names])
    ia = np.array([row[a_sha[i]] for i in ok_list], dtype=np.int64)
    ib = np.array([row[b_sha[i]] for i in ok_list], dtype=np.int64)
    co = copy_descriptor.coarse(thumbs, ia, ib)
    struct[idx_ok], colour[idx_ok] = co.structure, co.colour
    cos = np.asarray(cosine, dtype=np.float32)[idx_ok]
    go = (cos >= options.gate_cosine) | (
        (co.structure >= options.gate_structure) & (co.colour <= options.gate_colour)
    )
    todo = np.flatnonzero(go)
    gated[idx_ok[todo]] = True

    def run(j: int) -> tuple[float, ...]:
        return copy_descriptor.compare(
            thumbs, int(ia[j]), int(ib[j]), int(co.window[j]), bool(co.a_in_b[j])
        ).as_tuple()

    if len(todo):
        with ThreadPoolExecutor(max(1, workers)) as pool:  # OpenCV releases the GIL
            res = list(pool.map(run, todo.tolist(), chunksize=256))
        arr = np.asarray(res, dtype=np.float32).reshape(-1, len(copy_descriptor.SCORE_FIELDS))
        scores[idx_ok[todo]] = arr
        struct[idx_ok[todo]], colour[idx_ok[todo]], colour90[idx_ok[todo]] = arr[:, 0], arr[:, 1], arr[:, 2]
    return Verification(ok, gated, struct, colour, colour90, scores)


VERDICTS = ("copy", "reshoot", "variant", "")


def classify(
    options: DedupOptions, cos: np.ndarray, v: Verification, *, allow_copy: bool = True
) -> np.ndarray:
    """One verdict per pair: "copy", "reshoot", "variant" or "" (unrelated or not aligned).

    * copy, clean: ``structure >= min_structure`` and the product's colour (75th / 90th
      percentile of the Lab distance over its foreground cells) <= ``max_colour`` / ``max_colour_p90``;
    * copy, pasted over: the disagreeing cells form one blob of at most ``max_damage`` of the frame
      and, outside it, ``structure_out >= min_structure_out`` and ``colour_out <= max_colour_out``;
    * variant: not a copy, ``structure_out >= variant_structure`` (same template or shot layout) -
      the colour or pattern of the product differs;
    * reshoot: neither, ``cosine >= reshoot_cosine`` and the product's colour (75th percentile)
      <= ``reshoot_colour``: the same-looking product in another photo.

    With ``allow_copy`` False the copy rules are skipped (the verdict a pair gets when the
    full-detail check rejects it as a copy). :func:`refine` then has the last word on copies.
    """
    n = len(cos)
    out = np.full(n, "", dtype=object)
    live = v.ok & v.gated
    if not live.any():
        return out

    def sc(name: str, missing: float) -> np.ndarray:
        return np.nan_to_num(v.score(name), nan=missing)

    clean = (
        (sc("structure", -1) >= options.min_structure)
        & (sc("fg_colour", 999) <= options.max_colour)
        & (sc("fg_colour_p90", 999) <= options.max_colour_p90)
    )
    pasted = (
        (sc("damage", 9) <= options.max_damage)
        & (sc("structure_out", -1) >= options.min_structure_out)
        & (sc("colour_out", 999) <= options.max_colour_out)
    )
    copy = live & (clean | pasted) if allow_copy else np.zeros(n, dtype=bool)
    variant = live & ~copy & (sc("structure_out", -1) >= options.variant_structure)
    cosv = np.nan_to_num(np.asarray(cos, dtype=np.float32), nan=-1.0)
    reshoot = (
        live
        & ~copy
        & ~variant
        & (cosv >= options.reshoot_cosine)
        & (sc("fg_colour", 999) <= options.reshoot_colour)
    )
    out[copy], out[variant], out[reshoot] = "copy", "variant", "reshoot"
    return out


ViewLoader = Callable[[str], "copydetail.DetailView | None"]


def needs_detail(
    options: DedupOptions,
    cos: np.ndarray,
    v: Verification,
    verdict: np.ndarray,
    rank: np.ndarray | None = None,
) -> np.ndarray:
    """Pairs the full-detail check looks at: every coarse copy (to reject look-alikes), pairs with a
    cosine >= ``detail_cosine``, and, with ``rank`` (:func:`neighbour_rank`), each image's
    ``detail_top`` nearest candidates whatever the coarse stage said (to find copies it missed: a
    pasted label can pull the cosine to ~0.65). The others keep the coarse verdict (not copies)."""
    if not options.detail:
        return np.zeros(len(verdict), dtype=bool)
    cosv = np.nan_to_num(np.asarray(cos, dtype=np.float32), nan=-1.0)
    pick = v.ok & v.gated & ((verdict == "copy") | (cosv >= options.detail_cosine))
    if rank is not None:
        pick |= v.ok & (np.asarray(rank) < options.detail_top)
    return pick


def detail_is_copy(options: DedupOptions, d: copydetail.DetailScores) -> bool:
    """The full-detail copy rule (thresholds in :class:`DedupOptions`). A pair registered by its
    frames (thumbnails, ``method`` "frame") has no keypoint evidence: it must agree everywhere."""
    if d.aligned and d.method == "frame":
        return (
            d.damage <= options.detail_frame_max_damage
            and d.bad_out <= options.detail_max_bad_out
            and d.diff_median <= options.detail_frame_max_diff
            and d.diff_p95 <= options.detail_frame_max_p95
        )
    return (
        d.aligned
        and d.method == "keypoints"
        and d.inliers >= options.detail_min_inliers
        and d.inliers >= options.detail_min_inlier_ratio * max(1, d.matches)
        and d.damage <= options.detail_max_damage
        and d.bad_out <= options.detail_max_bad_out
        and d.diff_median <= options.detail_max_diff
    )


def refine(
    options: DedupOptions,
    cos: np.ndarray,
    v: Verification,
    verdict: np.ndarray,
    a_keys: Sequence[str],
    b_keys: Sequence[str],
    load: ViewLoader,
    workers: int = 2,
    rank: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[int, copydetail.DetailScores]]:
    """Verdicts after the full-detail check of the pairs :func:`needs_detail` picks.

    Where both photos load and have ``detail_min_keypoints`` keypoints, :func:`detail_is_copy` decides
    copy or not (a rejected coarse copy falls back to the variant / re-shoot rules); otherwise the
    coarse verdict stands, unless the thumbnails' frame-to-frame comparison finds a copy.
    Returns the verdicts and the detail scores by pair index."""
    todo = np.flatnonzero(needs_detail(options, cos, v, verdict, rank))
    out = verdict.copy()
    if len(todo) == 0:
        return out, {}
    order = cache_friendly_order(todo, a_keys, b_keys)
    cached = lru_cache(maxsize=VIEW_CACHE)(load)

    def run(i: int) -> copydetail.DetailScores | None:
        va, vb = cached(a_keys[i]), cached(b_keys[i])
        if va is None or vb is None:
            return None
        return copydetail.compare(va, vb, options.detail_min_inliers, options.detail_min_inlier_ratio)

    with ThreadPoolExecutor(max(1, workers)) as pool:  # OpenCV releases the GIL
        results = list(pool.map(run, order))
    scores: dict[int, copydetail.DetailScores] = {}
    not_copy = classify(options, cos, v, allow_copy=False)
    for i, d in zip(order, results, strict=True):
        if d is None:
            continue
        if d.keypoints < options.detail_min_keypoints:
            if d.method == "frame" and detail_is_copy(options, d):
                scores[i], out[i] = d, "copy"
            continue
        scores[i] = d
        out[i] = "copy" if detail_is_copy(options, d) else not_copy[i]
    return out, scores


VIEW_CACHE = 256  # detail views held at once (~0.6 MB each)


def cache_friendly_order(todo: np.ndarray, a_keys: Sequence[str], b_keys: Sequence[str]) -> list[int]:
    """The pairs ``todo`` in an order whose two photos were mostly loaded shortly before: the photos
    are numbered by reverse Cuthill-McKee on the graph of the pairs (neighbours get near numbers),
    and the pairs sorted by their later photo, so a pair's views are still in the LRU cache of
    :data:`VIEW_CACHE` views whenever the graph's bandwidth allows (sorting by the first photo's key
    alone loaded ~2.2 views per photo on a 1,200-photo lock-box)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    idx = todo.tolist()
    keys = {k: n for n, k in enumerate(dict.fromkeys(k for i in idx for k in (a_keys[i], b_keys[i])))}
    if not idx:
        return []
    rows = np.array([keys[a_keys[i]] for i in idx])
    cols = np.array([keys[b_keys[i]] for i in idx])
    graph = coo_matrix((np.ones(len(idx)), (rows, cols)), shape=(len(keys), len(keys))).tocsr()
    place = np.empty(len(keys), dtype=np.int64)
    place[reverse_cuthill_mckee(graph + graph.T, symmetric_mode=True)] = np.arange(len(keys))
    late, early = np.maximum(place[rows], place[cols]), np.minimum(place[rows], place[cols])
    return [idx[j] for j in np.lexsort((early, late))]


def view_loader(catalog: CatalogParts, shas: Sequence[str]) -> ViewLoader:
    """Loads the :class:`~catalens.search.copydetail.DetailView` of a stored image by its sha256."""
    paths = _image_paths(catalog, list(dict.fromkeys(shas)))
    st = catalog.settings

    def load(sha: str) -> copydetail.DetailView | None:
        path = paths.get(sha)
        if path is None:
            return None
        return copydetail.load_view(
            path, max_bytes=st.max_file_bytes, max_pixels=st.max_pixels, max_side=st.max_side
        )

    return load


def _pair(
    a: str, b: str, kind: str, cos: float, v: Verification, i: int, detail: dict[int, Any] | None = None
) -> DupPair:
    d = (detail or {}).get(i)
    return DupPair(
        a,
        b,
        kind,
        cos,
        float(v.structure[i]),
        float(v.colour[i]),
        float(v.colour_p90[i]),
        None if d is None else int(d.inliers),
    )


def find_duplicates(
    catalog: CatalogParts,
    searcher: CatalogSearch,
    options: DedupOptions | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    **overrides: Any,
) -> DedupReport:
    """Group exact and near-duplicate images of the whole catalog."""
    opts = (options or DedupOptions()).with_values(**overrides)
    t0 = time.perf_counter()
    exact = _exact_pairs(catalog, searcher)
    t1 = time.perf_counter()
    pa, pb, cos = candidate_pairs(searcher, opts)
    t2 = time.perf_counter()
    sha_at = searcher.sha_at
    a_sha = [sha_at[int(p)] for p in pa]
    b_sha = [sha_at[int(p)] for p in pb]
    descs = ensure_descriptors(catalog, list({*a_sha, *b_sha}))
    t3 = time.perf_counter()
    workers = max(1, int(getattr(catalog.settings, "workers", 2)))
    ver = verify(descs, a_sha, b_sha, cos, opts, workers=min(workers, 2))
    cos32 = np.asarray(cos, dtype=np.float32)
    verdict = classify(opts, cos32, ver)
    t4 = time.perf_counter()
    rank = neighbour_rank(pa, pb, cos32)
    pick = needs_detail(opts, cos32, ver, verdict, rank)
    load_view = view_loader(catalog, [h for i in np.flatnonzero(pick) for h in (a_sha[i], b_sha[i])])
    loaded: list[str] = []  # every view decoded (list.append: safe from the pool's threads)

    def loader(sha: str) -> copydetail.DetailView | None:
        loaded.append(sha)
        return load_view(sha)

    verdict, detail = refine(
        opts, cos32, ver, verdict, a_sha, b_sha, loader, workers=min(workers, 2), rank=rank
    )
    t5 = time.perf_counter()
    dup_kinds = {"copy", "reshoot"} if opts.include_reshoots else {"copy"}
    near = [
        _pair(
            a_sha[i], b_sha[i], "near" if verdict[i] == "copy" else "reshoot", float(cos[i]), ver, i, detail
        )
        for i in range(len(verdict))
        if verdict[i] in dup_kinds
    ]
    variants = [
        _pair(a_sha[i], b_sha[i], "variant", float(cos[i]), ver, i, detail)
        for i in np.flatnonzero(verdict == "variant").tolist()
    ]
    groups = build_groups(catalog, searcher, exact + near)
    families = build_groups(catalog, searcher, variants, kind="variant")
    stats = {
        "images": int(len(searcher.data.positions)),
        "candidate_pairs": int(len(pa)),
        "aligned_pairs": int(ver.gated.sum()),
        "detail_pairs": len(detail),
        "detail_views_loaded": len(loaded),  # photos decoded for the detail check (a view per photo: ideal)
        "verified_pairs": len(near),
        "pairs_by_verdict": {k: int((verdict == k).sum()) for k in VERDICTS if k},
        "families": len(families),
        "exact_pairs": len(exact),
        "groups": len(groups),
        "images_in_groups": sum(len(g.images) for g in groups),
        "seconds": {
            "exact": round(t1 - t0, 3),
            "neighbours": round(t2 - t1, 3),
            "descriptors": round(t3 - t2, 3),
            "verify": round(t4 - t3, 3),  # gate + alignment
            "detail": round(t5 - t4, 3),  # full-detail check
            "total": round(time.perf_counter() - t0, 3),
        },
        "index": searcher.index.info().get("kind"),
    }
    return DedupReport(groups, opts, stats, families)


def build_groups(
    catalog: CatalogParts, searcher: CatalogSearch, pairs: list[DupPair], kind: str | None = None
) -> list[DupGroup]:
    """Connected components of ``pairs``; ``kind`` names every group (default: "exact" or "near")."""
    uf = _UnionFind()
    for p in pairs:
        uf.union(p.a, p.b)
    members: dict[str, list[str]] = {}
    for sha in list(uf.parent):
        members.setdefault(uf.find(sha), []).append(sha)
    by_root: dict[str, list[DupPair]] = {}
    for p in pairs:
        by_root.setdefault(uf.find(p.a), []).append(p)
    all_shas = [h for ms in members.values() for h in ms]
    srcs = image_sources(catalog.db, all_shas)
    groups = []
    for root, shas in members.items():
        ps = by_root.get(root, [])
        g_kind = kind or ("exact" if all(p.kind in ("exact-pixels", "same-image") for p in ps) else "near")
        near_scores = [
            p.structure
            for p in ps
            if p.kind not in ("exact-pixels", "same-image") and p.structure is not None
        ]
        images = [
            {"image_sha256": h, "source": srcs.get(h), "product_ids": searcher.links.get(h, [])}
            for h in sorted(shas)
        ]
        groups.append(DupGroup(g_kind, images, ps, min(near_scores) if near_scores else 1.0))
    groups.sort(key=lambda g: (g.kind != "exact", -len(g.images), g.images[0]["image_sha256"]))
    return groups


# ---- one new image ------------------------------------------------------------------------------
def check_image(
    catalog: CatalogParts,
    searcher: CatalogSearch,
    path: str | Path,
    options: DedupOptions | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Catalog images that duplicate the image at ``path``; nothing is written except descriptors."""
    from catalens.search.query import embed_image_file

    opts = (options or DedupOptions()).with_values(**overrides)
    data = read_bytes(path, max_bytes=catalog.settings.max_file_bytes)
    sha = sha256_bytes(data)
    matches: list[dict[str, Any]] = []
    stored = searcher.stored_vector(sha)
    if stored is not None:
        vec = stored
        dec = decode_image(
            data, str(path), max_pixels=catalog.settings.max_pixels, max_side=catalog.settings.max_side
        )
        px = None
    else:
        encoder = catalog.encoder(searcher.model)
        _, vec, dec = embed_image_file(encoder, path, catalog.settings)
        px = pixel_hash(dec.image)
    if stored is not None:
        matches.append({"image_sha256": sha, "kind": "same-bytes", "cosine": 1.0})
    if px is not None:
        with catalog.db.session() as s:
            for h in s.scalars(select(ImageRecord.sha256).where(ImageRecord.pixel_sha256 == px)):
                if h != sha:
                    matches.append({"image_sha256": h, "kind": "exact-pixels", "cosine": 1.0})
    seen = {m["image_sha256"] for m in matches}
    hits = searcher.index.search(vec[None], opts.neighbours + 1)
    cands = [
        (searcher.sha_at[p], score)
        for p, score in hits.row(0)
        if score >= opts.candidate_cosine and p in searcher.sha_at
    ]
    cands = [(h, score) for h, score in cands if h not in seen]
    if cands:
        descs = ensure_descriptors(catalog, [h for h, _ in cands])
        descs["__query__"] = copy_descriptor.describe(dec.image)
        cos = np.array([score for _, score in cands], dtype=np.float32)
        a_keys, b_keys = ["__query__"] * len(cands), [h for h, _ in cands]
        ver = verify(descs, a_keys, b_keys, cos, opts)
        verdict = classify(opts, cos, ver)
        stored_view = view_loader(catalog, b_keys)
        query_view = copydetail.view_of(dec.image, native=max(dec.width, dec.height))

        def load(key: str) -> copydetail.DetailView | None:
            return query_view if key == "__query__" else stored_view(key)

        near_first = np.arange(len(cands))  # hits come nearest first
        verdict, _ = refine(opts, cos, ver, verdict, a_keys, b_keys, load, rank=near_first)
        dup_kinds = {"copy", "reshoot"} if opts.include_reshoots else {"copy"}
        for i, (h, score) in enumerate(cands):
            if verdict[i] in dup_kinds:
                matches.append(
                    {
                        "image_sha256": h,
                        "kind": "near" if verdict[i] == "copy" else "reshoot",
                        "cosine": round(float(score), 4),
                        "structure": round(float(ver.structure[i]), 4),
                        "colour": round(float(ver.colour[i]), 4),
                        "colour_p90": round(float(ver.colour_p90[i]), 4),
                    }
                )
    srcs = image_sources(catalog.db, [m["image_sha256"] for m in matches])
    for m in matches:
        m["source"] = srcs.get(m["image_sha256"])
        m["product_ids"] = searcher.links.get(m["image_sha256"], [])
    return {
        "query": str(path),
        "image_sha256": sha,
        "duplicate": bool(matches),
        "matches": matches,
        "options": asdict(opts),
    }
