"""Exact and near-duplicate images at catalog scale, without an all-pairs matrix.

Stages:

1. **Exact**: images with the same decoded pixels (``images.pixel_sha256``), and one image
   (same bytes) listed under several products.
2. **Candidates**: every embedded image's ``neighbours`` nearest images with cosine >=
   ``candidate_cosine`` (:func:`catalens.search.neighbours.neighbour_pairs`: exact flat search
   up to 20k images, a throw-away PCA+IVF above, re-scored with exact cosines; O(n k) pairs).
3. **Gate** (vectorised, microseconds per pair) with the copy descriptors of both images
   (:mod:`catalens.search.copyfeat`, computed once per image and stored): a pair goes on when
   ``cosine >= gate_cosine``, or its coarse structure (best of 31 windows at 8x8) is >=
   ``gate_structure`` and its coarse colour distance <= ``gate_colour``. Most look-alike
   pairs stop here.
4. **Alignment** (about a millisecond per pair): ECC affine alignment of the thumbnails
   (scale per axis and offset, so crops align), then ``structure`` = correlation at the
   alignment, ``colour`` / ``colour_p90`` = 75th / 90th percentile of the CIELAB cell distance
   there. A pair is a copy on either path:

   * verified: ``structure >= min_structure``, ``colour <= max_colour`` and
     ``colour_p90 <= max_colour_p90`` (the 90th percentile catches a recolour of a part of the
     photo, e.g. the trousers of a model shot, which leaves the 75th percentile low);
   * strong: ``cosine >= strong_cosine``, ``structure >= strong_min_structure`` and
     ``colour <= strong_max_colour`` (heavier edits, where the embedding is nearly identical;
     the colour check still rejects recoloured variants).
5. **Groups**: union-find over exact and verified pairs; each group lists its images, their
   products and every verified pair with its scores (``cosine``, ``structure``, ``colour``).

Default thresholds (:class:`DedupOptions`), chosen on a planted set from myntra-dev (seed 0,
``bench/search_dedup.py``; the reported figures use seeds 1 and 2): ``candidate_cosine=0.75``,
``neighbours=10``, gate ``0.88`` / ``0.7`` / ``15``, ``min_structure=0.95``, ``max_colour=12``,
``max_colour_p90=15`` (chosen on seeds 0-2 together), ``strong_cosine=0.95``,
``strong_min_structure=0.9``, ``strong_max_colour=25``. On the tuning set, aligned true copies
had structure >= 0.96 in 95% of pairs and colour <= 10.7 in 99%; look-alike products (the same
garment in another colour, another shot) had structure <= 0.946 in 99% of pairs and colour >= 11
in 99.9%. The gate let 22% of the candidate pairs through and dropped one true pair of 502.
Raise ``max_colour`` / ``max_colour_p90`` to accept colour-graded copies or large overlays (and
risk merging colour variants); lower ``min_structure`` to catch heavier edits (and risk merging
another shot of one item); raise the gate values to verify fewer pairs (faster, lower recall).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from catalens.catalog.schema import ImageRecord
from catalens.errors import ConfigError, ImageError
from catalens.imageio import decode_image, pixel_hash, read_bytes, sha256_bytes
from catalens.search import copyfeat
from catalens.search.engine import CatalogSearch, image_sources
from catalens.search.neighbours import neighbour_pairs
from catalens.search.tables import DedupFeature


@dataclass
class DedupOptions:
    candidate_cosine: float = 0.75
    neighbours: int = 10
    gate_cosine: float = 0.88
    gate_structure: float = 0.70
    gate_colour: float = 15.0
    min_structure: float = 0.95
    max_colour: float = 12.0
    max_colour_p90: float = 15.0
    strong_cosine: float = 0.95
    strong_min_structure: float = 0.90
    strong_max_colour: float = 25.0

    def validate(self) -> None:
        if not -1.0 <= self.candidate_cosine <= 1.0:
            raise ConfigError("candidate_cosine must be in [-1, 1]")
        if self.neighbours < 1:
            raise ConfigError("neighbours must be at least 1")
        if not -1.0 <= self.min_structure <= 1.0:
            raise ConfigError("min_structure must be in [-1, 1]")
        if min(self.max_colour, self.max_colour_p90, self.strong_max_colour, self.gate_colour) < 0:
            raise ConfigError("colour thresholds must be >= 0")
        if not -1.0 <= self.gate_structure <= 1.0:
            raise ConfigError("gate_structure must be in [-1, 1]")


@dataclass
class DupPair:
    a: str
    b: str
    kind: str  # "exact-pixels" | "same-image" | "near"
    cosine: float | None = None
    structure: float | None = None
    colour: float | None = None
    colour_p90: float | None = None

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
    groups: list[DupGroup]
    options: DedupOptions
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "options": asdict(self.options),
            "stats": self.stats,
            "groups": [g.to_dict() for g in self.groups],
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
def _image_paths(catalog: Any, shas: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    with catalog.db.session() as s:
        for i in range(0, len(shas), 500):
            q = select(ImageRecord.sha256, ImageRecord.stored_path, ImageRecord.source).where(
                ImageRecord.sha256.in_(shas[i : i + 500])
            )
            for sha, stored, src in s.execute(q):
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
    return copyfeat.describe(dec.image)


def ensure_descriptors(catalog: Any, shas: Sequence[str]) -> dict[str, bytes]:
    """Descriptors of ``shas``: stored ones are read, missing ones computed from the image files and stored."""
    want = list(dict.fromkeys(shas))
    have: dict[str, bytes] = {}
    with catalog.db.session() as s:
        for i in range(0, len(want), 500):
            q = select(DedupFeature.image_sha256, DedupFeature.data).where(
                DedupFeature.image_sha256.in_(want[i : i + 500]),
                DedupFeature.version == copyfeat.FEATURE_VERSION,
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
                s.merge(DedupFeature(image_sha256=h, version=copyfeat.FEATURE_VERSION, data=b))
        have.update(new)
    return have


# ---- catalog-wide -------------------------------------------------------------------------------
def _exact_pairs(catalog: Any, searcher: CatalogSearch) -> list[DupPair]:
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


@dataclass
class Verification:
    """Per-pair results of :func:`verify`."""

    ok: np.ndarray  # both descriptors present
    gated: np.ndarray  # passed the cheap gate (was aligned)
    structure: np.ndarray  # ECC correlation when aligned, else the coarse structure
    colour: np.ndarray  # aligned colour distance (75th pct) when aligned, else the coarse colour
    colour_p90: np.ndarray  # aligned colour distance, 90th percentile (999 when not aligned)


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
    idx_ok = np.flatnonzero(ok)
    if len(idx_ok) == 0:
        return Verification(ok, gated, struct, colour, colour90)
    names = list(dict.fromkeys([a_sha[i] for i in idx_ok] + [b_sha[i] for i in idx_ok]))
    row = {h: i for i, h in enumerate(names)}
    thumbs = copyfeat.parse([descs[h] for h in names])
    ia = np.array([row[a_sha[i]] for i in idx_ok], dtype=np.int64)
    ib = np.array([row[b_sha[i]] for i in idx_ok], dtype=np.int64)
    co = copyfeat.coarse(thumbs, ia, ib)
    struct[idx_ok], colour[idx_ok] = co.structure, co.colour
    cos = np.asarray(cosine, dtype=np.float32)[idx_ok]
    go = (cos >= options.gate_cosine) | (
        (co.structure >= options.gate_structure) & (co.colour <= options.gate_colour)
    )
    todo = np.flatnonzero(go)
    gated[idx_ok[todo]] = True

    def run(j: int) -> tuple[float, float, float]:
        return copyfeat.align(thumbs, int(ia[j]), int(ib[j]), int(co.window[j]), bool(co.a_in_b[j]))

    if len(todo):
        with ThreadPoolExecutor(max(1, workers)) as pool:  # OpenCV releases the GIL
            res = list(pool.map(run, todo.tolist(), chunksize=256))
        arr = np.asarray(res, dtype=np.float32).reshape(-1, 3)
        struct[idx_ok[todo]], colour[idx_ok[todo]], colour90[idx_ok[todo]] = arr[:, 0], arr[:, 1], arr[:, 2]
    return Verification(ok, gated, struct, colour, colour90)


def _is_copy(options: DedupOptions, cos: np.ndarray, v: Verification) -> np.ndarray:
    """Aligned pairs on the verified path or the strong path (very high embedding cosine, looser checks)."""
    verified = (
        (cos >= options.candidate_cosine)
        & (v.structure >= options.min_structure)
        & (v.colour <= options.max_colour)
        & (v.colour_p90 <= options.max_colour_p90)
    )
    strong = (
        (cos >= options.strong_cosine)
        & (v.structure >= options.strong_min_structure)
        & (v.colour <= options.strong_max_colour)
    )
    return v.ok & v.gated & (verified | strong)


def find_duplicates(
    catalog: Any,
    searcher: CatalogSearch,
    options: DedupOptions | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    **overrides: Any,
) -> DedupReport:
    """Group exact and near-duplicate images of the whole catalog."""
    opts = options or DedupOptions()
    for key, value in overrides.items():
        if value is not None:
            if not hasattr(opts, key):
                raise ConfigError(f"unknown dedup option {key!r}")
            setattr(opts, key, type(getattr(opts, key))(value))
    opts.validate()
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
    is_copy = _is_copy(opts, np.asarray(cos, dtype=np.float32), ver)
    t4 = time.perf_counter()
    near = [
        DupPair(
            a_sha[i],
            b_sha[i],
            "near",
            float(cos[i]),
            float(ver.structure[i]),
            float(ver.colour[i]),
            float(ver.colour_p90[i]),
        )
        for i in np.flatnonzero(is_copy)
    ]
    groups = build_groups(catalog, searcher, exact + near)
    stats = {
        "images": int(len(searcher.data.positions)),
        "candidate_pairs": int(len(pa)),
        "aligned_pairs": int(ver.gated.sum()),
        "verified_pairs": len(near),
        "exact_pairs": len(exact),
        "groups": len(groups),
        "images_in_groups": sum(len(g.images) for g in groups),
        "seconds": {
            "exact": round(t1 - t0, 3),
            "neighbours": round(t2 - t1, 3),
            "descriptors": round(t3 - t2, 3),
            "verify": round(t4 - t3, 3),  # gate + alignment
            "total": round(time.perf_counter() - t0, 3),
        },
        "index": searcher.index.info().get("kind"),
    }
    return DedupReport(groups, opts, stats)


def build_groups(catalog: Any, searcher: CatalogSearch, pairs: list[DupPair]) -> list[DupGroup]:
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
        kind = "exact" if all(p.kind != "near" for p in ps) else "near"
        near_scores = [p.structure for p in ps if p.kind == "near" and p.structure is not None]
        images = [
            {"image_sha256": h, "source": srcs.get(h), "product_ids": searcher.links.get(h, [])}
            for h in sorted(shas)
        ]
        groups.append(DupGroup(kind, images, ps, min(near_scores) if near_scores else 1.0))
    groups.sort(key=lambda g: (g.kind != "exact", -len(g.images), g.images[0]["image_sha256"]))
    return groups


# ---- one new image ------------------------------------------------------------------------------
def check_image(
    catalog: Any,
    searcher: CatalogSearch,
    path: str | Path,
    options: DedupOptions | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Catalog images that duplicate the image at ``path``; nothing is written except descriptors."""
    from catalens.search.query import embed_image_file

    opts = options or DedupOptions()
    for key, value in overrides.items():
        if value is not None:
            setattr(opts, key, type(getattr(opts, key))(value))
    opts.validate()
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
        (searcher.sha_at[p], s) for p, s in hits.row(0) if s >= opts.candidate_cosine and p in searcher.sha_at
    ]
    cands = [(h, s) for h, s in cands if h not in seen]
    if cands:
        descs = ensure_descriptors(catalog, [h for h, _ in cands])
        descs["__query__"] = copyfeat.describe(dec.image)
        cos = np.array([s for _, s in cands], dtype=np.float32)
        ver = verify(descs, ["__query__"] * len(cands), [h for h, _ in cands], cos, opts)
        is_copy = _is_copy(opts, cos, ver)
        for i, (h, s) in enumerate(cands):
            if is_copy[i]:
                matches.append(
                    {
                        "image_sha256": h,
                        "kind": "near",
                        "cosine": round(float(s), 4),
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
