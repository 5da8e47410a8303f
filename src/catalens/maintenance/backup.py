"""``catalens backup DEST`` / ``catalens restore SRC``: a consistent copy of a home, taken online.

Why the copy is consistent while a job is writing: the SQLite database is copied **first**, with
SQLite's online backup API in one step (one read transaction: a snapshot of committed batches;
in WAL mode writers go on meanwhile). The vector files are copied **after** it. A writer commits an
embedding record only after its vector bytes are written and fsynced at the record's position, and
positions are never truncated, rewritten or reused, so the files as read after the snapshot hold
every row any record of the snapshot points at (rows written since are holes or rows nobody in the
snapshot points at: unused). Blobs (stored copies of fetched images) are likewise written before the
record that names them. The index is derived data: the current generation is copied under the
index folder's lock; if it is ahead of or behind the snapshot, the first search after a restore
catches it up or rebuilds it (``search.index_sync``). After copying, the backup is checked: every
record of the snapshot points inside its vector file.

PostgreSQL (or any server) catalog: the database is NOT copied here - use the server's tool,
``pg_dump -Fc -d DBNAME -f catalens.dump`` (restore with ``pg_restore -d DBNAME catalens.dump``);
vectors then live in the database too (the ``db`` vector store) and are in that dump. This command
still copies the home's own files (index, classifiers, profiles, blobs, uploads, settings) and says
so in ``backup.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalens.catalog.storage import check_home_writable, disk_full_error, is_disk_full, sqlite_path
from catalens.config import Settings
from catalens.errors import CatalogCorruptError, ConfigError

MANIFEST = "backup.json"
# never copied: caches rebuilt on demand, SQLite's side files (the snapshot is in catalog.db), locks
_SKIP_TOP = {
    "catalog.db",
    "catalog.db-wal",
    "catalog.db-shm",
    "catalog.db-journal",
    "thumbs",
    "cache",
    MANIFEST,
}
PG_DUMP_HINT = (
    "the catalog database is a server database: back it up with its own tool - "
    "`pg_dump -Fc -d DBNAME -f catalens.dump` (restore: `pg_restore -d DBNAME catalens.dump`); "
    "vectors kept in the database are in that dump"
)


@dataclass
class BackupReport:
    source: str
    destination: str
    database: str
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    counts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _copy_file(src: Path, dst: Path) -> int:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        shutil.copyfileobj(fi, fo, 1 << 20)
        fo.flush()
        os.fsync(fo.fileno())
    return dst.stat().st_size


def _copy_tree(src: Path, dst: Path, report: BackupReport, skip: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if (
            rel.parts[0] in skip
            or path.name == ".lock"
            or path.name.startswith((".write-probe", ".store-id."))
        ):
            continue
        if path.is_file() and not path.is_symlink():
            if path.suffix == ".part" or ".tmp-" in path.name:
                continue
            report.bytes += _copy_file(path, dst / rel)
            report.files += 1


def _copy_indexes(src: Path, dst: Path, report: BackupReport) -> None:
    """Each FAISS folder's current generation, under the lock ``search.index_sync`` takes, so a sync
    cannot swap generations in the middle of the copy."""
    import fcntl

    for folder in sorted(p for p in src.iterdir() if p.is_dir()):
        with open(folder / ".lock", "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                head = folder / "current.json"
                if not head.exists():
                    continue
                try:
                    gen = int(json.loads(head.read_text())["generation"])
                except (ValueError, KeyError, TypeError):
                    continue  # a damaged index is not copied: it is rebuilt after a restore
                gen_dir = folder / f"gen-{gen:06d}"
                _copy_tree(gen_dir, dst / folder.name / gen_dir.name, report)
                report.bytes += _copy_file(head, dst / folder.name / head.name)
                report.files += 1
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _snapshot_sqlite(db_file: Path, dest: Path) -> None:
    """Copy the committed state of ``db_file`` to ``dest`` with SQLite's online backup API, in one step
    (one read transaction, so the copy is one consistent snapshot; writers continue in WAL mode)."""
    src = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=60)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst, pages=-1)
        problems = [r[0] for r in dst.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        if is_disk_full(exc):
            raise disk_full_error(dest, "writing the backup") from exc
        raise CatalogCorruptError(
            f"cannot back up {db_file}: {exc}; run `catalens doctor` on the home"
        ) from exc
    finally:
        dst.close()
        src.close()
    if problems != ["ok"]:
        raise CatalogCorruptError(f"the copy of {db_file} is damaged ({'; '.join(problems[:3])}): the source "
                                  "database is damaged; run `catalens doctor` on the home")  # fmt: skip


def _check_dest_empty(dest: Path, what: str) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(f"{what} {dest} is not empty; give a new or empty folder")


def backup(settings: Settings, dest: Path) -> BackupReport:
    """Copy the home of ``settings`` to ``dest`` (a new or empty folder); see the module docstring."""
    t0 = time.perf_counter()
    home = settings.home
    if not (home / "catalog.db").exists() and sqlite_path(settings.database_url) is not None:
        raise ConfigError(f"no catalog at {home} (no catalog.db); check --home")
    dest = Path(dest)
    _check_dest_empty(dest, "backup folder")
    dest.mkdir(parents=True, exist_ok=True)
    report = BackupReport(str(home.resolve()), str(dest.resolve()), settings.database_url)
    db_file = sqlite_path(settings.database_url)
    try:
        if db_file is not None:
            _snapshot_sqlite(db_file, dest / "catalog.db")  # FIRST: see the module docstring
            report.files += 1
            report.bytes += (dest / "catalog.db").stat().st_size
            db_copy = "catalog.db"
        else:
            report.notes.append(PG_DUMP_HINT)
            db_copy = None
        for entry in sorted(home.iterdir()):
            if entry.name in _SKIP_TOP:
                continue
            if entry.name == "index" and entry.is_dir():
                _copy_indexes(entry, dest / "index", report)
            elif entry.is_dir():
                _copy_tree(entry, dest / entry.name, report)
            elif entry.is_file():
                report.bytes += _copy_file(entry, dest / entry.name)
                report.files += 1
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(dest, "writing the backup") from exc
        raise
    if db_copy is not None:
        report.counts = verify_copy(dest, sqlite_url(dest / db_copy))
    manifest = {
        "format": 1,
        "home": report.source,
        "database": db_copy or "not copied (server database: use pg_dump)",
        "database_url": settings.database_url if db_copy is None else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "counts": report.counts,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2))
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def verify_copy(home: Path, db_url: str) -> dict[str, Any]:
    """Counts of a copied home, after checking that every embedding record points inside its vector file."""
    from catalens.catalog.db import CatalogDB
    from catalens.vectors import FileVectorStore

    db = CatalogDB(db_url)
    try:
        info = db.info(max_failures=0)
        models = []
        for rec in db.models():
            n_records = len(db.embedding_positions(rec.model_id, rec.version))
            store = db.vector_store_of(rec.model_id, rec.version) or ""
            if store.startswith("file"):
                fs = FileVectorStore(home / "vectors", rec.model_id, rec.version, rec.dim)
                rows, top = fs.rows_on_disk(), db.max_position(rec.model_id, rec.version)
                if top >= rows:
                    raise CatalogCorruptError(
                        f"the copy of {fs.path} has {rows} rows but records point at row {top}: the vector "
                        "file changed in a way catalens never writes it (truncated?); run `catalens doctor`"
                    )
            models.append({"model": rec.model_id, "version": rec.version, "embeddings": n_records})
        return {"products": info["products"], "images": info["images"], "models": models}
    finally:
        db.close()


def restore(src: Path, settings: Settings, *, force: bool = False) -> BackupReport:
    """Bring the backup ``src`` into the home of ``settings``. A non-empty home is refused unless
    ``force``; then its content is moved aside to ``<home>.before-restore-<time>`` (not deleted).
    Stored image copies (blobs) keep working when the home moved: their paths are rebased."""
    t0 = time.perf_counter()
    src = Path(src)
    manifest_path = src / MANIFEST
    if not manifest_path.exists():
        raise ConfigError(
            f"{src} is not a catalens backup (no {MANIFEST}); give the folder `catalens backup` made"
        )
    manifest = json.loads(manifest_path.read_text())
    home = settings.home
    report = BackupReport(str(src.resolve()), str(home.resolve()), settings.database_url)
    if home.exists() and any(home.iterdir()):
        if not force:
            raise ConfigError(
                f"the home {home} is not empty; restore into a new home (--home NEW), or add --force to move "
                f"its content aside to {home}.before-restore-<time> first"
            )
        aside = home.with_name(f"{home.name}.before-restore-{time.strftime('%Y%m%d-%H%M%S')}")
        home.rename(aside)
        report.notes.append(f"the previous content of the home was moved to {aside}")
    check_home_writable(home)
    db_file = sqlite_path(settings.database_url)
    has_db = (src / "catalog.db").exists()
    if has_db and db_file is None:
        raise ConfigError("the backup holds a SQLite database but this catalog uses a server database; "
                          "restore without --db / CATALENS_DB_URL")  # fmt: skip
    if not has_db:
        report.notes.append(PG_DUMP_HINT.replace("back it up", "restore it"))
    tmp = home / ".restoring"
    try:
        _copy_tree(src, tmp, report)
        (tmp / MANIFEST).unlink(missing_ok=True)
        for entry in sorted(tmp.iterdir()):
            target = home / entry.name
            if entry.name == "catalog.db" and db_file is not None:
                target = db_file
            entry.replace(target)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(home, "restoring the backup") from exc
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if has_db and db_file is not None:
        old_home = str(manifest.get("home") or "")
        new_home = str(home.resolve())
        if old_home and old_home != new_home:
            from catalens.catalog.db import CatalogDB

            db = CatalogDB(settings.database_url)
            try:
                n = db.rebase_stored_paths(old_home, new_home)
            finally:
                db.close()
            if n:
                report.notes.append(f"{n} stored image paths moved from {old_home} to {new_home}")
        report.counts = verify_copy(home, settings.database_url)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report
