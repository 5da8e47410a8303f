"""Schema migrations on SQLite and PostgreSQL: a catalog made at schema v1 (file vectors whose rows
were handed out by the process, duplicate failure rows) opens under v2 with its data intact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from catalens import Catalog
from catalens.catalog.schema import (
    SCHEMA_VERSION,
    EmbeddingVector,
    ImageRecord,
    SchemaVersion,
    VectorAllocation,
)
from tests.conftest import FakeEncoder, make_product_image

pytestmark = pytest.mark.usefixtures("catalog_backend")


def _downgrade_to_v1(cat: Catalog) -> None:
    """Turn a fresh v2 database into what catalens wrote at schema v1."""
    with cat.db.engine.begin() as conn:
        conn.execute(text("DROP INDEX ux_images_failed_source"))
        EmbeddingVector.__table__.drop(conn)
        VectorAllocation.__table__.drop(conn)
        conn.execute(delete(SchemaVersion))
        conn.execute(SchemaVersion.__table__.insert().values(version=1))
        # v1 could store one source's failure twice (two runs racing)
        for reason in ("first", "second"):
            conn.execute(
                ImageRecord.__table__.insert().values(
                    source="/x/broken.jpg", status="failed", error_kind="truncated", error=reason
                )
            )


def test_v1_catalog_upgrades_in_place(tmp_path: Path, home: Path, fake_encoder: FakeEncoder) -> None:
    for i in range(6):
        make_product_image(tmp_path / "a" / f"{i}.jpg", seed=i)
    for i in range(6, 9):
        make_product_image(tmp_path / "b" / f"{i}.jpg", seed=i)
    with Catalog.open(home, batch_size=4, vector_store="file") as cat:
        cat.ingest(tmp_path / "a")
        before_hashes, before = cat.vectors("fake-encoder")
        _downgrade_to_v1(cat)
    with Catalog.open(home, batch_size=4) as cat:
        assert cat.db.schema_version == SCHEMA_VERSION == 2
        names = set(inspect(cat.db.engine).get_table_names())
        assert {"vector_allocations", "embedding_vectors"} <= names
        with cat.db.session() as s:
            alloc = s.scalars(select(VectorAllocation)).one()
            failed = list(s.scalars(select(ImageRecord.error).where(ImageRecord.status == "failed")))
            assert s.scalar(select(func.count()).select_from(SchemaVersion)) == 2
        # seeded past the last committed row, the v1 file store not yet claimed by a home
        assert alloc.next_position == 6 and alloc.store == "file:"
        assert failed == ["second"]  # one row per failed source, the newest kept
        hashes, vectors = cat.vectors("fake-encoder")
        assert hashes == before_hashes and np.array_equal(vectors, before)
        assert cat.db.vector_store_of(alloc.model_id, alloc.version) == f"file:{(home / 'vectors' / '.store-id').read_text()}"
        # new writers continue after the old rows, and the unique failure index holds
        rep = cat.ingest(tmp_path / "b")
        assert rep.embedded == 3
        positions = sorted(p for _, p in cat.db.embedding_positions(alloc.model_id, alloc.version))
        assert positions == list(range(9))
        assert len(cat.vectors("fake-encoder")[0]) == 9
        with pytest.raises(IntegrityError), cat.db.session() as s:
            s.execute(ImageRecord.__table__.insert().values(source="/x/broken.jpg", status="failed"))


def test_v1_rows_on_disk_past_the_last_commit_are_never_reused(
    tmp_path: Path, home: Path, fake_encoder: FakeEncoder
) -> None:
    """A v1 file may end with rows a killed v1 writer wrote but never committed: v2 allocates after them."""
    for i in range(4):
        make_product_image(tmp_path / "a" / f"{i}.jpg", seed=i)
    make_product_image(tmp_path / "b" / "9.jpg", seed=9)
    with Catalog.open(home, batch_size=4, vector_store="file") as cat:
        cat.ingest(tmp_path / "a")
        _downgrade_to_v1(cat)
    vfile = next((home / "vectors").glob("*.f32"))
    with open(vfile, "ab") as fh:  # two orphan rows from a v1 crash
        fh.write(np.ones((2, 16), dtype=np.float32).tobytes())
    with Catalog.open(home) as cat:
        cat.ingest(tmp_path / "b")
        rec = cat.db.models()[-1]
        assert sorted(p for _, p in cat.db.embedding_positions(rec.model_id, rec.version)) == [0, 1, 2, 3, 6]
