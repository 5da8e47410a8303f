"""Dedup at catalog scale, given the embeddings: neighbour search + gate + alignment on N images.

    python bench/search_dedup_scale.py --n 100000 [--copies 0.02] [--workers 2]

Vectors: the catalog-shaped generator of ``bench/search_index.py`` (products grown from the
real myntra-dev embeddings, 1-4 variants each). Descriptors are real copy descriptors of the
myntra-dev photos, assigned so that neighbours look like a real catalog's neighbours:

* each product gets a random photo *of its parent's articleType* (so neighbouring products are
  look-alikes of the same kind, often on the same studio layout), mirrored at random;
* its variants are colour variants (the product photo with the product cells given another
  CIELAB chroma and lightness, see :func:`_recolour`: same structure, another colour - the hard
  negative that must be aligned) or re-shoots (another photo of the same kind), half each;
* ``--copies`` of the images get a planted copy (its vector = the source + noise, cosine about
  0.97; its descriptor = the source's, or the source's thumbnails cropped by 3-8% per axis).

Prints one JSON line: counts per stage, wall and CPU seconds per stage, the load average (the
box is shared: wall times are noisy, CPU seconds much less so), the recall of the planted
copies, the accepted colour variants (false copies), and the per-image cost of the copy
descriptor (decode + describe, and describe alone on an already decoded image, i.e. the cost
if it were computed at ingest), which is reported separately from the dedup run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pickle
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_index import BENCH_HOME, realistic_vectors  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "myntra-dev"


class Clock:
    """Wall and process-CPU seconds of named stages."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._t: tuple[float, float] = (0.0, 0.0)

    def start(self) -> None:
        self._t = (time.perf_counter(), time.process_time())

    def stop(self, name: str) -> None:
        self.wall[name] = round(time.perf_counter() - self._t[0], 2)
        self.cpu[name] = round(time.process_time() - self._t[1], 2)
        print(f"{name}: wall {self.wall[name]} s, cpu {self.cpu[name]} s", file=sys.stderr, flush=True)


def photo_pool(cache: Path) -> dict[str, Any]:
    """Descriptors of every myntra-dev photo + per-image timings (decode, describe)."""
    from catalens.imageio import decode_image, read_bytes
    from catalens.search import copy_descriptor

    if cache.exists():
        return pickle.loads(cache.read_bytes())
    rows = list(csv.DictReader(open(DATA / "labels.csv")))
    files, types, plain = [], [], []
    t_decode = t_describe = 0.0
    for r in rows:
        f = DATA / r["image"]
        t0 = time.process_time()
        dec = decode_image(read_bytes(f), str(f), draft_to=160)
        t1 = time.process_time()
        plain.append(copy_descriptor.describe(dec.image))
        t_describe += time.process_time() - t1
        t_decode += t1 - t0
        files.append(str(f))
        types.append(r["articleType"])
    # a full-resolution photo: the describe cost grows with the decoded size (draft + thumbnail)
    big = sorted((DATA.parent / "myntra-fullres-dev" / "images").glob("*.jpg"))[:50]
    t0 = time.process_time()
    for f in big:
        copy_descriptor.describe(decode_image(read_bytes(f), str(f), draft_to=160).image)
    t_big = (time.process_time() - t0) / max(1, len(big))
    pool = {
        "files": files,
        "types": types,
        "plain": plain,
        "ms_decode": 1000 * t_decode / len(rows),
        "ms_describe": 1000 * t_describe / len(rows),
        "ms_decode_describe_fullres": 1000 * t_big,
    }
    cache.write_bytes(pickle.dumps(pool))
    return pool


def _mirror(blob: bytes) -> bytes:
    from catalens.search import copy_descriptor

    t = copy_descriptor.parse([blob])
    return t.gray[0][:, ::-1].tobytes() + t.lab[0][:, ::-1].tobytes()


def _recolour(blob: bytes, rng: np.random.Generator) -> bytes:
    """The descriptor of the same photo with the product in another colour (structure kept).

    Product cells (not the near-white background) get a new chroma (a random CIELAB a/b offset
    of 20-45) and a lightness shift of 8-30 (up or down); the grey thumbnail follows the
    lightness shift, so a dark garment made light changes the grey image too, as in a real
    colour variant.
    """
    from catalens.search import copy_descriptor

    t = copy_descriptor.parse([blob])
    lab = t.lab[0].astype(np.float32)
    gray = t.gray[0].astype(np.float32)
    dl = float(rng.uniform(8, 30)) * (1 if rng.random() < 0.5 else -1) * 2.55  # OpenCV L is 0-255
    ang = rng.uniform(0, 2 * np.pi)
    da, db = rng.uniform(20, 45) * np.cos(ang), rng.uniform(20, 45) * np.sin(ang)
    chroma = np.hypot(lab[..., 1] - 128, lab[..., 2] - 128)
    mask = ~((lab[..., 0] > 235) & (chroma < 6))
    lab[mask, 0] += dl
    lab[mask, 1] += da
    lab[mask, 2] += db
    gmask = gray < 235
    gray[gmask] += dl
    return (
        np.clip(np.round(gray), 0, 255).astype(np.uint8).tobytes()
        + np.clip(np.round(lab), 0, 255).astype(np.uint8).tobytes()
    )


def _crop(blob: bytes, rng: np.random.Generator) -> bytes:
    """The descriptor of a copy cropped by 3-8% on one side in x and y (emulated on the thumbnails)."""
    import cv2

    from catalens.search import copy_descriptor

    t = copy_descriptor.parse([blob])
    fx, fy = rng.uniform(0.03, 0.08, 2)
    left, top = rng.random() < 0.5, rng.random() < 0.5
    out = []
    for img in (t.gray[0], t.lab[0]):
        s = img.shape[0]
        x0, y0 = s * fx if left else 0.0, s * fy if top else 0.0
        # the same crop on both thumbnails: an affine resample of the window onto the full side
        m = np.array([[1 - fx, 0, x0], [0, 1 - fy, y0]], np.float32)
        out.append(
            cv2.warpAffine(
                np.ascontiguousarray(img),
                m,
                (s, s),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
        )
    return out[0].tobytes() + out[1].tobytes()


def parent_photos() -> list[str]:
    """Source file of every row of the bench home's vector file (read-only SQLite)."""
    con = sqlite3.connect(f"file:{BENCH_HOME / 'catalog.db'}?mode=ro", uri=True)
    rows = con.execute(
        "select e.position, i.source from embeddings e join images i on i.sha256 = e.image_sha256"
    ).fetchall()
    con.close()
    out = [""] * (max(p for p, _ in rows) + 1)
    for p, src in rows:
        out[p] = src
    return out


def build(n: int, copies: float, seed: int = 5) -> dict[str, Any]:
    """Vectors, descriptors and planted truth (see the module docstring)."""
    pool = photo_pool(Path(tempfile.gettempdir()) / "catalens-dedup-scale-pool-v1.pkl")
    rng = np.random.default_rng(seed)
    n_copy = int(round(n * copies))
    x, parent, product = realistic_vectors(n - n_copy, seed=seed, with_parents=True)
    type_of_file = dict(zip(pool["files"], pool["types"], strict=True))
    by_type: dict[str, list[int]] = {}
    for i, t in enumerate(pool["types"]):
        by_type.setdefault(t, []).append(i)
    src = parent_photos()
    descs: list[bytes] = []
    kind = np.zeros(n, dtype=np.int8)  # 0 product photo, 1 colour variant, 2 re-shoot, 3 planted copy
    base_of = np.full(n, -1, dtype=np.int64)  # colour variant: the vector whose photo it recolours
    prod_photo: dict[int, bytes] = {}
    first_of: dict[int, int] = {}
    for i in range(n - n_copy):
        p = int(product[i])
        cands = by_type.get(type_of_file.get(src[int(parent[i])], ""), None) or range(len(pool["plain"]))
        if p not in prod_photo:
            j = int(rng.choice(cands))
            blob = pool["plain"][j]
            prod_photo[p] = _mirror(blob) if rng.random() < 0.5 else blob
            first_of[p] = i
            descs.append(prod_photo[p])
        elif rng.random() < 0.5:
            descs.append(_recolour(prod_photo[p], rng))
            kind[i], base_of[i] = 1, first_of[p]
        else:
            descs.append(pool["plain"][int(rng.choice(cands))])
            kind[i] = 2
    # planted copies of random images
    srcs = rng.choice(n - n_copy, n_copy, replace=False)
    noise = rng.standard_normal((n_copy, x.shape[1])).astype(np.float32)
    noise *= (0.25 / np.linalg.norm(noise, axis=1, keepdims=True)).astype(np.float32)
    xc = x[srcs] + noise
    xc /= np.linalg.norm(xc, axis=1, keepdims=True)
    x = np.concatenate([x, xc])
    truth = set()
    for k, s in enumerate(srcs):
        i = n - n_copy + k
        blob = descs[int(s)]
        descs.append(blob if rng.random() < 0.5 else _crop(blob, rng))  # re-encoded or cropped copy
        kind[i] = 3
        truth.add((int(s), i))
    return {"x": x, "descs": descs, "kind": kind, "base_of": base_of, "truth": truth, "pool": pool}


def pair_recall(x: np.ndarray, a: np.ndarray, b: np.ndarray, k: int, min_cos: float) -> dict[str, float]:
    """Share of the exact k-nearest pairs (cosine >= ``min_cos``; and >= 0.9) of 500 sampled images found."""
    rng = np.random.default_rng(0)
    qs = rng.choice(len(x), min(500, len(x)), replace=False)
    sims = x[qs] @ x.T
    sims[np.arange(len(qs)), qs] = -1
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    exact = {
        (int(q), int(t)): float(sr[t])
        for q, row, sr in zip(qs, top, sims, strict=True)
        for t in row
        if sr[t] >= min_cos
    }
    found = set(zip(a.tolist(), b.tolist(), strict=True))
    hits = {e: (min(e), max(e)) in found for e in exact}
    close = [h for e, h in hits.items() if exact[e] >= 0.9]
    return {
        "all": round(sum(hits.values()) / max(1, len(hits)), 4),
        "cos_ge_0.9": round(sum(close) / max(1, len(close)), 4),
    }


def run(n: int, copies: float, workers: int) -> dict[str, Any]:
    from catalens.search import dedup
    from catalens.search.neighbours import neighbour_pairs

    data = build(n, copies)
    print(f"built {n} vectors and descriptors", file=sys.stderr, flush=True)
    x, descs = data["x"], {str(i): b for i, b in enumerate(data["descs"])}
    opts = dedup.DedupOptions()
    clock = Clock()
    clock.start()
    knn_stages: dict[str, float] = {}
    a, b, cos = neighbour_pairs(
        x, opts.neighbours, opts.candidate_cosine, threads=workers, timings=knn_stages
    )
    clock.stop("neighbours")
    recall = pair_recall(x, a, b, opts.neighbours, opts.candidate_cosine)
    a_sha = [str(int(i)) for i in a]
    b_sha = [str(int(i)) for i in b]
    clock.start()
    ver = dedup.verify(descs, a_sha, b_sha, cos, opts, workers=workers)
    is_copy = dedup._is_copy(opts, np.asarray(cos, dtype=np.float32), ver)
    clock.stop("gate_and_align")
    clock.start()
    uf = dedup._UnionFind()
    for i in np.flatnonzero(is_copy):
        uf.union(a_sha[i], b_sha[i])
    groups = len({uf.find(h) for h in list(uf.parent)})
    clock.stop("groups")
    found = {(int(p), int(q)) for p, q, c in zip(a, b, is_copy, strict=True) if c}
    truth = data["truth"]
    cand = set(zip(a.tolist(), b.tolist(), strict=True))
    kind = data["kind"]
    colour_var = {
        (min(i, int(data["base_of"][i])), max(i, int(data["base_of"][i]))) for i in np.flatnonzero(kind == 1)
    }
    pool = data["pool"]
    total_wall = sum(clock.wall.values())
    per_image_ms = pool["ms_decode"] + pool["ms_describe"]
    return {
        "bench": "catalens dedup scale (given the embeddings; descriptors reported separately)",
        "n": n,
        "workers": workers,
        "load_avg_1m": round(os.getloadavg()[0], 1),
        "planted_copy_pairs": len(truth),
        "candidate_pairs": int(len(a)),
        "aligned_pairs": int(ver.gated.sum()),
        "copy_pairs": int(is_copy.sum()),
        "groups": groups,
        "planted_copies_in_candidates": round(len(truth & cand) / max(1, len(truth)), 4),
        "planted_copies_found": round(len(truth & found) / max(1, len(truth)), 4),
        "colour_variant_pairs_in_candidates": len(colour_var & cand),
        "colour_variants_accepted_as_copies": len(colour_var & found),
        "candidate_pair_recall_vs_exact_500_queries": recall,
        "seconds_wall": clock.wall,
        "seconds_wall_neighbour_stages": knn_stages,
        "seconds_cpu": clock.cpu,
        "seconds_wall_total": round(total_wall, 1),
        "descriptor_ms_per_image_decode_plus_describe_one_thread": round(per_image_ms, 2),
        "descriptor_ms_per_image_describe_only_one_thread": round(pool["ms_describe"], 2),
        "descriptor_ms_per_fullres_image_one_thread": round(pool["ms_decode_describe_fullres"], 2),
        "descriptor_pass_seconds_estimate": round(per_image_ms * n / 1000 / workers, 1),
        "descriptor_at_ingest_seconds_estimate": round(pool["ms_describe"] * n / 1000 / workers, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--copies", type=float, default=0.02, help="fraction of images that are planted copies")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    import cv2

    cv2.setNumThreads(1)
    print(json.dumps(run(args.n, args.copies, args.workers)), flush=True)


if __name__ == "__main__":
    main()
