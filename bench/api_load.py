"""Load benchmark of the REST API on loopback: concurrent clients at concurrency 1, 8 and 32.

Scenarios (those whose routes the server has):
* search-by-id      GET  /api/v1/search?product_id=<random catalogued id>&limit=10
* search-by-upload  POST /api/v1/search   (a catalogued photo re-encoded as new JPEG bytes, so it is embedded)
* classify-upload   POST /api/v1/classify (when the classify routes exist), compared with a warm
                    Python-API ``Catalog.classify`` (the CLI's code path) on the same files in the same run

The catalogue home is copied to a temporary folder first (the server may write to it). Prints one
JSON line per (scenario, concurrency): p50/p99 latency (ms), throughput (req/s), errors.

    python bench/api_load.py --home /work/bench-home --images /work/shared/data/myntra-dev/images
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reencode(path: Path, quality: int) -> bytes:
    img = Image.open(path).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


async def _run(base: str, make_request, n_requests: int, concurrency: int) -> dict[str, float | int]:
    latencies: list[float] = []
    errors = 0
    statuses: dict[int, int] = {}
    counter = iter(range(n_requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                t0 = time.perf_counter()
                try:
                    resp = await make_request(client, i)
                    statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                    if resp.status_code >= 400:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat = np.array(latencies) * 1000
    return {
        "requests": n_requests,
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "throughput_rps": round(n_requests / wall, 2),
        "errors": errors,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def _warm_python_images_per_s(home: Path, images: list[Path]) -> dict[str, float] | None:
    """Warm Python-API (= the CLI's code path without its start-up) classify images/s over the same
    images, in a child process started after the server is warm: one batched call over all files,
    as ``catalens classify FILES...`` does, and one call per file, as the API does."""
    code = (
        "import json,sys,time;from catalens import Catalog;c=Catalog.open(sys.argv[1]);p=sys.argv[2:];"
        "c.classify(p[:8]);t=time.perf_counter();c.classify(p);b=time.perf_counter()-t;"
        "t=time.perf_counter();[c.classify([x]) for x in p];s=time.perf_counter()-t;"
        "print(json.dumps({'batched':len(p)/b,'per_file':len(p)/s}))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(home), *map(str, images)],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        print(json.dumps({"python_classify_error": res.stderr[-500:]}), flush=True)
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", default="/work/bench-home")
    ap.add_argument("--images", default="/work/shared/data/myntra-dev/images")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--id-requests", type=int, default=400)
    ap.add_argument("--upload-requests", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="catalens-bench-api-"))
    home = work / "home"
    shutil.copytree(args.home, home)
    port = _free_port()
    env = os.environ | {"CATALENS_API_RATE_PER_MINUTE": "100000000", "CATALENS_API_BURST": "1000000"}
    server = subprocess.Popen(
        [sys.executable, "-m", "catalens.cli", "--home", str(home), "serve", "--port", str(port),
         "--log-level", "warning"],
        env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        features = httpx.get(base + "/api/v1/features").json()["features"]
        ids = [p["id"] for p in httpx.get(base + "/api/v1/products", params={"limit": 500}).json()["items"]]
        photos = sorted(Path(args.images).glob("*.jpg"))
        rng.shuffle(photos)
        uploads = [_reencode(p, 90 + (i % 5)) for i, p in enumerate(photos[: args.upload_requests])]

        async def by_id(client: httpx.AsyncClient, i: int) -> httpx.Response:
            return await client.get("/api/v1/search", params={"product_id": ids[i % len(ids)], "limit": 10})

        def upload_to(path: str):
            async def call(client: httpx.AsyncClient, i: int) -> httpx.Response:
                files = {"file": (f"q{i}.jpg", uploads[i % len(uploads)], "image/jpeg")}
                return await client.post(
                    path, files=files, data={"limit": "10"} if "search" in path else None
                )

            return call

        scenarios = []
        if "search" in features:
            scenarios.append(("search-by-id", by_id, args.id_requests))
            scenarios.append(("search-by-upload", upload_to("/api/v1/search"), args.upload_requests))
        if "classify" in features:
            scenarios.append(("classify-upload", upload_to("/api/v1/classify"), args.upload_requests))
        else:
            print(json.dumps({"scenario": "classify-upload", "skipped": "no classify routes on this server"}))
        cache: dict[str, dict[str, float] | None] = {}
        for name, fn, n in scenarios:
            asyncio.run(_run(base, fn, min(20, n), 4))  # warm-up: models loaded, index open
            for conc in (int(c) for c in args.concurrency.split(",")):
                res = asyncio.run(_run(base, fn, n, conc))
                print(json.dumps({"scenario": name, "concurrency": conc} | res), flush=True)
                if name == "classify-upload":
                    if "py" not in cache:  # measured while the server is idle, on the same re-encoded files
                        qdir = work / "queries"
                        qdir.mkdir(exist_ok=True)
                        files = []
                        for j, data in enumerate(uploads):
                            (qdir / f"q{j}.jpg").write_bytes(data)
                            files.append(qdir / f"q{j}.jpg")
                        cache["py"] = _warm_python_images_per_s(home, files)
                    py = cache["py"]
                    if py:
                        print(json.dumps({"scenario": name, "concurrency": conc,
                                          "warm_python_batched_images_per_s": round(py["batched"], 2),
                                          "warm_python_per_file_images_per_s": round(py["per_file"], 2),
                                          "api_over_warm_batched": round(res["throughput_rps"] / py["batched"], 3),
                                          "api_over_warm_per_file": round(res["throughput_rps"] / py["per_file"], 3)}),
                              flush=True)  # fmt: skip
    finally:
        server.terminate()
        server.wait(20)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
