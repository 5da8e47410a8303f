"""``catalens backup`` while an ingest is writing, then ``catalens restore``: the copy is one consistent
snapshot (every record's vector is the one the live home holds for that image), doctor finds it
sound, a re-run of the ingest on the restored home completes it, and then search answers equal the
live home's. Restore refuses a non-empty home without --force."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
from conftest import FakeEncoder, make_product_image
from typer.testing import CliRunner

from catalens import Catalog
from catalens.cli import app

runner = CliRunner()


def _photos(tmp_path: Path, n: int) -> Path:
    root = tmp_path / "photos"
    for i in range(n):
        make_product_image(root / f"p{i:03d}.png", seed=i)
    return root


def _answers(home: Path, root: Path, queries: list[str]) -> list[list[tuple[str, float]]]:
    with Catalog.open(home) as cat:
        return [
            [(r.image_sha256, round(r.score, 5)) for r in cat.search_image(root / q, 5, model="fake-encoder")]
            for q in queries
        ]


def test_backup_during_an_ingest_then_restore(tmp_path: Path, home: Path, fake_encoder: FakeEncoder) -> None:
    root = _photos(tmp_path, 120)
    committed = threading.Event()
    proceed = threading.Event()
    done: dict[str, object] = {}

    def ingest() -> None:
        ticks = [0]

        def progress(_kind: str, _total: int | None):  # type: ignore[no-untyped-def]
            def tick(n: int) -> None:
                ticks[0] += 1
                if ticks[0] == 3:  # three batches committed: let the backup run while we go on
                    committed.set()
                    proceed.wait(30)

            return tick

        with Catalog.open(home, batch_size=4, workers=1) as cat:
            done["report"] = cat.ingest(root, progress=progress)

    writer = threading.Thread(target=ingest)
    writer.start()
    assert committed.wait(60)
    backup_dir = tmp_path / "backup"
    # the backup starts while a batch is being written (the job waits only after it is recorded)
    proceed.set()
    res = runner.invoke(app, ["--home", str(home), "backup", str(backup_dir), "--json"])
    writer.join(120)
    assert res.exit_code == 0, res.output
    made = json.loads(res.stdout)
    assert done["report"].embedded == 120  # type: ignore[attr-defined]
    snap = made["counts"]["models"][0]["embeddings"]
    assert 12 <= snap <= 120 and made["counts"]["images"]["ok"] == snap

    restored = tmp_path / "restored"
    res = runner.invoke(app, ["--home", str(restored), "restore", str(backup_dir), "--json"])
    assert res.exit_code == 0, res.output
    # every record of the snapshot points at the vector the live home holds for that image
    with Catalog.open(home) as live, Catalog.open(restored) as back:
        live_shas, live_vecs = live.vectors("fake-encoder")
        back_shas, back_vecs = back.vectors("fake-encoder")
        assert len(back_shas) == snap and set(back_shas) <= set(live_shas)
        where = {h: i for i, h in enumerate(live_shas)}
        np.testing.assert_array_equal(back_vecs, live_vecs[[where[h] for h in back_shas]])
    code = runner.invoke(app, ["--home", str(restored), "doctor", "--json"])
    assert code.exit_code == 0, code.stdout

    # the restored home resumes: the same ingest completes it, and it answers as the live home does
    with Catalog.open(restored, batch_size=16) as cat:
        again = cat.ingest(root)
    assert again.embedded == 120 - snap and again.already_present == snap
    queries = ["p000.png", "p050.png", "p119.png"]
    assert _answers(restored, root, queries) == _answers(home, root, queries)
    with Catalog.open(restored) as cat:
        assert cat.info()["images"] == {"ok": 120}


def test_restore_refuses_a_non_empty_home_without_force(
    tmp_path: Path, home: Path, fake_encoder: FakeEncoder
) -> None:
    root = _photos(tmp_path, 6)
    with Catalog.open(home) as cat:
        cat.ingest(root)
    assert runner.invoke(app, ["--home", str(home), "backup", str(tmp_path / "b")]).exit_code == 0
    other = tmp_path / "other"
    with Catalog.open(other) as cat:
        cat.ingest(_photos(tmp_path / "x", 2))
    res = runner.invoke(app, ["--home", str(other), "restore", str(tmp_path / "b")])
    assert res.exit_code == 2 and "not empty" in res.stderr and "--force" in res.stderr
    res = runner.invoke(app, ["--home", str(other), "restore", str(tmp_path / "b"), "--force"])
    assert res.exit_code == 0, res.output
    with Catalog.open(other) as cat:
        assert cat.info()["images"] == {"ok": 6}
    assert list(tmp_path.glob("other.before-restore-*"))  # the old content was moved aside, not deleted
    res = runner.invoke(app, ["--home", str(home), "backup", str(tmp_path / "b")])
    assert res.exit_code == 2 and "not empty" in res.stderr
