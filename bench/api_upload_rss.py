"""Peak memory of ``catalens serve`` while a client uploads ~2 GiB of images (loopback only).

Starts a real server (a subprocess over an empty catalog in a temporary folder, with a write key
from ``catalens keys create --role write --json``), reads its idle RSS (psutil, the server and
any children), then, while a thread samples the server's RSS every 20 ms:

1. **upload**: ``--concurrency`` clients POST ``/api/v1/ingest/upload`` requests of
   ``--files-per-request`` distinct noise PNGs of ``--file-mib`` MiB each (under the per-file cap,
   ``max_upload_bytes``, 50 MiB by default), until ``--total-gib`` has been sent; every request must
   be accepted (202). Each request's ingest job (decode, thumbnails, dedup features; ``--embed`` to
   embed too) runs in the server while later uploads arrive;
2. **jobs**: until every job is done;
3. **refusals**, bodies over the caps, each of which must be a 413:
   - one file over the per-file cap in an upload request (streamed to disk, refused at the cap);
   - a request declaring a body over the whole-request cap (``Content-Length``): refused before the
     body is read (only a few MiB are sent);
   - a chunked body (no length) over the cap of a non-upload route (``POST /api/v1/search``):
     refused as soon as the cap is passed.

Prints one JSON object: idle RSS, peak RSS per phase, peak over idle (target < 300 MB), MiB sent,
seconds per phase, statuses, the 1-minute load average. Bounded loops and timeouts throughout.

    python bench/api_upload_rss.py --total-gib 2 --json-out /tmp/api_upload_rss.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

MiB = 1 << 20
TARGET_OVER_IDLE_MB = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def write_noise_png(path: Path, side: int, seed: int) -> None:
    """An RGB noise PNG of side x side (stored, uncompressed deflate: ~3 bytes per pixel), written
    row by row: distinct per seed, cheap to make and to decode."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.write(_png_chunk(b"IHDR", side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])))
        comp = zlib.compressobj(0)
        parts: list[bytes] = []
        block = 256
        for y0 in range(0, side, block):
            rows = rng.integers(0, 256, size=(min(block, side - y0), side * 3 + 1), dtype=np.uint8)
            rows[:, 0] = 0  # filter type: none
            parts.append(comp.compress(rows.tobytes()))
            if sum(map(len, parts)) > 8 * MiB:
                fh.write(_png_chunk(b"IDAT", b"".join(parts)))
                parts = []
        parts.append(comp.flush())
        fh.write(_png_chunk(b"IDAT", b"".join(parts)))
        fh.write(_png_chunk(b"IEND", b""))


class Sampler(threading.Thread):
    """The server's RSS (its process and children) every ``every_s``; peak per named phase."""

    def __init__(self, pid: int, every_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.every_s = every_s
        self.phase = "idle"
        self.peaks: dict[str, int] = {}
        self.samples = 0
        self._halt = threading.Event()

    def rss(self) -> int:
        total = self.proc.memory_info().rss
        for child in self.proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                value = self.rss()
            except psutil.NoSuchProcess:
                return
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), value)
            self.samples += 1
            self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def _mb(n: int) -> float:
    return round(n / 1e6, 1)


def _raw_post(
    port: int, path: str, headers: dict[str, str], body: Any, *, chunked: bool
) -> tuple[int, float, int]:
    """POST ``body`` (an iterator of byte blocks) as it goes, stopping when the server answers or
    closes; returns (status, seconds to the answer, bytes of body sent)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t0 = time.perf_counter()
    conn.putrequest("POST", path)
    for k, v in headers.items():
        conn.putheader(k, v)
    if chunked:
        conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    sent = 0
    try:
        for block in body:
            conn.sock.setblocking(False)  # an answer already there: stop sending
            try:
                early = conn.sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                early = b""
            finally:
                conn.sock.setblocking(True)
            if early:
                break
            conn.send(f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block)
            sent += len(block)
        else:
            if chunked:
                conn.send(b"0\r\n\r\n")
    except OSError:  # the server answered and closed the connection: what is wanted
        pass
    try:
        status = conn.getresponse().status
    except OSError:  # reset before the answer could be read: no status (the run then fails)
        status = 0
    conn.close()
    return status, time.perf_counter() - t0, sent


def _part_head(boundary: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--total-gib", type=float, default=2.0)
    ap.add_argument("--file-mib", type=float, default=48.0, help="size of each upload (under the cap)")
    ap.add_argument("--files-per-request", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--embed", action="store_true", help="embed the uploads too (loads the default model)")
    ap.add_argument("--timeout-s", type=float, default=300.0, help="give up (non-zero exit) after this")
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()
    deadline = time.monotonic() + args.timeout_s

    work = Path(tempfile.mkdtemp(prefix="catalens-bench-rss-"))
    try:
        run(args, work, deadline)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path, deadline: float) -> None:
    home, files_dir = work / "home", work / "files"
    files_dir.mkdir()
    side = int((args.file_mib * MiB / 3) ** 0.5)
    n_files = max(1, round(args.total_gib * 1024 / args.file_mib))
    t0 = time.perf_counter()
    paths = []
    for i in range(n_files):
        p = files_dir / f"IMG_{i:04d}.png"
        write_noise_png(p, side, seed=i)
        paths.append(p)
    oversize = files_dir / "oversize.png"
    write_noise_png(oversize, int((56 * MiB / 3) ** 0.5), seed=10_000)  # over the 50 MiB cap
    gen_s = time.perf_counter() - t0

    cli = [sys.executable, "-m", "catalens.cli", "--home", str(home)]
    made = subprocess.run(
        cli + ["keys", "create", "--role", "write", "--json"], capture_output=True, text=True
    )
    if made.returncode != 0:
        sys.exit(f"keys create failed: {made.stderr[-500:]}")
    key = json.loads(made.stdout)["key"]
    auth = {"Authorization": f"Bearer {key}"}
    port = _free_port()
    env = os.environ | {"CATALENS_API_RATE_PER_MINUTE": "100000000", "CATALENS_API_BURST": "1000000"}
    server = subprocess.Popen(cli + ["serve", "--port", str(port), "--log-level", "warning"], env=env)
    base = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {"kind": "api-upload-rss", "loadavg_start": [round(x, 2) for x in os.getloadavg()]}
    sampler: Sampler | None = None
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                sys.exit("the server exited at start-up")
            time.sleep(0.2)
        else:
            sys.exit("the server did not answer /health")
        limits = httpx.get(base + "/api/v1/features", timeout=5).json()["limits"]
        time.sleep(3.0)  # start-up work (the first recommender fit of an empty catalog) settles
        sampler = Sampler(server.pid)
        idle_samples = []
        for _ in range(10):
            idle_samples.append(sampler.rss())
            time.sleep(0.2)
        idle = sorted(idle_samples)[len(idle_samples) // 2]  # median of 2 s
        sampler.start()

        # 1. uploads
        sampler.phase = "upload"
        batches = [
            paths[i : i + args.files_per_request] for i in range(0, len(paths), args.files_per_request)
        ]
        sent = {"bytes": 0}
        lock = threading.Lock()

        def upload(batch: list[Path]) -> tuple[int, str | None]:
            handles = [open(p, "rb") for p in batch]  # noqa: SIM115 - closed below
            try:
                files = [("files", (p.name, fh, "image/png")) for p, fh in zip(batch, handles, strict=True)]
                data = {"embed": "true" if args.embed else "false"}
                with httpx.Client(timeout=120) as c:
                    r = c.post(base + "/api/v1/ingest/upload", files=files, data=data, headers=auth)
                with lock:
                    sent["bytes"] += sum(p.stat().st_size for p in batch)
                return r.status_code, (r.json().get("id") if r.status_code == 202 else r.text[:300])
            finally:
                for fh in handles:
                    fh.close()

        t1 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(upload, batches))
        upload_s = time.perf_counter() - t1
        print(f"uploaded {len(batches)} requests in {upload_s:.1f} s", file=sys.stderr)
        statuses = [s for s, _ in results]
        jobs = [j for s, j in results if s == 202]

        # 2. the ingest jobs finish
        sampler.phase = "jobs"
        t2 = time.perf_counter()
        job_status: dict[str, str] = {}
        while time.monotonic() < deadline:
            job_status = {
                j: httpx.get(f"{base}/api/v1/jobs/{j}", headers=auth, timeout=10).json()["status"]
                for j in jobs
            }
            if all(s in ("done", "failed", "cancelled") for s in job_status.values()):
                break
            time.sleep(0.5)
        jobs_s = time.perf_counter() - t2
        print(f"jobs done in {jobs_s:.1f} s: {job_status}", file=sys.stderr)
        reports = [httpx.get(f"{base}/api/v1/jobs/{j}", headers=auth, timeout=10).json() for j in jobs]
        ingested = sum(int((r.get("report") or {}).get("new_images", 0)) for r in reports)

        # 3. bodies over the caps
        sampler.phase = "refusals"
        refusals: dict[str, Any] = {}
        with open(oversize, "rb") as fh, httpx.Client(timeout=120) as c:
            r = c.post(
                base + "/api/v1/ingest/upload",
                files=[("files", ("oversize.png", fh, "image/png"))],
                headers=auth,
            )
        refusals["file_over_cap"] = {"bytes": oversize.stat().st_size, "status": r.status_code}
        request_cap = limits["max_upload_bytes"] * limits["max_upload_files"] + MiB
        mp = "multipart/form-data; boundary=bench"
        blocks = [_part_head("bench")] + [b"\0" * MiB] * 8  # 8 MiB of a body declared over the cap
        status, secs, n = _raw_post(
            port,
            "/api/v1/ingest/upload",
            auth | {"Content-Type": mp, "Content-Length": str(request_cap + MiB)},
            iter(blocks),
            chunked=False,
        )
        refusals["declared_over_request_cap"] = {
            "declared_bytes": request_cap + MiB, "sent_bytes": n, "status": status, "answer_s": round(secs, 3),
        }  # fmt: skip
        route_cap = limits["max_upload_bytes"] + MiB  # a non-upload route's whole-body cap
        blocks = [_part_head("bench")] + [b"\0" * MiB] * (route_cap // MiB + 16)
        status, secs, n = _raw_post(
            port, "/api/v1/search", auth | {"Content-Type": mp}, iter(blocks), chunked=True
        )
        refusals["chunked_over_route_cap"] = {
            "cap_bytes": route_cap, "sent_bytes": n, "status": status, "answer_s": round(secs, 3),
        }  # fmt: skip
        time.sleep(0.3)
        sampler.stop()

        peaks = sampler.peaks
        peak = max(peaks.values())
        out |= {
            "files": n_files,
            "file_bytes": paths[0].stat().st_size,
            "files_per_request": args.files_per_request,
            "concurrency": args.concurrency,
            "embed": args.embed,
            "requests": len(batches),
            "upload_statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
            "uploaded_mib": round(sent["bytes"] / MiB, 1),
            "upload_s": round(upload_s, 1),
            "upload_mib_per_s": round(sent["bytes"] / MiB / upload_s, 1),
            "jobs": {s: list(job_status.values()).count(s) for s in sorted(set(job_status.values()))},
            "jobs_s": round(jobs_s, 1),
            "new_images": ingested,
            "refusals": refusals,
            "idle_rss_mb": _mb(idle),
            "peak_rss_mb": {k: _mb(v) for k, v in peaks.items()},
            "peak_over_idle_mb": _mb(peak - idle),
            "upload_peak_over_idle_mb": _mb(peaks.get("upload", idle) - idle),
            "target_over_idle_mb": TARGET_OVER_IDLE_MB,
            "samples": sampler.samples,
            "generate_s": round(gen_s, 1),
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        }
        ok = (
            statuses.count(202) == len(batches)
            and ingested == n_files
            and all(v["status"] == 413 for v in refusals.values())
        )
        out["target_met"] = ok and (peak - idle) / 1e6 < TARGET_OVER_IDLE_MB
        out["all_checks_passed"] = ok
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        if sampler is not None:
            sampler.stop()
    line = json.dumps(out)
    print(line)
    if args.json_out:
        args.json_out.write_text(line + "\n")
    if not out.get("all_checks_passed"):
        sys.exit(1)


if __name__ == "__main__":
    main()
