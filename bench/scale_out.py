"""Scale-out benchmarks, side by side in one run (issue 16). Prints one JSON object per part.

    python bench/scale_out.py writers [--images 320] [--backends sqlite,postgresql]

``writers``: 4 ``catalens ingest`` processes ingest overlapping manifests of real catalog photos
(myntra-dev) into ONE home while a ``catalens serve`` process on the same home takes uploads of
more photos. Measured per catalog backend (SQLite with file vectors; PostgreSQL with vectors in
the database): wall time and images/s for all unique images, against one process ingesting the
same images alone (the ratio), and - the point - every stored vector compared with a fresh
encoding of its own image (mismatches = cosine < 0.9999; must be 0) and exact counts (images,
embedding rows, product links, no failed writer).

PostgreSQL: ``--pg-url`` (an admin URL; a database is created per run) or, without it, a
throw-away cluster is started with the tests' helper (Debian's postgresql package).
The Ray overhead and catalog-backend latency parts live in ``bench/scale_ray.py`` and
``bench/scale_backends.py``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CATALENS_SHARED_DATA", ROOT.parent / "shared" / "data")) / "myntra-dev"
MODEL = "efficientnet-lite0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _photos(n: int) -> list[tuple[str, Path, str]]:
    """(id, path, title) of the first ``n`` readable myntra-dev rows, in file order."""
    out = []
    with open(DATA / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            path = DATA / row.get("image", row.get("filename", f"{row['id']}.jpg"))
            if not path.exists():
                path = DATA / "images" / f"{row['id']}.jpg"
            if path.exists():
                out.append((row["id"], path, row.get("productDisplayName", "")))
            if len(out) == n:
                break
    return out


def _manifest(path: Path, rows: list[tuple[str, Path, str]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "id", "title"])
        for pid, img, title in rows:
            w.writerow([str(img), pid, title])
    return path


def _ingest_args(manifest: Path) -> tuple[str, ...]:
    return ("ingest", str(manifest), "--id-col", "id", "--text-col", "title", "--json", "-q")


def _cli_args(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "catalens.cli", "--home", str(home), *args]


def _cli(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _cli_args(home, *args),
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def _start_server(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, str]:
    key = json.loads(_cli(home, env, "keys", "create", "--role", "write", "--json").stdout)["key"]
    port = _free_port()
    log = open(home.parent / f"{home.name}-server.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "catalens.cli", "--home", str(home), "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/api/v1/health", timeout=2).status_code < 500:
                return proc, base, key
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("catalens serve did not answer within 120 s")


def _upload_all(base: str, key: str, rows: list[tuple[str, Path, str]], out: dict[str, object]) -> None:
    """Upload ``rows`` one file a request (one product each) and wait for every server job."""
    import httpx

    try:
        _uploads(base, key, rows, out)
    except httpx.HTTPError as exc:
        out.setdefault("errors", []).append(f"{type(exc).__name__}: {exc}")  # type: ignore[union-attr]


def _uploads(base: str, key: str, rows: list[tuple[str, Path, str]], out: dict[str, object]) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    jobs, errors = [], []
    with httpx.Client(timeout=120, headers=headers) as client:
        for pid, path, title in rows:
            files = [("files", (path.name, path.read_bytes(), "image/jpeg"))]
            r = client.post(
                f"{base}/api/v1/ingest/upload", files=files, data={"product_id": pid, "title": title}
            )
            if r.status_code != 202:
                errors.append(f"{pid}: {r.status_code} {r.text[:200]}")
                continue
            jobs.append(r.json()["id"])
        for job in jobs:
            while True:
                status = client.get(f"{base}/api/v1/jobs/{job}").json()
                if status["status"] not in ("queued", "running"):
                    if status["status"] != "done":
                        errors.append(f"job {job}: {status['status']}")
                    break
                time.sleep(0.2)
    out.update(jobs=len(jobs), errors=errors)


def _verify(home: Path, db_url: str | None, photos: list[tuple[str, Path, str]]) -> dict[str, object]:
    """Counts and every stored vector against a fresh encoding of its image."""
    from catalens import Catalog
    from catalens.imageio import open_image, sha256_bytes
    from catalens.vectors import l2_normalize

    sha_of = {p: sha256_bytes(p.read_bytes()) for _, p, _ in photos}
    by_sha = {sha_of[p]: (pid, p) for pid, p, _ in photos}  # byte-identical photos are stored once
    with Catalog.open(home, db_url=db_url) as cat:
        info = cat.info()
        hashes, vecs = cat.vectors(MODEL)
        enc = cat.encoder(MODEL)
        links = cat.db.product_links()
        rec = [m for m in cat.db.models() if m.model_id == MODEL][-1]
        positions = [p for _, p in cat.db.embedding_positions(rec.model_id, rec.version)]
    fresh = []
    for i in range(0, len(hashes), 32):
        chunk = hashes[i : i + 32]
        x = np.stack([enc.preprocess(open_image(by_sha[h][1], draft_to=512).image) for h in chunk])
        fresh.append(l2_normalize(enc.encode(x.astype(np.float32))))
    cos = np.sum(np.concatenate(fresh) * vecs, axis=1) if hashes else np.zeros(0)
    sizes = _pg_sizes(db_url, len(hashes)) if db_url else {}
    expected_links = {(pid, sha_of[p]) for pid, p, _ in photos}
    return {
        "images_ok": int(info["images"].get("ok", 0)),
        "images_failed": int(info["images"].get("failed", 0)),
        "embeddings": len(hashes),
        "distinct_positions": len(set(positions)),
        "expected": len(by_sha),
        "links_exact": set(links) == expected_links,
        "vector_mismatches": int((cos < 0.9999).sum()),
        "min_cosine": round(float(cos.min()), 6) if len(cos) else None,
        "counts_exact": len(hashes) == len(by_sha) == int(info["images"].get("ok", 0)),
        **sizes,
    }


def _pg_sizes(db_url: str, n_images: int) -> dict[str, object]:
    """Bytes per image of the main PostgreSQL tables (with indexes and TOAST), measured."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    tables = ["embedding_vectors", "embeddings", "images", "products", "product_images"]
    with engine.connect() as conn:
        sizes = {
            t: int(conn.execute(text(f"SELECT pg_total_relation_size('{t}')")).scalar() or 0) for t in tables
        }
        total = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar() or 0)
    engine.dispose()
    per = {t: round(b / max(1, n_images)) for t, b in sizes.items()}
    return {"pg_bytes_per_image": per, "pg_database_bytes": total}


def _backend_env(backend: str, admin_pg: str | None) -> tuple[dict[str, str], str | None]:
    """Environment for catalens processes on a fresh catalog of ``backend`` (a new PostgreSQL
    database per call), and that database's URL."""
    env = {**os.environ, "CATALENS_MODEL": MODEL}
    env.pop("CATALENS_DB_URL", None)
    if backend != "postgresql":
        return env, None
    assert admin_pg is not None
    sys.path.insert(0, str(ROOT / "tests"))
    from services.postgres import create_database

    env["CATALENS_DB_URL"] = create_database(admin_pg, f"catalens_bench_{uuid.uuid4().hex[:10]}")
    return env, env["CATALENS_DB_URL"]


def _one_backend(
    backend: str, photos: list[tuple[str, Path, str]], work: Path, admin_pg: str | None
) -> dict[str, object]:
    env, db_url = _backend_env(backend, admin_pg)
    n_uploads = max(8, len(photos) // 8)
    batch_rows, upload_rows = photos[:-n_uploads], photos[-n_uploads:]
    # 4 overlapping windows over the batch rows: every row in 2 of them
    q = len(batch_rows) // 4
    windows = [(batch_rows * 2)[w * q : w * q + 2 * q] for w in range(4)]
    home = work / f"{backend}-home"
    manifests = [_manifest(work / f"{backend}-w{w}.csv", rows) for w, rows in enumerate(windows)]
    server, base, key = _start_server(home, env)
    try:
        t0 = time.perf_counter()
        up: dict[str, object] = {}
        uploader = threading.Thread(target=_upload_all, args=(base, key, upload_rows, up))
        uploader.start()
        procs = [
            subprocess.Popen(
                _cli_args(home, *_ingest_args(m)),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for m in manifests
        ]
        reports, writer_errors = [], []
        for p in procs:
            out, errs = p.communicate(timeout=1800)
            if p.returncode != 0:
                writer_errors.append(errs[-500:])
            else:
                reports.append(json.loads(out))
        writers_wall = time.perf_counter() - t0
        uploader.join()
        wall = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)
    if up.get("errors"):
        log_tail = (home.parent / f"{home.name}-server.log").read_text(errors="replace")[-3000:]
        print(log_tail, file=sys.stderr)
    check = _verify(home, db_url, photos)
    # the same images by one process alone, into a fresh catalog on the same backend
    solo_env, _ = _backend_env(backend, admin_pg)
    all_manifest = _manifest(work / f"{backend}-all.csv", photos)
    t1 = time.perf_counter()
    solo = _cli(work / f"{backend}-solo", solo_env, *_ingest_args(all_manifest))
    solo_wall = time.perf_counter() - t1
    unique = int(check["expected"])  # distinct image bytes
    return {
        "backend": backend,
        "vector_store": "file" if backend == "sqlite" else "db",
        "writers": len(manifests),
        "server_uploads": len(upload_rows),
        "unique_images": unique,
        "items_submitted": sum(len(w) for w in windows) + len(upload_rows),
        "wall_s": round(wall, 2),
        "writers_done_s": round(writers_wall, 2),
        "images_per_s": round(unique / wall, 1),
        "solo_wall_s": round(solo_wall, 2),
        "solo_images_per_s": round(unique / solo_wall, 1),
        "solo_ok": solo.returncode == 0,
        "ratio_vs_solo": round(solo_wall / wall, 3),
        "writer_errors": writer_errors,
        "upload": up,
        "embedded_per_writer": [r["embedded"] for r in reports],
        **check,
    }


def writers(args: argparse.Namespace) -> dict[str, object]:
    photos = _photos(args.images)
    work = Path(tempfile.mkdtemp(prefix="catalens-scale-"))
    work.chmod(0o711)  # a PostgreSQL cluster under it runs as the postgres user
    pg_cluster: Path | None = None
    admin_pg = args.pg_url
    try:
        results = []
        for backend in args.backends.split(","):
            if backend == "postgresql" and admin_pg is None:
                sys.path.insert(0, str(ROOT / "tests"))
                from services import pgserver

                pg_cluster = work / "pg"
                admin_pg = pgserver.start(pg_cluster, durable=True)
            results.append(_one_backend(backend, photos, work, admin_pg))
            print(json.dumps({"part": "writers", **results[-1]}), flush=True)
        return {"part": "writers", "results": results}
    finally:
        if pg_cluster is not None:
            from services import pgserver

            pgserver.stop(pg_cluster)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="part", required=True)
    w = sub.add_parser("writers", help="concurrent writers + server uploads, vectors verified")
    w.add_argument("--images", type=int, default=320)
    w.add_argument("--backends", default="sqlite,postgresql")
    w.add_argument("--pg-url", default=None, help="admin URL of a PostgreSQL server (else one is started)")
    args = ap.parse_args()
    load = os.getloadavg()
    print(json.dumps({"load_avg": [round(x, 2) for x in load], "cpus": os.cpu_count()}), flush=True)
    if args.part == "writers":
        summary = writers(args)
        ok = all(
            r["vector_mismatches"] == 0 and r["counts_exact"] and not r["writer_errors"]
            for r in summary["results"]
        )
        print(
            json.dumps(
                {
                    "summary": "writers",
                    "all_exact": ok,
                    "median_ratio": statistics.median(r["ratio_vs_solo"] for r in summary["results"]),
                }
            )
        )


if __name__ == "__main__":
    main()
