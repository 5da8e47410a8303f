"""PostgreSQL fixtures (a pytest plugin, listed in ``tests/conftest.py``'s ``pytest_plugins``).

``pg_server`` (session): the URL of a PostgreSQL server's ``postgres`` database: the one of
``$CATALENS_TEST_PG_URL`` (started by ``.ci/start-postgres.sh``), else a throw-away cluster started
here with ``pgserver.start`` when the server binaries exist. When neither works the test fails under
``CI=true`` and is skipped, with the reason, elsewhere.

``catalog_backend`` (function, parametrised ``sqlite`` / ``pg``): on ``pg`` every catalog the test
opens without an explicit ``db_url`` lives in a fresh, empty PostgreSQL database of its own: one per
catalens home (a home is a catalog: its vector files and its database go together), created on
first use and dropped after the test. On ``sqlite`` nothing changes (``<home>/catalog.db``).
Apply it to a module with ``pytestmark = pytest.mark.usefixtures("catalog_backend")``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services import pgserver
from services.availability import service_unavailable

PG_URL_ENV = "CATALENS_TEST_PG_URL"


def dsn(url: str) -> str:
    """The libpq form of a SQLAlchemy ``postgresql+psycopg://`` URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


def _connect(url: str):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(dsn(url), autocommit=True, connect_timeout=10)


def drop_database(admin_url: str, name: str) -> None:
    """Drop ``name``, ending any connection a test left open to it first."""
    with _connect(admin_url) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_database(admin_url: str, name: str) -> str:
    with _connect(admin_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
    return with_database(admin_url, name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        service_unavailable("psycopg is not installed (pip install -e '.[postgres]')")
    url = os.environ.get(PG_URL_ENV)
    if url:
        try:
            pgserver.wait_ready(url, timeout=10)
        except pgserver.ServerError as exc:
            service_unavailable(f"${PG_URL_ENV}: {exc}")
        yield url
        return
    if pgserver.bindir() is None:
        service_unavailable(
            "no PostgreSQL server binaries (initdb, pg_ctl) and $CATALENS_TEST_PG_URL is not set: "
            "install Debian's `postgresql` package to run the PostgreSQL tests"
        )
    folder = Path(tempfile.mkdtemp(prefix="catalens-test-pg-"))
    try:
        os.chmod(folder, 0o711)
        url = pgserver.start(folder / "cluster")
    except (pgserver.ServerError, OSError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        service_unavailable(f"cannot start a PostgreSQL test server: {exc}")
    try:
        yield url
    finally:
        pgserver.stop(folder / "cluster")
        shutil.rmtree(folder, ignore_errors=True)


class HomeDatabases:
    """One fresh PostgreSQL database per catalens home, created on first use."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.by_home: dict[str, str] = {}

    def url_for(self, home: Path) -> str:
        key = str(Path(home).resolve())
        if key not in self.by_home:
            self.by_home[key] = f"catalens_test_{uuid.uuid4().hex[:16]}"
            create_database(self.admin_url, self.by_home[key])
        return with_database(self.admin_url, self.by_home[key])

    def drop_all(self) -> None:
        for name in self.by_home.values():
            drop_database(self.admin_url, name)
        self.by_home.clear()


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "pg"])
def catalog_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``"sqlite"`` or ``"postgresql"``: the database every catalog of the test is opened on."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    admin = request.getfixturevalue("pg_server")
    from catalens.config import Settings

    dbs = HomeDatabases(admin)

    def database_url(self: Settings) -> str:
        return self.db_url or dbs.url_for(self.home)

    monkeypatch.delenv("CATALENS_DB_URL", raising=False)
    monkeypatch.setattr(Settings, "database_url", property(database_url))
    try:
        yield "postgresql"
    finally:
        dbs.drop_all()
