from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, make_product_image

from catalens import Catalog
from catalens.errors import ManifestError

pytestmark = pytest.mark.usefixtures("catalog_backend")


def _folder(tmp_path: Path, n: int) -> Path:
    root = tmp_path / "photos"
    for i in range(n):
        make_product_image(root / f"sub{i % 2}" / f"p{i}.jpg", seed=i)
    return root


def test_folder_ingest_embeds_and_is_idempotent(
    tmp_path: Path, home: Path, fake_encoder: FakeEncoder
) -> None:
    root = _folder(tmp_path, 10)
    with Catalog.open(home, batch_size=4) as cat:
        rep = cat.ingest(root)
        assert (rep.seen, rep.new_images, rep.embedded, rep.failed) == (10, 10, 10, 0)
        hashes, vecs = cat.vectors("fake-encoder")
        assert len(hashes) == 10 and vecs.shape == (10, 16)
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
        again = cat.ingest(root)
        assert (again.new_images, again.embedded, again.already_present) == (0, 0, 10)
        info = cat.info()
        assert info["images"] == {"ok": 10} and info["products"] == 10
        assert info["models"][0]["embeddings"] == 10


def test_bad_inputs_are_listed_and_good_ones_kept(
    tmp_path: Path, home: Path, fake_encoder: FakeEncoder
) -> None:
    from badcorpus import make_bad_corpus

    root = _folder(tmp_path, 6)
    bad = make_bad_corpus(root / "bad")
    with Catalog.open(home, batch_size=4) as cat:
        rep = cat.ingest(root)
    assert rep.new_images == 6 and rep.embedded == 6
    by_name = {Path(f.source).name: f for f in rep.failures}
    assert set(by_name) == set(bad)
    for name, kind in bad.items():
        assert by_name[name].kind == kind, (name, by_name[name])
        assert by_name[name].reason


def test_manifest_products_with_several_images(tmp_path: Path, home: Path, fake_encoder: FakeEncoder) -> None:
    img_dir = tmp_path / "m" / "images"
    rows = ["image,id,title,colour"]
    for i in range(6):
        make_product_image(img_dir / f"{i}.png", seed=100 + i)
        rows.append(f"images/{i}.png,P{i // 2},Shirt {i // 2},Blue")
    rows.append(",P9,Broken row,Red")
    rows.append("images/missing.png,P8,Missing,Red")
    manifest = tmp_path / "m" / "labels.csv"
    manifest.write_text("\n".join(rows) + "\n")
    with Catalog.open(home) as cat:
        rep = cat.ingest(manifest)
        assert rep.new_images == 6 and rep.failed == 2
        kinds = sorted(f.kind for f in rep.failures)
        assert kinds == ["manifest", "unreadable"]
        from sqlalchemy import select

        from catalens.catalog import Product, ProductImage

        with cat.db.session() as s:
            prods = {p.id: p for p in s.scalars(select(Product))}
            assert prods["P0"].title == "Shirt 0" and prods["P0"].attrs == {"colour": "Blue"}
            links = s.scalars(select(ProductImage).where(ProductImage.product_id == "P1")).all()
            assert len(links) == 2
        assert cat.ingest(manifest).new_images == 0


def test_manifest_errors_name_file_and_column(tmp_path: Path, home: Path, fake_encoder: FakeEncoder) -> None:
    manifest = tmp_path / "bad.csv"
    manifest.write_text("image,id\na.jpg,1\n")
    with Catalog.open(home) as cat:
        with pytest.raises(ManifestError, match="bad.csv.*no column 'title'"):
            cat.ingest(manifest, text_col="title")
        empty = tmp_path / "empty.csv"
        empty.write_text("")
        with pytest.raises(ManifestError, match="empty.csv"):
            cat.ingest(empty)
        nocol = tmp_path / "nocol.csv"
        nocol.write_text("sku,name\n1,x\n")
        with pytest.raises(ManifestError, match="no image column"):
            cat.ingest(nocol)


def test_jsonl_and_parquet_manifests(tmp_path: Path, home: Path, fake_encoder: FakeEncoder) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for i in range(4):
        make_product_image(tmp_path / f"{i}.jpg", seed=200 + i)
    jl = tmp_path / "items.jsonl"
    jl.write_text(
        "\n".join(json.dumps({"path": f"{i}.jpg", "sku": f"S{i}", "name": f"item {i}"}) for i in range(2))
        + "\n{oops\n"
    )
    pq.write_table(
        pa.table({"file": ["2.jpg", "3.jpg"], "product_id": ["S2", "S3"]}), tmp_path / "items.parquet"
    )
    with Catalog.open(home) as cat:
        rep = cat.ingest([jl, tmp_path / "items.parquet"])
        assert rep.new_images == 4 and rep.failed == 1 and "invalid JSON" in rep.failures[0].reason


def test_interrupted_ingest_resumes_exactly(tmp_path: Path, home: Path, fake_encoder: FakeEncoder) -> None:
    root = _folder(tmp_path, 20)
    real = fake_encoder.encode

    def flaky(batch: np.ndarray) -> np.ndarray:
        if fake_encoder.calls >= 2:
            raise KeyboardInterrupt
        return real(batch)

    fake_encoder.encode = flaky  # type: ignore[method-assign]
    with Catalog.open(home, batch_size=4) as cat:
        with pytest.raises(KeyboardInterrupt):
            cat.ingest(root)
        assert cat.info()["images"] == {"ok": 8}
    fake_encoder.encode = real  # type: ignore[method-assign]
    with Catalog.open(home, batch_size=4) as cat:
        rep = cat.ingest(root)
        assert rep.new_images == 12
        hashes, vecs = cat.vectors("fake-encoder")
        assert len(set(hashes)) == 20 and vecs.shape == (20, 16)
        assert cat.info()["recent_jobs"][1]["status"] == "interrupted"


def test_crash_between_vector_write_and_commit(tmp_path: Path, home: Path, fake_encoder: FakeEncoder) -> None:
    root = _folder(tmp_path, 12)
    with Catalog.open(home, batch_size=4, vector_store="file") as cat:
        real = cat.db.record_batch
        calls = {"n": 0}

        def dying(**kw: object) -> object:
            calls["n"] += 1
            if calls["n"] == 2:
                raise SystemExit("killed")  # vectors of batch 2 are on disk, its rows never committed
            return real(**kw)  # type: ignore[arg-type]

        cat.db.record_batch = dying  # type: ignore[method-assign]
        with pytest.raises(SystemExit):
            cat.ingest(root)
    vfile = next((home / "vectors").glob("*.f32"))
    assert vfile.stat().st_size == 8 * 16 * 4  # one committed batch + one orphan batch
    with Catalog.open(home, batch_size=4) as cat:
        rep = cat.ingest(root)
        assert rep.new_images == 8
        hashes, vecs = cat.vectors("fake-encoder")
        assert len(hashes) == 12
        rec = cat.db.models()[-1]
        used = sorted(p for _, p in cat.db.embedding_positions(rec.model_id, rec.version))
    # the dead writer's rows are never reused nor truncated (another writer could own rows past them):
    # they stay an unused hole, and the re-run writes after them
    assert vfile.stat().st_size == 16 * 16 * 4
    assert used == [0, 1, 2, 3, *range(8, 16)]
    # each stored vector is the one of its own image
    enc = FakeEncoder()
    from catalens.imageio import open_image, sha256_bytes

    by_sha = {sha256_bytes(p.read_bytes()): p for p in root.rglob("*.jpg")}
    for h, v in zip(hashes, vecs, strict=True):
        x = enc.preprocess(open_image(by_sha[h], draft_to=512).image)[None]
        ref = enc.encode(x)[0]
        np.testing.assert_allclose(v, ref / np.linalg.norm(ref), rtol=1e-4, atol=1e-5)


def test_embed_command_fills_missing_embeddings(
    tmp_path: Path, home: Path, fake_encoder: FakeEncoder
) -> None:
    root = _folder(tmp_path, 5)
    with Catalog.open(home) as cat:
        rep = cat.ingest(root, embed=False)
        assert rep.new_images == 5 and rep.embedded == 0
        rep2 = cat.embed()
        assert rep2.embedded == 5 and rep2.new_images == 0
        assert cat.embed().embedded == 0


def test_newer_schema_is_refused(tmp_path: Path, home: Path) -> None:
    from sqlalchemy import insert

    from catalens.catalog.schema import SchemaVersion
    from catalens.errors import ConfigError

    with Catalog.open(home) as cat:
        with cat.db.engine.begin() as conn:
            conn.execute(insert(SchemaVersion).values(version=999))
    with pytest.raises(ConfigError, match="newer"):
        Catalog.open(home)


def test_jobs_of_killed_processes_show_as_interrupted(home: Path) -> None:
    import socket
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    with Catalog.open(home) as cat:
        job_id = cat.db.start_job("ingest", "x", {})
        from catalens.catalog.schema import Job

        with cat.db.session() as s:
            s.get(Job, job_id).options = {"owner": {"host": socket.gethostname(), "pid": int(dead.stdout)}}
        live = cat.db.start_job("ingest", "y", {})
        jobs = {j["id"]: j["status"] for j in cat.info()["recent_jobs"]}
        assert jobs[job_id] == "interrupted" and jobs[live] == "running"


def test_pixel_hash_does_not_depend_on_embedding(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    big = make_product_image(tmp_path / "src" / "big.jpg", seed=7, size=(1200, 1600))
    hashes = []
    for embed in (False, True):
        with Catalog.open(tmp_path / f"home-{embed}") as cat:
            cat.ingest(big.parent, embed=embed)
            hashes.append(cat.db.ok_images()[0].pixel_sha256)
    assert hashes[0] == hashes[1] is not None


def test_prefetch_map_keeps_order_and_lowers_worker_priority() -> None:
    import os
    import threading

    from catalens.ingest.prefetch import prefetch_map

    def work(i: int) -> tuple[int, int]:
        return i * i, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    base = os.getpriority(os.PRIO_PROCESS, 0)
    out = list(prefetch_map(work, range(50), workers=2, ahead=4, nice=5))
    assert [v for v, _ in out] == [i * i for i in range(50)]
    assert {p for _, p in out} == {min(19, base + 5)}
    # the caller's own priority is untouched
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base
    assert {p for _, p in prefetch_map(work, range(5), nice=0)} == {base}


def test_catalog_lives_on_the_parametrised_backend(catalog_backend: str, home: Path) -> None:
    with Catalog.open(home) as cat:
        assert cat.db.engine.dialect.name == catalog_backend
        assert cat.info()["database"].startswith("sqlite:///" if catalog_backend == "sqlite" else "postgresql")


def test_too_long_product_id_is_a_row_failure_on_every_backend(
    tmp_path: Path, home: Path, fake_encoder: FakeEncoder
) -> None:
    for i in range(2):
        make_product_image(tmp_path / "img" / f"{i}.jpg", seed=300 + i)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"image,id\nimg/0.jpg,{'x' * 513}\nimg/1.jpg,short\n")
    with Catalog.open(home) as cat:
        rep = cat.ingest(manifest)
        assert (rep.new_images, rep.failed) == (1, 1)
        assert rep.failures[0].kind == "manifest" and "513 characters" in rep.failures[0].reason
        assert rep.failures[0].source.endswith("0.jpg")
        assert cat.info()["products"] == 1
