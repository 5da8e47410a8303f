"""PostgreSQL restarts in the middle of an ingest (a private cluster per test, so the shared test
server is not disturbed): a clear typed error naming the database, only whole batches committed
(images, embedding rows and vectors agree), and a re-run completes with exact counts."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, make_product_image
from services import pgserver
from services.postgres import service_unavailable
from typer.testing import CliRunner

from catalens.cli import app

runner = CliRunner()
BATCH = 4


@pytest.fixture
def private_pg() -> Iterator[tuple[Path, str]]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        service_unavailable("psycopg is not installed (pip install -e '.[postgres]')")
    if pgserver.bindir() is None:
        service_unavailable("no PostgreSQL server binaries (initdb, pg_ctl) for the restart test")
    folder = Path(tempfile.mkdtemp(prefix="catalens-test-pgfault-"))
    os.chmod(folder, 0o711)
    try:
        url = pgserver.start(folder / "cluster", durable=True, max_connections=20)
    except pgserver.ServerError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        service_unavailable(f"cannot start a private PostgreSQL cluster: {exc}")
    try:
        yield folder / "cluster", url
    finally:
        pgserver.stop(folder / "cluster")
        shutil.rmtree(folder, ignore_errors=True)


def _counts(home: Path, url: str) -> tuple[int, int, int]:
    """(ok images, embedding rows, vectors readable) of the catalog."""
    from sqlalchemy import func, select

    from catalens import Catalog
    from catalens.catalog import EmbeddingRecord, ImageRecord

    with Catalog.open(home, db_url=url) as cat:
        with cat.db.session() as s:
            n_img = s.scalar(select(func.count()).select_from(ImageRecord).where(ImageRecord.status == "ok"))
            n_emb = s.scalar(select(func.count()).select_from(EmbeddingRecord))
        hashes, vecs = cat.vectors("fake-encoder")
        assert len(hashes) == len(vecs)
        return int(n_img or 0), int(n_emb or 0), len(hashes)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_server_restart_mid_batch_is_a_clear_error_and_rerun_is_exact(
    mode: str, tmp_path: Path, fake_encoder: FakeEncoder, private_pg: tuple[Path, str]
) -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    cluster, url = private_pg
    port = url.split(":")[-1].split("/")[0]
    root = tmp_path / "photos"
    n = 6 * BATCH
    for i in range(n):
        make_product_image(root / f"p{i}.jpg", seed=i)
    home = tmp_path / "home"
    home.mkdir()
    (home / "catalens.toml").write_text(f"batch_size = {BATCH}\n")
    args = ["--home", str(home), "--db", url, "ingest", str(root), "--json", "-q"]

    seen = {"embedding_inserts": 0, "restarted": False}

    def restart_in_third_batch(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if str(conn.engine.url.port) != port or not statement.lstrip().upper().startswith(
            "INSERT INTO EMBEDDINGS"
        ):
            return
        seen["embedding_inserts"] += 1
        if seen["embedding_inserts"] == 3 and not seen["restarted"]:
            seen["restarted"] = True
            pgserver.restart(cluster, mode)  # this batch's images are inserted, not committed

    event.listen(Engine, "before_cursor_execute", restart_in_third_batch)
    try:
        res = runner.invoke(app, args)
    finally:
        event.remove(Engine, "before_cursor_execute", restart_in_third_batch)
    assert seen["restarted"]
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit), res.exception
    expected_db = url  # no password in the URL: printed as is
    assert f"error: database {expected_db}" in " ".join(res.output.split()), res.output
    assert "connection was lost" in res.output and "run the job again" in " ".join(res.output.split())

    # nothing half-written: two whole batches, and images, embedding rows and vectors agree
    assert _counts(home, url) == (2 * BATCH, 2 * BATCH, 2 * BATCH)

    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert (rep["new_images"], rep["embedded"], rep["already_present"], rep["failed"]) == (
        n - 2 * BATCH,
        n - 2 * BATCH,
        2 * BATCH,
        0,
    )
    assert _counts(home, url) == (n, n, n)

    # each stored vector is its own image's
    from catalens import Catalog
    from catalens.imageio import open_image, sha256_bytes

    enc = FakeEncoder()
    by_sha = {sha256_bytes(p.read_bytes()): p for p in root.glob("*.jpg")}
    with Catalog.open(home, db_url=url) as cat:
        hashes, vecs = cat.vectors("fake-encoder")
        statuses = [j["status"] for j in cat.info()["recent_jobs"]]
    assert sorted(hashes) == sorted(by_sha)
    for h, v in zip(hashes, vecs, strict=True):
        ref = enc.encode(enc.preprocess(open_image(by_sha[h], draft_to=512).image)[None])[0]
        np.testing.assert_allclose(v, ref / np.linalg.norm(ref), rtol=1e-4, atol=1e-5)
    assert statuses[0] == "done" and statuses[1] in {"failed", "running", "interrupted"}


def test_unreachable_server_names_the_database(tmp_path: Path, private_pg: tuple[Path, str]) -> None:
    cluster, url = private_pg
    pgserver.stop(cluster)
    res = runner.invoke(app, ["--home", str(tmp_path / "home"), "--db", url, "info"])
    assert res.exit_code == 2
    out = " ".join(res.output.split())
    assert f"error: database {url}: cannot connect" in out and "Traceback" not in out
