"""Milvus fixtures (a pytest plugin, listed in ``tests/conftest.py``'s ``pytest_plugins``).

``milvus_server`` (session): the ``milvus://127.0.0.1:PORT`` URI of a real Milvus server: the one
of ``$CATALENS_TEST_MILVUS_URI`` (started by ``.ci/start-milvus.sh``), else a throw-away server
started here with ``milvusserver.start`` when the ``milvus`` package (its ``milvus-server``) is
installed. When neither works the test fails under ``CI=true`` and is skipped, with the reason,
elsewhere.

``milvus_collection`` (function): a collection name no other test uses (tests share the server).

``milvus_database`` (function): ``milvus://127.0.0.1:PORT/<database>``, a server database of this
test only (a whole catalog's index goes there; its collection names are the catalog's own),
dropped after the test.

``closed_port_uri`` (function): ``milvus://127.0.0.1:PORT`` where nothing listens.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services import milvusserver
from services.availability import service_unavailable as _unavailable

MILVUS_URI_ENV = "CATALENS_TEST_MILVUS_URI"


def _port(uri: str) -> int:
    m = re.fullmatch(r"(?:milvus|https?)://127\.0\.0\.1:(\d+)/?", uri.strip()) or re.search(r":(\d+)/?$", uri)
    if not m:
        raise ValueError(f"cannot read a port from {uri!r}")
    return int(m.group(1))


@pytest.fixture(scope="session")
def milvus_server() -> Iterator[str]:
    try:
        import pymilvus  # noqa: F401
    except ImportError:
        _unavailable("pymilvus is not installed (pip install -e '.[milvus]')")
    uri = os.environ.get(MILVUS_URI_ENV)
    if uri:
        if not milvusserver.answers(_port(uri), timeout=10):
            _unavailable(f"${MILVUS_URI_ENV}={uri}: no Milvus answers there")
        yield uri
        return
    if milvusserver.launcher() is None:
        _unavailable(
            "no Milvus server launcher (milvus-server) and $CATALENS_TEST_MILVUS_URI is not set: "
            "pip install 'milvus>=2.3,<2.4' (in the dev extra) to run the Milvus server tests"
        )
    folder = Path(tempfile.mkdtemp(prefix="catalens-test-milvus-"))
    try:
        uri = milvusserver.start(folder)
    except (milvusserver.ServerError, OSError) as exc:
        milvusserver.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)
        _unavailable(f"cannot start a Milvus test server: {exc}")
    try:
        yield uri
    finally:
        milvusserver.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def milvus_collection() -> str:
    """An index name of this test only: collections on the shared server never collide."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def milvus_database(milvus_server: str, milvus_collection: str) -> Iterator[str]:
    yield f"{milvus_server}/{milvus_collection}"
    from pymilvus import MilvusClient

    http = "http://" + milvus_server.split("://", 1)[1]
    admin = MilvusClient(uri=http, timeout=30)
    if milvus_collection in admin.list_databases():
        inside = MilvusClient(uri=http, db_name=milvus_collection, timeout=30)
        for name in inside.list_collections():
            inside.drop_collection(name)
        admin.drop_database(milvus_collection)


@pytest.fixture
def closed_port_uri() -> str:
    """``milvus://127.0.0.1:PORT`` with nothing listening (a port bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    return f"milvus://127.0.0.1:{port}"
