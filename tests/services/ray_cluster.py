"""A real two-node local Ray cluster for the tests: ``ray start --head`` and a second node started as
its own process (``ray start --address ...``), each with 1 CPU.

The tests own their cluster (the fault test kills a node with ``kill -9``), so there is no CI
service script: the session fixture ``ray_cluster`` starts it and stops it. When it cannot start
(Ray not installed, a node that never joins), the tests fail in CI (``CI=true``) and skip elsewhere
with the reason. Every process is stopped by its id: ``ray start --block`` is stopped with SIGTERM,
then anything it started that is still there with SIGKILL; ``ray stop`` (which kills every Ray
process on the machine) is never used.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.availability import service_unavailable as _unavailable

JOIN_TIMEOUT_S = 90.0
# The head notices a dead node after about period x threshold: 0.5 s x 4 instead of Ray's 3 s x 5,
# so that the fault test does not wait 15 s for the killed node to be declared dead.
HEAD_ENV = {
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "4",
    "RAY_USAGE_STATS_ENABLED": "0",
}


class ClusterStartError(RuntimeError):
    """The local Ray cluster could not be started; the message says why."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _kill(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class LocalRayCluster:
    """``start()`` the head and one worker node on 127.0.0.1 (``start(second_node=False)``: the head
    only), ``cpus`` CPUs each; ``address`` is ``127.0.0.1:PORT``."""

    def __init__(self, folder: Path | None = None, cpus: int = 1) -> None:
        self.cpus = cpus
        # short: Ray's unix sockets live under the temp dir (108-byte path limit)
        self.folder = folder or Path(tempfile.mkdtemp(prefix="rayc-", dir="/tmp"))
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.head: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self._started: dict[int, list[int]] = {}  # ray start pid -> processes it started

    def _ray(self, *args: str, name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        exe = shutil.which("ray")
        if exe is None:
            raise ClusterStartError("the `ray` command is not installed (pip install 'catalens[ray]')")
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(
            [
                exe,
                "start",
                "--block",
                "--num-cpus",
                str(self.cpus),
                "--node-ip-address",
                "127.0.0.1",
                "--disable-usage-stats",
                *args,
            ],  # fmt: skip
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **HEAD_ENV, **(env or {})},
            start_new_session=True,
        )

    def start(self, second_node: bool = True) -> LocalRayCluster:
        self.head = self._ray(
            "--head", "--port", str(self.port), "--include-dashboard=false",
            "--temp-dir", str(self.folder / "t"), name="head",
        )  # fmt: skip
        self._wait_nodes(1)
        if second_node:
            self.start_worker()
        return self

    def start_worker(self) -> None:
        """Start (or restart) the second node and wait until the cluster has both (after a restart: until
        the new node is alive, not the killed one the head has not yet declared dead)."""
        known = self._node_ids() if self.head is not None and self.alive_nodes() else set()
        self.worker = self._ray("--address", self.address, name="worker")
        self._wait_nodes(2, new_node_after=known)

    def _node_ids(self) -> set[str]:
        import ray

        return {str(node.get("NodeID")) for node in ray.nodes()}

    def alive_nodes(self) -> int:
        """Live nodes as the head sees them (this process connects to the cluster on first use)."""
        import ray

        if not ray.is_initialized():
            with socket.socket() as probe:
                probe.settimeout(1)
                if probe.connect_ex(("127.0.0.1", self.port)) != 0:
                    return 0  # the head's GCS is not listening yet
            ray.init(address=self.address, log_to_driver=False, logging_level="WARNING")
        return sum(1 for node in ray.nodes() if node.get("Alive"))

    def _wait_nodes(self, n: int, new_node_after: set[str] | None = None) -> None:
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while time.monotonic() < deadline:
            for proc, name in ((self.head, "head"), (self.worker, "worker")):
                if proc is not None and proc.poll() is not None:
                    log = (self.folder / f"{name}.log").read_text(errors="replace")[-2000:]
                    raise ClusterStartError(f"`ray start` ({name}) exited with {proc.returncode}:\n{log}")
            joined = not new_node_after or bool(self._node_ids() - new_node_after)
            if self.alive_nodes() >= n and joined:
                for proc in (self.head, self.worker):
                    if proc is not None:
                        self._started[proc.pid] = _descendants(proc.pid)
                return
            time.sleep(0.5)
        raise ClusterStartError(
            f"the Ray cluster at {self.address} has not {n} live nodes after {JOIN_TIMEOUT_S:.0f} s"
        )

    def kill_worker_node(self) -> list[int]:
        """``kill -9`` the second node: its raylet, its workers and every other process it started."""
        assert self.worker is not None
        pids = sorted(set(_descendants(self.worker.pid)) | set(self._started.get(self.worker.pid, [])))
        _kill([*pids, self.worker.pid], signal.SIGKILL)
        self.worker.wait(timeout=10)
        killed = [*pids, self.worker.pid]  # never empty: the caller knows the node is gone
        self.worker = None
        return killed

    def stop(self) -> None:
        for proc in (self.worker, self.head):
            if proc is None:
                continue
            pids = sorted(set(_descendants(proc.pid)) | set(self._started.get(proc.pid, [])))
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            time.sleep(0.5)
            _kill(pids, signal.SIGKILL)  # what `ray start --block` did not stop
        self.head = self.worker = None
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[LocalRayCluster]:
    """A live two-node local cluster (head + a second node, 1 CPU each), this process connected to it."""
    try:
        import ray
    except ImportError:
        _unavailable("Ray is not installed (pip install 'catalens[ray]')")
    cluster = LocalRayCluster()
    try:
        cluster.start()
    except (ClusterStartError, OSError, subprocess.TimeoutExpired) as exc:
        cluster.stop()
        _unavailable(f"cannot start a local Ray cluster: {exc}")
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.stop()
