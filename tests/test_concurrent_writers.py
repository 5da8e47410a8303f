"""Many writers on one catalog: processes ingest overlapping manifests into one home at the same
time, on SQLite (file vectors) and PostgreSQL (vectors in the database, and file vectors).

Every stored vector must be its own image's (compared with a fresh encoding), counts exact, no
writer fails. Before database-allocated rows, two jobs computed the same next free row and one
job's vectors overwrote the other's (and a unique-constraint race killed a job)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from catalens import Catalog
from catalens.imageio import open_image, sha256_bytes
from tests.conftest import FakeEncoder, make_product_image

WRITER = Path(__file__).with_name("concurrent_writer.py")


def _manifests(tmp_path: Path, n_images: int, n_writers: int, per_writer: int) -> list[Path]:
    photos = tmp_path / "photos"
    for i in range(n_images):
        make_product_image(photos / f"p{i}.jpg", seed=1000 + i)
    rng = np.random.default_rng(7)
    out = []
    for w in range(n_writers):
        # overlapping windows that together cover every image, each in its own order
        picks = rng.permutation([(w * n_images // n_writers + j) % n_images for j in range(per_writer)])
        rows = ["image,id,title"] + [f"photos/p{i}.jpg,P{i},item {i}" for i in picks]
        path = tmp_path / f"writer{w}.csv"
        path.write_text("\n".join(rows) + "\n")
        out.append(path)
    return out


def _db_url(request: pytest.FixtureRequest, backend: str) -> str | None:
    if backend == "sqlite":
        return None
    from services.postgres import create_database, drop_database

    admin = request.getfixturevalue("pg_server")
    name = f"catalens_conc_{uuid.uuid4().hex[:12]}"
    url = create_database(admin, name)
    request.addfinalizer(lambda: drop_database(admin, name))
    return url


def _run_writers(home: Path, manifests: list[Path], db_url: str | None, store: str) -> list[dict]:
    env = {**os.environ, "CATALENS_VECTOR_STORE": store}
    if db_url:
        env["CATALENS_DB_URL"] = db_url
    procs = [
        subprocess.Popen(
            [sys.executable, str(WRITER), str(home), str(m)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for m in manifests
    ]
    reports = []
    for p in procs:
        out, errs = p.communicate(timeout=240)
        assert p.returncode == 0, errs[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


@pytest.mark.parametrize(
    ("backend", "store"),
    [("sqlite", "file"), ("postgresql", "db"), ("postgresql", "file")],
    ids=["sqlite-file", "pg-db", "pg-file"],
)
def test_concurrent_writers_keep_every_vector_its_own(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str, store: str
) -> None:
    n_images = 40
    manifests = _manifests(tmp_path, n_images, n_writers=4, per_writer=25)
    home = tmp_path / "home"
    db_url = _db_url(request, backend)
    reports = _run_writers(home, manifests, db_url, store)
    assert all(r["failed"] == 0 and r["status"] == "done" for r in reports)
    # every image embedded exactly once across the writers (a lost race is not counted twice)

    with Catalog.open(home, db_url=db_url, vector_store=store) as cat:
        info = cat.info()
        assert info["images"] == {"ok": n_images}
        assert info["products"] == n_images
        assert [m["embeddings"] for m in info["models"]] == [n_images]
        rec = cat.db.models()[-1]
        positions = [p for _, p in cat.db.embedding_positions(rec.model_id, rec.version)]
        assert len(set(positions)) == n_images
        hashes, vecs = cat.vectors("fake-encoder")
        assert sorted(cat.db.product_links()) == sorted(
            {(f"P{i}", sha256_bytes((tmp_path / "photos" / f"p{i}.jpg").read_bytes())) for i in range(n_images)}
        )
    enc = FakeEncoder()
    by_sha = {sha256_bytes(p.read_bytes()): p for p in (tmp_path / "photos").glob("*.jpg")}
    assert set(hashes) == set(by_sha)
    fresh = np.stack([enc.encode(enc.preprocess(open_image(by_sha[h], draft_to=512).image)[None])[0] for h in hashes])
    fresh /= np.linalg.norm(fresh, axis=1, keepdims=True)
    cos = np.sum(fresh * vecs, axis=1)
    assert cos.min() >= 0.9999, f"{int((cos < 0.9999).sum())} stored vectors are not their image's"
    # every image stored and embedded exactly once across the writers (a lost race is not counted)
    assert sum(r["new_images"] for r in reports) == n_images
    assert sum(r["embedded"] for r in reports) == n_images
    if store == "file":
        assert list((home / "vectors").glob("*.f32")), "file store wrote no vector file"


def test_file_store_of_another_home_is_refused(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    """Two homes (two machines) sharing one database must not share file vectors: the second home
    would read holes. It is refused with the way out named."""
    from catalens.errors import ConfigError

    make_product_image(tmp_path / "a" / "x.jpg", seed=1)
    db_url = f"sqlite:///{tmp_path / 'shared.db'}"
    with Catalog.open(tmp_path / "home1", db_url=db_url, vector_store="file") as cat:
        cat.ingest(tmp_path / "a")
    with Catalog.open(tmp_path / "home2", db_url=db_url, vector_store="file") as cat:
        with pytest.raises(ConfigError, match="another home.*CATALENS_VECTOR_STORE=db"):
            cat.ingest(tmp_path / "a")
        with pytest.raises(ConfigError, match="another home"):
            cat.vectors("fake-encoder")
