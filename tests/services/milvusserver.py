"""Start and stop a throw-away Milvus standalone server: the CI script, the test fixtures and the
scale-out benchmark use this one module (standard library only; the server itself comes from the
``milvus`` package on PyPI, "embedded Milvus", which ships the Milvus 2.3 standalone binary and
its ``milvus-server`` launcher).

``start(folder)`` runs ``milvus-server --data FOLDER --proxy-port PORT`` in its own process group
(a free loopback port unless one is given), waits until the server answers a request (its REST
``/v1/vector/collections`` on the proxy port) and returns ``milvus://127.0.0.1:PORT``, the index
URI catalens accepts. ``stop(folder)`` stops it (SIGINT to the launcher, which stops the server;
SIGKILL to the whole group if it is still there after a grace period).

Each start begins with empty data (the unpacked binaries in ``FOLDER/bin`` are kept). The first
start in a folder unpacks the binaries (about 4 s here); the server then answers after a few more
seconds. One server per machine at a time: the Milvus 2.3 binary keeps its pid file in
``/run/milvus``.

    python tests/services/milvusserver.py start DIR [PORT]   # prints milvus://127.0.0.1:PORT
    python tests/services/milvusserver.py stop DIR
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

URI_FILE = "uri"
PID_FILE = "launcher.pid"
LOG_FILE = "launcher.log"
FRESH_DIRS = ("configs", "data", "logs", "run")


class ServerError(RuntimeError):
    """The Milvus server could not be found, started or stopped; the message says why."""


def launcher() -> str | None:
    """The ``milvus-server`` launcher: ``$CATALENS_MILVUS_SERVER``, PATH, or next to this Python."""
    env = os.environ.get("CATALENS_MILVUS_SERVER")
    if env:
        return env if Path(env).exists() else None
    found = shutil.which("milvus-server")
    if found:
        return found
    beside = Path(sys.executable).parent / "milvus-server"
    return str(beside) if beside.exists() else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(port: int, timeout: float = 2.0) -> bool:
    """Whether a Milvus proxy on ``127.0.0.1:port`` answers a request (lists its collections)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/vector/collections", timeout=timeout) as r:
            return int(json.loads(r.read().decode() or "{}").get("code", 0)) == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _configured_port(folder: Path) -> int | None:
    """The proxy port the launcher wrote into its config (it moves up from a port that is taken)."""
    conf = folder / "configs" / "milvus.yaml"
    if not conf.exists():
        return None
    m = re.search(r"^proxy:\n(?:[ \t].*\n)*?[ \t]+port:\s*(\d+)", conf.read_text(), re.M)
    return int(m.group(1)) if m else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _log_tail(folder: Path) -> str:
    parts = []
    for name in (LOG_FILE, "logs/milvus-stderr.log"):
        p = folder / name
        if p.exists():
            parts.append(f"--- {p}:\n{p.read_text(errors='replace')[-1500:]}")
    return "\n".join(parts)


def start(folder: str | Path, port: int | None = None, *, timeout: float = 180.0) -> str:
    """Start a server with its data in ``folder``; return ``milvus://127.0.0.1:PORT`` once it answers."""
    exe = launcher()
    if exe is None:
        raise ServerError(
            "no Milvus server launcher (milvus-server): `pip install 'milvus>=2.3,<2.4'` "
            "(the embedded standalone server) or set CATALENS_MILVUS_SERVER"
        )
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / PID_FILE).exists():
        stop(folder)
    # a throw-away server: start from empty data every time (a restart over the data of a server
    # that was killed waits on its stale etcd sessions); the unpacked binaries (bin/) are kept
    for sub in FRESH_DIRS:
        shutil.rmtree(folder / sub, ignore_errors=True)
    port = port or free_port()
    log = open(folder / LOG_FILE, "w")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            [exe, "--data", str(folder), "--proxy-port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(folder),
            start_new_session=True,  # its own process group: stop() ends the launcher and the server
        )
    finally:
        log.close()
    (folder / PID_FILE).write_text(f"{proc.pid}\n")
    end = time.monotonic() + timeout
    while True:
        actual = _configured_port(folder) or port
        if answers(actual):
            uri = f"milvus://127.0.0.1:{actual}"
            (folder / URI_FILE).write_text(uri + "\n")
            return uri
        if proc.poll() is not None:
            raise ServerError(
                f"milvus-server exited with {proc.returncode} before answering\n{_log_tail(folder)}"
            )
        if time.monotonic() > end:
            stop(folder)
            raise ServerError(
                f"Milvus did not answer on port {actual} within {timeout:.0f} s\n{_log_tail(folder)}"
            )
        time.sleep(0.25)


def stop(folder: str | Path, grace: float = 20.0) -> None:
    """Stop the server started in ``folder``; nothing to do when none is running."""
    folder = Path(folder).resolve()
    pid_file = folder / PID_FILE
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().strip())
    if _alive(pid):
        try:
            os.kill(pid, signal.SIGINT)  # the launcher's handler stops the server, then exits
        except ProcessLookupError:
            pass
        end = time.monotonic() + grace
        while _alive(pid) and time.monotonic() < end:
            time.sleep(0.1)
    try:  # whatever is left of the group (the server itself when the launcher died first)
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    pid_file.unlink(missing_ok=True)
    (folder / URI_FILE).unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    if not (2 <= len(argv) <= 3) or argv[0] not in {"start", "stop"}:
        print("usage: milvusserver.py start FOLDER [PORT] | stop FOLDER", file=sys.stderr)
        return 2
    try:
        if argv[0] == "start":
            print(start(argv[1], int(argv[2]) if len(argv) == 3 else None))
        else:
            stop(argv[1])
    except ServerError as exc:
        print(f"Milvus: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
