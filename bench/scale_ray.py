"""Ray overhead: ingest + embed on a local Ray cluster against the local engine, on the same cores.

Three setups ingest the same photos into a fresh home each time (model already exported and
cached; the cluster already running, as a user's would be):

- ``local``: the local engine (decode threads + batched ONNX inference in one process);
- ``ray-1node``: a Ray head with ``--cores`` CPUs: one worker (actor) per CPU, each loading the
  model once and running ONNX Runtime with one thread;
- ``ray-2nodes``: a head and a second node started as its own process, ``--cores / 2`` CPUs each.

The driver (this process) stores every batch through the local engine's write path in all three.
Rounds are interleaved and medians reported (the machine is shared). Prints one JSON line per run
and a JSON summary with images/s and the ratio of each Ray setup to ``local``::

    python bench/scale_ray.py --images 400 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CATALENS_SHARED_DATA", ROOT / ".." / "shared" / "data"))
sys.path.insert(0, str(ROOT / "tests"))

from services.ray_cluster import LocalRayCluster  # noqa: E402

from catalens.core import Catalog  # noqa: E402


def emit(**kw: object) -> None:
    print(json.dumps(kw), flush=True)


class _ReadyLog(logging.Handler):
    """Keeps the engine's "first Ray worker ready after X s" (actor start + model load)."""

    seconds: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"ready after ([0-9.]+) s", record.getMessage())
        if found:
            _ReadyLog.seconds = float(found[1])


def one_run(photos: Path, work: Path, model: str, ray: str | None, batch: int) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
    _ReadyLog.seconds = None
    try:
        t0 = time.perf_counter()
        with Catalog.open(home, default_model=model, batch_size=batch) as cat:
            cat.encoder(model)  # loaded before the clock of the job starts, as in a warm CLI
            t1 = time.perf_counter()
            rep = cat.ingest(photos, ray=ray)
        assert rep.failed == 0 and rep.embedded == rep.new_images == rep.seen - rep.already_present, (
            rep.to_dict()
        )
        out = {
            "images": rep.seen,
            "job_s": rep.elapsed_s,
            "open_s": t1 - t0,
            "rate": rep.seen / rep.elapsed_s,
        }
        if _ReadyLog.seconds is not None:
            out["worker_ready_s"] = _ReadyLog.seconds
            # the rate once the workers are up: what a long job approaches
            out["rate_after_ready"] = rep.seen / max(1e-9, rep.elapsed_s - _ReadyLog.seconds)
        return out
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--cores", type=int, default=2, help="CPUs Ray may use in all (the local engine uses the machine)"
    )
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--data", type=Path, default=DATA / "myntra-dev" / "images")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # finally: the clusters are stopped
    engine_log = logging.getLogger("catalens.ingest.ray_engine")
    engine_log.setLevel(logging.INFO)
    engine_log.addHandler(_ReadyLog())

    work = Path(tempfile.mkdtemp(prefix="scale-ray-"))
    photos = work / "photos"
    photos.mkdir()
    for src in sorted(args.data.glob("*.jpg"))[: args.images]:
        (photos / src.name).symlink_to(src.resolve())
    n = len(list(photos.iterdir()))
    with Catalog.open(work / "warm", default_model=args.model) as cat:  # export / cache the model once
        cat.encoder(args.model)

    rates: dict[str, list[float]] = {"local": [], "ray-1node": [], "ray-2nodes": []}
    ready: dict[str, list[float]] = {"ray-1node": [], "ray-2nodes": []}
    steady: dict[str, list[float]] = {"ray-1node": [], "ray-2nodes": []}
    clusters = {
        "ray-1node": (LocalRayCluster(cpus=args.cores), False),
        "ray-2nodes": (LocalRayCluster(cpus=max(1, args.cores // 2)), True),
    }
    try:
        for r in range(args.rounds):
            for setup in rates:
                cluster = None
                if setup != "local":
                    cluster, second = clusters[setup]
                    t = time.perf_counter()
                    cluster.start(second_node=second)
                    emit(event="cluster_up", setup=setup, seconds=round(time.perf_counter() - t, 2))
                try:
                    res = one_run(photos, work, args.model, cluster.address if cluster else None, args.batch)
                finally:
                    if cluster is not None:
                        import ray

                        ray.shutdown()
                        cluster.stop()
                        clusters[setup] = (LocalRayCluster(cpus=cluster.cpus), clusters[setup][1])
                rates[setup].append(res["rate"])
                if "worker_ready_s" in res:
                    ready[setup].append(res["worker_ready_s"])
                    steady[setup].append(res["rate_after_ready"])
                emit(event="run", round=r, setup=setup, **{k: round(v, 3) for k, v in res.items()})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    emit(
        event="summary",
        images=n,
        rounds=args.rounds,
        cores=args.cores,
        model=args.model,
        batch=args.batch,
        images_per_s={k: round(v, 2) for k, v in med.items()},
        runs={k: [round(x, 2) for x in v] for k, v in rates.items()},
        ratio_to_local={k: round(med[k] / med["local"], 3) for k in ("ray-1node", "ray-2nodes")},
        worker_ready_s={k: round(statistics.median(v), 2) for k, v in ready.items() if v},
        ratio_after_ready={k: round(statistics.median(v) / med["local"], 3) for k, v in steady.items() if v},
        target=0.85,
    )


if __name__ == "__main__":
    main()
