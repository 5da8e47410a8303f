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
4. **Alignment** (about a millisecond per pair, :func:`catalens.search.copyfeat.compare`): ECC
   affine alignment of the trimmed thumbnails (and of the whole images when the trimmed views do
   not align: a label pasted on the background stops one copy's trim), then per pair: ``structure``
   (correlation at the alignment), the colour of the *product's own cells* (foreground mask: the
   white studio background no longer swamps the Lab check), and the largest blob of disagreeing
   cells (``damage``) with the structure and colour outside it.
5. **Verdicts** (:func:`classify`): ``copy`` (clean, or one pasted-over blob - label, sticker,
   price tag, logo - with the rest identical), ``variant`` (same layout, the product's colour or
   pattern differs), ``reshoot`` (same-looking product in another shot), or nothing.
6. **Groups**: union-find over exact pairs and copies (and re-shoots with ``include_reshoots``);
   variant pairs form ``families``, reported apart: a colour variant is a legitimate listing.

Default thresholds (:class:`DedupOptions`) were chosen on the ``dev`` half of
``bench/search_dedup_lockbox.py`` (products split by id; the ``lockbox`` half is reported once in
bench/RESULTS.md, "dedup: copies, re-shoots and variant families"). The re-shoot thresholds were
not measured (no natural re-shoots in the data).
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
    gate_cosine: float = 0.80
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

    def validate(self) -> None:
        if not -1.0 <= self.candidate_cosine <= 1.0:
            raise ConfigError("candidate_cosine must be in [-1, 1]")
        if self.neighbours < 1:
            raise ConfigError("neighbours must be at least 1")
        for name in ("min_structure", "gate_structure", "min_structure_out", "variant_structure"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [-1, 1]")
        colours = (self.max_colour, self.max_colour_p90, self.max_colour_out, self.gate_colour, self.reshoot_colour)
        if min(colours) < 0:
            raise ConfigError("colour thresholds must be >= 0")
        if not 0.0 <= self.max_damage <= 1.0:
            raise ConfigError("max_damage must be in [0, 1]")


@dataclass
class DupPair:
    a: str
    b: str
    kind: str  # "exact-pixels" | "same-image" | "near" (a copy) | "reshoot" | "variant"
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
    scores: np.ndarray  # (n, len(copyfeat.SCORE_FIELDS)) every aligned score; NaN when not aligned

    def score(self, name: str) -> np.ndarray:
        return self.scores[:, copyfeat.SCORE_FIELDS.index(name)]


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
    scores = np.full((n, len(copyfeat.SCORE_FIELDS)), np.nan, dtype=np.float32)
    idx_ok = np.flatnonzero(ok)
    if len(idx_ok) == 0:
        return Verification(ok, gated, struct, colour, colour90, scores)
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

    def run(j: int) -> tuple[float, ...]:
        return copyfeat.compare(thumbs, int(ia[j]), int(ib[j]), int(co.window[j]), bool(co.a_in_b[j])).as_tuple()

    if len(todo):
        with ThreadPoolExecutor(max(1, workers)) as pool:  # OpenCV releases the GIL
            res = list(pool.map(run, todo.tolist(), chunksize=256))
        arr = np.asarray(res, dtype=np.float32).reshape(-1, len(copyfeat.SCORE_FIELDS))
        scores[idx_ok[todo]] = arr
        struct[idx_ok[todo]], colour[idx_ok[todo]], colour90[idx_ok[todo]] = arr[:, 0], arr[:, 1], arr[:, 2]
    return Verification(ok, gated, struct, colour, colour90, scores)


VERDICTS = ("copy", "reshoot", "variant", "")


def classify(options: DedupOptions, cos: np.ndarray, v: Verification) -> np.ndarray:
    """One verdict per pair: "copy", "reshoot", "variant" or "" (unrelated or not aligned).

    * copy, clean: ``structure >= min_structure`` and the product's colour (75th / 90th
      percentile of the Lab distance over its foreground cells) <= ``max_colour`` / ``max_colour_p90``;
    * copy, pasted over: the disagreeing cells form one blob of at most ``max_damage`` of the frame
      and, outside it, ``structure_out >= min_structure_out`` and ``colour_out <= max_colour_out``;
    * variant: not a copy, ``structure_out >= variant_structure`` (same template or shot layout) -
      the colour or pattern of the product differs;
    * reshoot: neither, ``cosine >= reshoot_cosine`` and the product's colour (75th percentile)
      <= ``reshoot_colour``: the same-looking product in another photo.
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
    copy = live & (clean | pasted)
    variant = live & ~copy & (sc("structure_out", -1) >= options.variant_structure)
    cosv = np.nan_to_num(np.asarray(cos, dtype=np.float32), nan=-1.0)
    reshoot = (
        live & ~copy & ~variant & (cosv >= options.reshoot_cosine) & (sc("fg_colour", 999) <= options.reshoot_colour)
    )
    out[copy], out[variant], out[reshoot] = "copy", "variant", "reshoot"
    return out


def _pair(a: str, b: str, kind: str, cos: float, v: Verification, i: int) -> DupPair:
    return DupPair(a, b, kind, cos, float(v.structure[i]), float(v.colour[i]), float(v.colour_p90[i]))


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
    verdict = classify(opts, np.asarray(cos, dtype=np.float32), ver)
    t4 = time.perf_counter()
    dup_kinds = {"copy", "reshoot"} if opts.include_reshoots else {"copy"}
    near = [
        _pair(a_sha[i], b_sha[i], "near" if verdict[i] == "copy" else "reshoot", float(cos[i]), ver, i)
        for i in range(len(verdict))
        if verdict[i] in dup_kinds
    ]
    variants = [_pair(a_sha[i], b_sha[i], "variant", float(cos[i]), ver, i) for i in np.flatnonzero(verdict == "variant")]
    groups = build_groups(catalog, searcher, exact + near)
    families = build_groups(catalog, searcher, variants, kind="variant")
    stats = {
        "images": int(len(searcher.data.positions)),
        "candidate_pairs": int(len(pa)),
        "aligned_pairs": int(ver.gated.sum()),
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
            "total": round(time.perf_counter() - t0, 3),
        },
        "index": searcher.index.info().get("kind"),
    }
    return DedupReport(groups, opts, stats, families)


def build_groups(
    catalog: Any, searcher: CatalogSearch, pairs: list[DupPair], kind: str | None = None
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
            p.structure for p in ps if p.kind not in ("exact-pixels", "same-image") and p.structure is not None
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
        verdict = classify(opts, cos, ver)
        dup_kinds = {"copy", "reshoot"} if opts.include_reshoots else {"copy"}
        for i, (h, s) in enumerate(cands):
            if verdict[i] in dup_kinds:
                matches.append(
                    {
                        "image_sha256": h,
                        "kind": "near" if verdict[i] == "copy" else "reshoot",
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
