"""Run ``catalens serve --workers N`` as a real process and measure cross-worker visibility: the
time from an ingest finishing in one worker to its product being found by search in another.
Used by ``tests/test_serve_workers.py`` and ``bench/scale_serving.py`` (needs httpx).

uvicorn's workers share one listening socket, so a request cannot name its worker; but an HTTP/1.1
connection stays with the worker that accepted it. ``/ready`` reports the worker's pid: a client
(one kept-alive connection) is pinned to a worker, and clients are opened until two differ.
Every probe re-checks the pid of its connection (a connection idle past uvicorn's keep-alive closes
and may reconnect elsewhere; such a run is reported and not counted).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``catalens --home HOME serve --workers N --port PORT`` in its own process group."""

    def __init__(
        self, home: Path, workers: int, *, extra_args: Sequence[str] = (), env: dict[str, str] | None = None
    ):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = Path(home).parent / f"serve-{self.port}.log"
        cmd = [sys.executable, "-m", "catalens.cli", "--home", str(home), *extra_args, "serve"]
        cmd += ["--port", str(self.port), "--workers", str(workers), "--log-level", "warning"]
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen(
                cmd,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )

    def wait_ready(self, workers: int, timeout: float = 180.0) -> set[int]:
        """Block until every worker answers ``/ready`` (distinct pids seen); returns the pids."""
        end = time.monotonic() + timeout
        pids: set[int] = set()
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with httpx.Client(base_url=self.base, timeout=5) as c:
                    pids.add(int(c.get("/ready").json()["worker"]))
            except (httpx.HTTPError, KeyError, ValueError):
                time.sleep(0.2)
                continue
            if len(pids) >= workers:
                return pids
        raise TimeoutError(
            f"{len(pids)} of {workers} workers answered within {timeout:.0f} s\n{self.log_tail()}"
        )

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def pinned_client(base: str, avoid: int | None = None, tries: int = 60) -> tuple[httpx.Client, int]:
    """A client whose (kept-alive) connection is served by a worker other than ``avoid``."""
    for _ in range(tries):
        c = httpx.Client(base_url=base, timeout=60)
        pid = int(c.get("/ready").json()["worker"])
        if pid != avoid:
            return c, pid
        c.close()
    raise RuntimeError(f"no connection reached a worker other than {avoid} in {tries} tries")


def worker_of(c: httpx.Client) -> int:
    return int(c.get("/ready").json()["worker"])


@dataclass
class Visibility:
    seconds_after_done: list[float] = field(default_factory=list)  # job done in A -> found in B
    seconds_after_upload: list[float] = field(default_factory=list)  # upload accepted by A -> found in B
    discarded: int = 0  # runs whose connection moved to another worker

    def summary(self) -> dict[str, Any]:
        def stats(xs: list[float]) -> dict[str, float]:
            return {"median": round(statistics.median(xs), 3), "max": round(max(xs), 3)} if xs else {}

        return {
            "runs": len(self.seconds_after_done),
            "after_job_done_s": stats(self.seconds_after_done),
            "after_upload_s": stats(self.seconds_after_upload),
            "discarded_runs": self.discarded,
        }


def _wait_job(c: httpx.Client, job: str, deadline: float, poll_s: float) -> bool:
    """Poll the job through the worker that runs it until done; False if the connection now
    reaches a worker that does not know the job."""
    while True:
        st = c.get(f"/api/v1/jobs/{job}")
        if st.status_code == 404:
            return False
        status = st.json()["status"]
        if status == "done":
            return True
        if status in ("failed", "cancelled") or time.monotonic() > deadline:
            raise RuntimeError(f"ingest job {job} {status}: {st.json().get('error')}")
        time.sleep(poll_s)


def measure_visibility(
    base: str, images: Sequence[Path], key: str, *, timeout: float = 60.0, poll_s: float = 0.05
) -> Visibility:
    """For each image: upload it as a new product through worker A, wait for A's job, then search
    by that image through worker B until the new product is the top result."""
    auth = {"Authorization": f"Bearer {key}"}
    a, pid_a = pinned_client(base)
    b, pid_b = pinned_client(base, avoid=pid_a)
    out = Visibility()
    try:
        b.post("/api/v1/search", files={"file": ("q.png", images[0].read_bytes(), "image/png")})  # warm B
        for i, img in enumerate(images):
            data = img.read_bytes()
            pid = f"NEW-{os.getpid()}-{time.time_ns()}-{i}"
            t_up = time.monotonic()
            r = a.post(
                "/api/v1/ingest/upload",
                files={"files": (img.name, data, "image/png")},
                data={"product_id": pid, "title": f"new product {i}"},
                headers=auth,
            )
            r.raise_for_status()
            job = r.json()["id"]
            if not _wait_job(a, job, t_up + timeout, poll_s):  # A's connection went to another worker
                out.discarded += 1
                a.close()
                a, pid_a = pinned_client(base, avoid=pid_b)
                continue
            t_done = time.monotonic()
            while True:
                res = b.post(
                    "/api/v1/search", files={"file": ("q.png", data, "image/png")}, data={"limit": 1}
                )
                res.raise_for_status()
                hits = res.json()["results"]
                if hits and hits[0]["product_id"] == pid:
                    t_vis = time.monotonic()
                    break
                if time.monotonic() > t_done + timeout:
                    raise TimeoutError(f"product {pid} not found through worker {pid_b} within {timeout} s")
                time.sleep(poll_s)
            if worker_of(b) != pid_b or worker_of(a) != pid_a:
                out.discarded += 1
                b.close()
                a.close()
                a, pid_a = pinned_client(base)
                b, pid_b = pinned_client(base, avoid=pid_a)
                continue
            out.seconds_after_done.append(t_vis - t_done)
            out.seconds_after_upload.append(t_vis - t_up)
    finally:
        a.close()
        b.close()
    return out
