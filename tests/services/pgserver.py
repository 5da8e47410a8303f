"""Start and stop a throw-away PostgreSQL cluster: the CI script, the test fixtures and the backend
benchmark use this one module (standard library only, so ``python tests/services/pgserver.py`` runs
before anything is installed).

``start(folder)`` runs ``initdb`` + ``pg_ctl start`` in ``folder`` on a free loopback port with trust
authentication on 127.0.0.1 and returns the SQLAlchemy URL of the ``postgres`` database;
``stop(folder)`` stops it. Run as root, both run the server binaries as the ``postgres`` user
(``initdb`` refuses root), so ``folder`` and its parents must be reachable by that user.

    python tests/services/pgserver.py start DIR     # prints postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
    python tests/services/pgserver.py stop DIR
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

URL_FILE = "url"
SERVER_USER = "postgres"


class ServerError(RuntimeError):
    """The PostgreSQL server could not be found, started or stopped; the message says why."""


def bindir() -> Path | None:
    """The folder of ``initdb`` / ``pg_ctl``: ``$CATALENS_PG_BINDIR``, PATH, or Debian's newest version."""
    env = os.environ.get("CATALENS_PG_BINDIR")
    if env:
        return Path(env) if (Path(env) / "initdb").exists() else None
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user() -> dict[str, object]:
    """subprocess arguments that drop root to the ``postgres`` user (nothing when not root)."""
    if os.geteuid() != 0:
        return {}
    try:
        pw = pwd.getpwnam(SERVER_USER)
    except KeyError as exc:
        raise ServerError(f"running as root and there is no {SERVER_USER!r} user to run the server") from exc
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _check_reachable(folder: Path) -> None:
    """As root, the server user must be able to traverse every parent of ``folder``."""
    if os.geteuid() != 0:
        return
    uid = pwd.getpwnam(SERVER_USER).pw_uid
    for parent in [folder, *folder.parents]:
        st = parent.stat()
        if st.st_uid != uid and not st.st_mode & stat.S_IXOTH:
            raise ServerError(
                f"{parent} is not searchable by the {SERVER_USER!r} user (mode {stat.filemode(st.st_mode)}); "
                f"put the PostgreSQL folder {folder} somewhere it can reach (chmod o+x {parent})"
            )


def _run(cmd: list[str], *, what: str, log: Path | None = None, timeout: float = 120) -> None:
    for attempt in range(2):
        try:
            res = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd="/",
                **_as_server_user(),  # type: ignore[arg-type]
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServerError(f"{what} failed: {exc}") from exc
        # killed by a signal before it could run (seen once: SIGSEGV in the forked child of a test
        # process whose gRPC client - Milvus, Ray - had threads running at fork): run it again once
        if res.returncode >= 0 or attempt:
            break
    if res.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
        raise ServerError(
            f"{what} failed (exit {res.returncode}): {' '.join(cmd)}\n{res.stdout[-2000:]}{res.stderr[-2000:]}"
            + (f"\nserver log {log}:\n{tail}" if tail else "")
        )


def start(folder: str | Path, *, durable: bool = False, max_connections: int = 300) -> str:
    """Create a cluster in ``folder`` (made if missing) and start it; return its URL.

    Without ``durable`` the cluster trades crash safety for speed (``fsync``, full page writes
    and synchronous commit off): it is thrown away after the run. ``durable=True`` keeps
    PostgreSQL's defaults (the backend benchmark).
    """
    bins = bindir()
    if bins is None:
        raise ServerError(
            "no PostgreSQL server binaries (initdb, pg_ctl): install Debian's `postgresql` package "
            "or set CATALENS_PG_BINDIR"
        )
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    _check_reachable(folder)
    data = folder / "data"
    log = folder / "server.log"
    if os.geteuid() == 0:
        pw = pwd.getpwnam(SERVER_USER)
        os.chown(folder, pw.pw_uid, pw.pw_gid)
    if not (data / "PG_VERSION").exists():
        _run(
            [
                str(bins / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            what="initdb",
        )
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": "''",
        "max_connections": str(max_connections),
        "log_min_messages": "warning",
    }
    if not durable:
        settings |= {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}
    last: ServerError | None = None
    for _ in range(5):  # a port taken between choosing and binding: choose another
        port = _free_port()
        conf = {**settings, "port": str(port)}
        with open(data / "postgresql.auto.conf", "w") as fh:
            fh.writelines(f"{k} = {v}\n" for k, v in conf.items())
        if os.geteuid() == 0:
            os.chown(data / "postgresql.auto.conf", pw.pw_uid, pw.pw_gid)
        try:
            _run(
                [str(bins / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start"],
                what="pg_ctl start",
                log=log,
            )
        except ServerError as exc:
            last = exc
            continue
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        (folder / URL_FILE).write_text(url + "\n")
        return url
    assert last is not None
    raise last


def restart(folder: str | Path, mode: str = "fast") -> None:
    """``pg_ctl restart -m MODE`` (``fast``: clean shutdown; ``immediate``: no shutdown checkpoint, crash
    recovery at start): every open connection is cut; the port stays the same."""
    bins = bindir()
    data = Path(folder).resolve() / "data"
    if bins is None:
        raise ServerError("no PostgreSQL server binaries")
    _run(
        [
            str(bins / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(Path(folder).resolve() / "server.log"),
            "-w",
            "-m",
            mode,
            "restart",
        ],
        what=f"pg_ctl restart -m {mode}",
    )


def stop(folder: str | Path) -> None:
    """Stop the cluster of ``folder`` (fast shutdown); nothing to do when it is not running."""
    bins = bindir()
    data = Path(folder).resolve() / "data"
    if bins is None or not (data / "postmaster.pid").exists():
        return
    _run([str(bins / "pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop"], what="pg_ctl stop")


def wait_ready(url: str, timeout: float = 30.0) -> None:
    """Block until the server of ``url`` accepts connections (psycopg needed)."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    end = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(dsn, connect_timeout=5):
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > end:
                raise ServerError(f"PostgreSQL at {url} does not accept connections: {exc}") from exc
            time.sleep(0.2)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in {"start", "stop"}:
        print("usage: pgserver.py start|stop FOLDER", file=sys.stderr)
        return 2
    try:
        if argv[0] == "start":
            print(start(argv[1]))
        else:
            stop(argv[1])
    except ServerError as exc:
        print(f"PostgreSQL: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
