"""File-system and file-damage conditions of a catalog, as typed errors that say what to do.

* a read-only home (read-only mount, no permission) is refused when the catalog is opened, before
  any work is done: :func:`check_home_writable`;
* a full disk (``ENOSPC``/``EDQUOT`` from a vector, blob or index write, SQLite's "database or disk
  is full") becomes :class:`DiskFullError` naming the file system (mount point, free bytes):
  :func:`disk_full_error`, and the SQLAlchemy ``handle_error`` listener installed here;
* a damaged SQLite file ("database disk image is malformed", "file is not a database") becomes
  :class:`CatalogCorruptError` naming the file and the way back (``catalens doctor``,
  ``catalens restore``): the same listener, and :func:`sqlite_integrity` for an explicit check.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import uuid
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine, ExceptionContext

from catalens.errors import CatalogCorruptError, DiskFullError, ReadOnlyHomeError

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_CORRUPT_MARKERS = ("database disk image is malformed", "file is not a database")
_FULL_MARKERS = ("database or disk is full",)
_INSTALLED = False


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding ``path`` (or its nearest existing parent)."""
    p = Path(path).resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def describe_disk(path: Path) -> str:
    """``'the disk mounted at /x (12 KiB free of 20.0 MiB)'`` for the file system holding ``path``."""
    mp = mount_point(path)
    try:
        usage = shutil.disk_usage(mp)
        room = f" ({_size(usage.free)} free of {_size(usage.total)})"
    except OSError:
        room = ""
    return f"the disk mounted at {mp}{room}"


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"  # pragma: no cover


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    text = str(exc).lower()
    return any(m in text for m in _FULL_MARKERS) or "no space left on device" in text


def disk_full_error(path: Path, what: str = "writing the catalog") -> DiskFullError:
    return DiskFullError(
        f"no space left on {describe_disk(path)} while {what} ({path}); batches committed before are "
        "kept and the database and vectors stay consistent: free space on that disk (or move the "
        "home with `catalens backup`/`catalens restore`) and run the same command again to resume"
    )


# below this, SQLite cannot even open its shared-memory index (a bare "disk I/O error"): refuse first
MIN_FREE_BYTES = 1 << 20


def check_home_writable(home: Path) -> None:
    """Refuse a home that cannot be written, before any work: create and remove a probe file; a
    disk with less than ``MIN_FREE_BYTES`` free is a :class:`DiskFullError`."""
    home = Path(home)
    try:
        home.mkdir(parents=True, exist_ok=True)
        if shutil.disk_usage(home).free < MIN_FREE_BYTES:
            raise OSError(errno.ENOSPC, "less than 1 MiB free")
        probe = home / f".write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        with open(probe, "wb") as fh:
            fh.write(b"x")
        probe.unlink()
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise disk_full_error(home, "opening the catalog") from exc
        if exc.errno == errno.EROFS:
            why = f"it is on a read-only file system ({describe_disk(home)})"
        elif exc.errno in (errno.EACCES, errno.EPERM):
            why = f"this user has no write permission there ({exc.strerror})"
        else:
            why = f"{exc.strerror or exc}"
        raise ReadOnlyHomeError(
            f"the catalog home {home} cannot be written: {why}. catalens writes its database, vectors "
            "and index there, so nothing was done; remount it read-write, fix its permissions, or "
            "copy it to a writable place (`catalens backup`, then `catalens --home NEW restore`)"
        ) from exc


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL (None for other databases and in-memory SQLite)."""
    if not url.startswith("sqlite"):
        return None
    rest = url.split(":///", 1)[1] if ":///" in url else ""
    rest = rest.split("?", 1)[0]
    return Path(rest) if rest and rest != ":memory:" else None


def corrupt_db_error(path: str, detail: str) -> CatalogCorruptError:
    return CatalogCorruptError(
        f"the catalog database {path} is damaged ({detail}). Stop writing to it; run `catalens doctor` "
        "to see what else is affected, then restore the last backup (`catalens restore BACKUP --force`) or "
        f"salvage what is readable (`sqlite3 {path} .recover | sqlite3 recovered.db`) and re-ingest the "
        "sources (ingest is idempotent)"
    )


def sqlite_integrity(path: Path, *, full: bool = False) -> list[str]:
    """Problems ``PRAGMA quick_check`` (``integrity_check`` with ``full``) finds; [] when sound.
    Opened read-only, so a check never writes (nor creates) the database."""
    if not path.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        return [str(exc)]
    try:
        rows = conn.execute("PRAGMA integrity_check" if full else "PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        conn.close()
    found = [str(r[0]) for r in rows]
    return [] if found == ["ok"] else found


def _free_bytes(path: Path) -> int:
    try:
        return shutil.disk_usage(mount_point(path)).free
    except OSError:
        return 1 << 62


def _translate(ctx: ExceptionContext) -> BaseException | None:
    engine = ctx.engine
    if engine is None or engine.dialect.name != "sqlite":
        return None
    text = str(ctx.original_exception).lower()
    path = sqlite_path(str(engine.url)) or Path(str(engine.url.database or "."))
    if any(m in text for m in _CORRUPT_MARKERS):
        return corrupt_db_error(str(path), str(ctx.original_exception).strip().splitlines()[0])
    low = "disk i/o error" in text and _free_bytes(path) < MIN_FREE_BYTES
    if low or any(m in text for m in _FULL_MARKERS):
        return disk_full_error(path, "committing to the catalog database")
    return None


def install() -> None:
    """Listen on every engine (idempotent)."""
    global _INSTALLED
    if not _INSTALLED:
        event.listen(Engine, "handle_error", _translate)
        _INSTALLED = True


install()
