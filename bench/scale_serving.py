"""Scale-out serving: a real Milvus server against FAISS exact search, the server's start time, and
cross-worker visibility of ``catalens serve --workers 2``. Prints one JSON object.

    python bench/scale_serving.py --n 300 --queries 50 --runs 10

* ``milvus``: a catalog of the first ``--n`` myntra-dev images (EfficientNet-Lite0) is searched by
  product id (more like this, k=10) through FAISS exact (the default) and through a throw-away
  Milvus 2.3 standalone server (``tests/services/milvusserver.py``; ``--milvus-uri`` to use a running
  one): share of queries whose ranked products are identical, largest score difference, and query
  p50/p95 of ``Catalog.search_product`` for each. ``start_s``: launcher start to the first answer,
  with the binaries already unpacked in the folder (``first_start_s``: a fresh folder, unpacking
  included).
* ``visibility``: ``catalens serve --workers 2`` over a catalog of 30 of those images; ``--runs``
  times, a new image is uploaded as a new product through one worker and searched (by that image,
  top-1) through the other every 50 ms (``tests/services/serving.py``): seconds from the upload's job
  reporting done, and from the upload, to the product being found.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from services import milvusserver  # noqa: E402
from services.serving import Server, measure_visibility  # noqa: E402

from catalens.core import Catalog  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "myntra-dev"


def manifest(rows: list[dict[str, str]], out: Path) -> Path:
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "id", "title", "articleType"])
        w.writeheader()
        for r in rows:
            w.writerow(
                {
                    "image": str(DATA / r["image"]),
                    "id": r["id"],
                    "title": r["productDisplayName"],
                    "articleType": r["articleType"],
                }
            )
    return out


def timed_answers(cat: Catalog, ids: list[str]) -> tuple[list[list[tuple[str | None, float]]], list[float]]:
    cat.search_product(ids[0], k=10)  # open and sync the index first
    answers, times = [], []
    for pid in ids:
        t0 = time.perf_counter()
        res = cat.search_product(pid, k=10)
        times.append(time.perf_counter() - t0)
        answers.append([(r.product_id, r.score) for r in res])
    return answers, times


def ms(xs: list[float], q: float) -> float:
    return (
        round(1000 * statistics.quantiles(xs, n=100)[int(q) - 1], 2)
        if len(xs) > 1
        else round(1000 * xs[0], 2)
    )


def bench_milvus(
    rows: list[dict[str, str]], work: Path, n_queries: int, uri: str | None
) -> dict[str, object]:
    home = work / "home-milvus"
    with Catalog.open(home) as cat:
        cat.ingest(manifest(rows, work / "m.csv"), id_col="id", text_col="title")
    ids = [r["id"] for r in rows[:: max(1, len(rows) // n_queries)]][:n_queries]
    out: dict[str, object] = {"n_images": len(rows), "queries": len(ids), "k": 10}
    folder = work / "milvus-server"
    started_here = uri is None
    if started_here:
        t0 = time.perf_counter()
        milvusserver.start(folder)
        out["first_start_s"] = round(time.perf_counter() - t0, 2)
        milvusserver.stop(folder)
        t0 = time.perf_counter()
        uri = milvusserver.start(folder)
        out["start_s"] = round(time.perf_counter() - t0, 2)
    try:
        with Catalog.open(home) as cat:
            faiss, t_faiss = timed_answers(cat, ids)
        db_uri = f"{uri}/bench_{int(time.time())}"
        with Catalog.open(home, index_uri=db_uri) as cat:
            t0 = time.perf_counter()
            cat.sync_index()
            out["milvus_build_s"] = round(time.perf_counter() - t0, 2)
            milvus, t_milvus = timed_answers(cat, ids)
    finally:
        if started_here:
            milvusserver.stop(folder)
    same = sum([p for p, _ in a] == [p for p, _ in b] for a, b in zip(milvus, faiss, strict=True))
    diff = max(
        abs(x[1] - y[1]) for a, b in zip(milvus, faiss, strict=True) for x, y in zip(a, b, strict=False)
    )
    out |= {
        "identical_rankings": f"{same}/{len(ids)}",
        "max_score_diff": float(f"{diff:.2e}"),
        "faiss_exact_p50_ms": ms(t_faiss, 50),
        "faiss_exact_p95_ms": ms(t_faiss, 95),
        "milvus_server_p50_ms": ms(t_milvus, 50),
        "milvus_server_p95_ms": ms(t_milvus, 95),
    }
    return out


def bench_visibility(rows: list[dict[str, str]], work: Path, runs: int) -> dict[str, object]:
    from catalens.api.keys import create_key

    home = work / "home-serve"
    with Catalog.open(home) as cat:
        cat.ingest(manifest(rows[:30], work / "s.csv"), id_col="id", text_col="title")
        key, _ = create_key(cat.db, "write", "bench")
    new = []
    for r in rows[30 : 30 + runs]:
        dst = work / "new" / f"{r['id']}.png"
        dst.parent.mkdir(exist_ok=True)
        from PIL import Image

        Image.open(DATA / r["image"]).convert("RGB").save(dst)
        new.append(dst)
    server = Server(home, 2)
    try:
        server.wait_ready(2)
        vis = measure_visibility(server.base, new, key, timeout=60)
    finally:
        server.stop()
    return {"workers": 2, "catalog_images": 30, "refresh_s": 1.0} | vis.summary()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--milvus-uri", default=None, help="a running Milvus server (default: start one)")
    ap.add_argument("--skip", choices=["milvus", "visibility"], action="append", default=[])
    a = ap.parse_args()
    with open(DATA / "labels.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if (DATA / r["image"]).exists()][: max(a.n, 30 + a.runs)]
    work = Path(tempfile.mkdtemp(prefix="catalens-scale-serving-"))
    result: dict[str, object] = {"machine_cores": __import__("os").cpu_count()}
    try:
        if "milvus" not in a.skip:
            result["milvus"] = bench_milvus(rows[: a.n], work, a.queries, a.milvus_uri)
        if "visibility" not in a.skip:
            result["visibility"] = bench_visibility(rows, work, a.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
