"""Catalog backends side by side: PostgreSQL against SQLite, in one run, on the same images.

For each backend, in a fresh home (and, on PostgreSQL, a fresh database):
* ingest with embedding: N photos of a manifest with the packaged model (model loaded before the
  clock starts), images/s; run ``--repeats`` times, the median is reported;
* ingest without embedding (``embed=False``: read, hash, decode, pixel hash, one transaction per
  batch), images/s, where the database is a larger share of the work; median of ``--repeats``;
* search by id: ``Catalog.search_product(id, k=10)`` for ``--queries`` product ids drawn with a fixed
  seed, in a newly opened catalog (the first call, which loads the vectors and builds the index,
  is timed apart; an untimed warm-up search in another catalog runs before either backend),
  latency p50/p99 in ms. The searcher reads a product's metadata from the database the first time
  it is needed and caches it, so the slow tail is mostly database reads. The top-10 ids of every
  query must be the same on both backends.

PostgreSQL is a private cluster started with ``tests/services/pgserver.py`` (PostgreSQL's defaults:
fsync and synchronous commit on) unless ``--pg-url`` names a server. SQLite runs as catalens opens
it (WAL, synchronous=NORMAL). Prints one JSON line per measurement and a final ``summary`` line
with the ratios PostgreSQL / SQLite.

    python bench/scale_backends.py --data ../shared/data/myntra-dev --n 300 --queries 200
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "services"))
import pgserver  # noqa: E402  (tests/services/pgserver.py: start/stop a throw-away cluster)

from catalens import Catalog  # noqa: E402

LINES: list[dict[str, Any]] = []


def emit(kind: str, **fields: Any) -> None:
    line = {"kind": kind, **fields, "loadavg_1m": round(os.getloadavg()[0], 2)}
    LINES.append(line)
    print(json.dumps(line), flush=True)


def write_manifest(data: Path, n: int, out: Path) -> list[str]:
    rows = list(csv.DictReader(open(data / "labels.csv", newline="")))[:n]
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "image": str((data / r["image"]).resolve())})
    return [r["id"] for r in rows]


class Backends:
    """Hands out fresh catalog database URLs: SQLite in the home, or a new PostgreSQL database."""

    def __init__(self, pg_admin: str) -> None:
        self.pg_admin = pg_admin
        self.made: list[str] = []

    def url(self, backend: str, home: Path) -> str:
        if backend == "sqlite":
            return f"sqlite:///{(home / 'catalog.db').resolve()}"
        import psycopg

        name = f"bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.pg_admin.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return self.pg_admin.rsplit("/", 1)[0] + "/" + name

    def drop_all(self) -> None:
        import psycopg

        with psycopg.connect(self.pg_admin.replace("+psycopg", ""), autocommit=True) as conn:
            for name in self.made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def ingest_rate(backend: str, dbs: Backends, root: Path, manifest: Path, tag: str) -> dict:
    home = root / f"{backend}-{tag}"
    url = dbs.url(backend, home)
    with Catalog.open(home, db_url=url) as cat:
        cat.encoder()  # model load outside the clock
        t0 = time.perf_counter()
        rep = cat.ingest(manifest, id_col="id", text_col="productDisplayName")
        elapsed = time.perf_counter() - t0
    return {"home": home, "url": url, "seconds": elapsed, "images": rep.new_images, "embedded": rep.embedded}


def ingest_no_embed(backend: str, dbs: Backends, root: Path, manifest: Path, tag: str) -> dict:
    home = root / f"{backend}-noembed-{tag}"
    url = dbs.url(backend, home)
    with Catalog.open(home, db_url=url) as cat:
        t0 = time.perf_counter()
        rep = cat.ingest(manifest, id_col="id", text_col="productDisplayName", embed=False)
        elapsed = time.perf_counter() - t0
    return {"seconds": elapsed, "images": rep.new_images}


def search_latency(home: Path, url: str, ids: list[str], queries: int, seed: int) -> tuple[dict, list]:
    rng = random.Random(seed)
    picks = [rng.choice(ids) for _ in range(queries)]
    with Catalog.open(home, db_url=url) as cat:
        t0 = time.perf_counter()
        cat.search_product(picks[0], k=10)
        first_ms = (time.perf_counter() - t0) * 1e3
        lat, tops = [], []
        for pid in picks:
            t = time.perf_counter()
            hits = cat.search_product(pid, k=10)
            lat.append((time.perf_counter() - t) * 1e3)
            tops.append([h.product_id for h in hits])
    arr = np.array(lat)
    return {
        "first_query_ms": round(first_ms, 1),
        "p50_ms": round(float(np.percentile(arr, 50)), 2),
        "p99_ms": round(float(np.percentile(arr, 99)), 2),
        "mean_ms": round(float(arr.mean()), 2),
        "queries": queries,
    }, tops


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "myntra-dev")
    ap.add_argument("--n", type=int, default=300, help="photos to ingest")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3, help="ingest runs per backend (median reported)")
    ap.add_argument("--pg-url", help="an existing server's admin URL (default: start a private cluster)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="catalens-bench-backends-"))
    os.chmod(work, 0o711)
    cluster = work / "pg"
    started = args.pg_url is None
    try:
        pg_url = args.pg_url or pgserver.start(cluster, durable=True)
        emit(
            "env",
            python=platform.python_version(),
            cpus=os.cpu_count(),
            postgres=pg_url.split("@")[-1],
            postgres_private_cluster=started,
            images=args.n,
            queries=args.queries,
            data=str(args.data),
        )
        manifest = work / "labels.csv"
        ids = write_manifest(args.data, args.n, manifest)
        for row in csv.DictReader(open(manifest)):  # warm the page cache: both read from memory
            Path(row["image"]).read_bytes()
        dbs = Backends(pg_url)
        results: dict[str, dict[str, Any]] = {}
        tops: dict[str, list] = {}
        order = ["sqlite", "postgresql"]
        embed_runs: dict[str, list[float]] = {b: [] for b in order}
        plain_runs: dict[str, list[float]] = {b: [] for b in order}
        last: dict[str, dict] = {}
        for r in range(args.repeats):
            for backend in order if r % 2 == 0 else order[::-1]:  # alternate who goes first
                run = ingest_rate(backend, dbs, work, manifest, f"r{r}")
                assert run["images"] == run["embedded"] == args.n, run
                embed_runs[backend].append(run["images"] / run["seconds"])
                emit("ingest", backend=backend, embed=True, run=r, images=run["images"],
                     seconds=round(run["seconds"], 3), images_per_s=round(embed_runs[backend][-1], 1))  # fmt: skip
                last[backend] = run
                plain = ingest_no_embed(backend, dbs, work, manifest, f"r{r}")
                plain_runs[backend].append(plain["images"] / plain["seconds"])
                emit("ingest", backend=backend, embed=False, run=r, images=plain["images"],
                     seconds=round(plain["seconds"], 3), images_per_s=round(plain_runs[backend][-1], 1))  # fmt: skip
        # one untimed pass first: the process's first search pays one-time imports and warm-up
        search_latency(last[order[0]]["home"], last[order[0]]["url"], ids, 5, args.seed + 1)
        for backend in order:
            lat, tops[backend] = search_latency(
                last[backend]["home"], last[backend]["url"], ids, args.queries, args.seed
            )
            results[backend] = {
                "ingest_embed_images_per_s": round(statistics.median(embed_runs[backend]), 1),
                "ingest_no_embed_images_per_s": round(statistics.median(plain_runs[backend]), 1),
                **{f"search_{k}": v for k, v in lat.items()},
            }
            emit("result", backend=backend, **results[backend])
        same = sum(a == b for a, b in zip(tops["sqlite"], tops["postgresql"], strict=True))
        s, p = results["sqlite"], results["postgresql"]
        emit(
            "summary",
            images=args.n,
            queries=args.queries,
            identical_top10=f"{same}/{args.queries}",
            ratio_pg_over_sqlite={
                "ingest_embed_rate": round(
                    p["ingest_embed_images_per_s"] / s["ingest_embed_images_per_s"], 3
                ),
                "ingest_no_embed_rate": round(
                    p["ingest_no_embed_images_per_s"] / s["ingest_no_embed_images_per_s"], 3
                ),
                "search_p50": round(p["search_p50_ms"] / s["search_p50_ms"], 3),
                "search_p99": round(p["search_p99_ms"] / s["search_p99_ms"], 3),
            },
            sqlite=s,
            postgresql=p,
        )
        dbs.drop_all()
        return 0 if same == args.queries else 1
    finally:
        if started:
            pgserver.stop(cluster)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
