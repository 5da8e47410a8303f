"""Schema versioning: a version table plus ordered upgrade steps.

A new database is created at ``SCHEMA_VERSION``. An older one runs each step
``MIGRATIONS[v]`` (v -> v+1) in order, in one transaction per step. A database
newer than this code is refused rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, select

from catalens.catalog.schema import SCHEMA_VERSION, Base, SchemaVersion
from catalens.errors import ConfigError

# MIGRATIONS[v] upgrades a database from version v to v + 1.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}


def current_version(conn: Connection) -> int | None:
    if not inspect(conn).has_table(SchemaVersion.__tablename__):
        return None
    row = conn.execute(select(SchemaVersion.version).order_by(SchemaVersion.id.desc()).limit(1)).first()
    return int(row[0]) if row else None


def ensure_schema(engine: Engine) -> int:
    """Create or upgrade the schema; return the version in force."""
    with engine.begin() as conn:
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
        with engine.begin() as conn:
            step(conn)
            version += 1
            conn.execute(SchemaVersion.__table__.insert().values(version=version))
    with engine.begin() as conn:
        Base.metadata.create_all(conn)  # tables added without data changes
    return version
