"""Schema versioning: a version table plus ordered upgrade steps.

A new database is created at ``SCHEMA_VERSION``. An older one runs each step
``MIGRATIONS[v]`` (v -> v+1) in order, in one transaction per step. A database
newer than this code is refused rather than guessed at.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from catalens.catalog.schema import SCHEMA_VERSION, Base, SchemaVersion
from catalens.errors import ConfigError


def _v1_to_v2(conn: Connection) -> None:
    """Database-allocated vector rows and one failure row per source.

    Adds ``vector_allocations`` (seeded for every model with embeddings: the next position is past
    the last committed row; the local file store raises it past any rows on disk when it first
    allocates), ``embedding_vectors`` (vectors kept in the database) and the unique index on
    failed sources (duplicate failure rows of one source, possible before, keep the newest)."""
    from sqlalchemy import func, insert

    from catalens.catalog.schema import EmbeddingRecord, EmbeddingVector, ImageRecord, VectorAllocation

    VectorAllocation.__table__.create(conn, checkfirst=True)
    EmbeddingVector.__table__.create(conn, checkfirst=True)
    rows = conn.execute(
        select(
            EmbeddingRecord.model_id, EmbeddingRecord.model_version, func.max(EmbeddingRecord.position)
        ).group_by(EmbeddingRecord.model_id, EmbeddingRecord.model_version)
    ).all()
    if rows:
        conn.execute(
            insert(VectorAllocation),
            [
                {"model_id": m, "version": v, "store": "file:", "next_position": int(p) + 1}
                for m, v, p in rows
            ],
        )
    failed = ImageRecord.__table__
    keep = (
        select(func.max(failed.c.id)).where(failed.c.status == "failed").group_by(failed.c.source)
    ).scalar_subquery()
    conn.execute(failed.delete().where(failed.c.status == "failed", failed.c.id.not_in(keep)))
    for index in failed.indexes:
        if index.name == "ux_images_failed_source":
            index.create(conn, checkfirst=True)


# MIGRATIONS[v] upgrades a database from version v to v + 1.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _v1_to_v2}


def current_version(conn: Connection) -> int | None:
    if not inspect(conn).has_table(SchemaVersion.__tablename__):
        return None
    row = conn.execute(select(SchemaVersion.version).order_by(SchemaVersion.id.desc()).limit(1)).first()
    return int(row[0]) if row else None


def ensure_schema(engine: Engine) -> int:
    """Create or upgrade the schema; return the version in force.

    Safe when several processes open one new or old catalog at once: the steps run under a
    database-wide lock (a transaction-level advisory lock on PostgreSQL, the write lock on SQLite),
    and whoever comes second finds the work done."""
    for attempt in range(5):
        try:
            return _ensure_schema(engine)
        except (OperationalError, ProgrammingError, IntegrityError):
            # SQLite: another process created the tables between our check and our CREATE
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A transaction holding the schema lock of the database."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7310146)"))  # one key for catalens' schema
        yield conn


def _ensure_schema(engine: Engine) -> int:
    with _locked(engine) as conn:
        version = current_version(conn)
        if version is None:
            Base.metadata.create_all(conn)
            conn.execute(SchemaVersion.__table__.insert().values(version=SCHEMA_VERSION))
            return SCHEMA_VERSION
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"the catalog database is at schema version {version}, newer than this catalens "
            f"({SCHEMA_VERSION}); upgrade catalens"
        )
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise ConfigError(f"no migration from schema version {version}")
        with _locked(engine) as conn:
            if (current_version(conn) or 0) > version:
                version = current_version(conn) or version  # another process ran this step
                continue
            step(conn)
            version += 1
            conn.execute(SchemaVersion.__table__.insert().values(version=version))
    with _locked(engine) as conn:
        Base.metadata.create_all(conn)  # tables added without data changes
    return version
