"""``catalens doctor``: a sound home passes; a cut or bit-flipped vector file, a damaged index, orphan
files and a damaged SQLite database are found (exit 1, what to do); ``--repair`` rebuilds what can be
rebuilt (exact counts after) and names what cannot. Opening a damaged database, a full disk and a
read-only home give one clear error naming the file or the disk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, make_product_image
from typer.testing import CliRunner

from catalens import Catalog
from catalens.cli import app
from catalens.vectors import vector_key

runner = CliRunner()


def _home(tmp_path: Path, home: Path, n: int = 24) -> Path:
    root = tmp_path / "photos"
    for i in range(n):
        make_product_image(root / f"p{i}.png", seed=i)
    with Catalog.open(home, batch_size=8) as cat:
        assert cat.ingest(root).embedded == n
        cat.search_image(root / "p0.png", 3, model="fake-encoder")  # builds the index
    return root


def _doctor(home: Path, *args: str) -> tuple[int, dict]:
    res = runner.invoke(app, ["--home", str(home), "doctor", "--json", *args])
    return res.exit_code, json.loads(res.stdout)


def _vector_file(home: Path) -> Path:
    return home / "vectors" / f"{vector_key('fake-encoder', 'v1')}.f32"


def test_a_sound_home_passes(tmp_path: Path, home: Path, fake_encoder: FakeEncoder) -> None:
    _home(tmp_path, home)
    code, rep = _doctor(home)
    assert code == 0, rep["findings"]
    assert rep["ok"] and rep["findings"] == []
    (m,) = rep["counts"]["models"]
    assert (m["records"], m["vector_rows"], m["re_encoded"]) == (24, 24, 24)
    assert m["min_cosine"] >= 0.9999
    assert {"database", "counts", "vectors:fake-encoder", "index:fake-encoder", "orphans"} <= set(
        rep["checks"]
    )


def test_cut_and_flipped_vectors_damaged_index_and_orphans_are_found_and_repaired(
    tmp_path: Path, home: Path, fake_encoder: FakeEncoder
) -> None:
    root = _home(tmp_path, home)
    path, row = _vector_file(home), 4 * fake_encoder.dim
    data = bytearray(path.read_bytes())
    data[3 * row + 3] ^= 0x40  # an exponent bit of row 3: no longer unit length
    path.write_bytes(bytes(data[: 20 * row]))  # the last 4 rows are cut off
    folder = home / "index" / vector_key("fake-encoder", "v1")
    (gen,) = folder.glob("gen-*")
    shutil.copytree(gen, folder / "gen-000000")  # a generation nothing uses
    with open(gen / "index.faiss", "r+b") as fh:
        fh.truncate(100)
    (home / "blobs" / "ab").mkdir(parents=True)
    (home / "blobs" / "ab" / "stray.jpg").write_bytes(b"x")

    code, rep = _doctor(home)
    assert code == 1 and not rep["ok"]
    assert any("4 of 24 records" in f["message"] and "past the end" in f["message"] for f in rep["findings"])
    assert any("damaged (not unit length" in f["message"] for f in rep["findings"])
    assert any(f["check"] == "index" and "damaged" in f["message"] for f in rep["findings"])
    orphans = rep["counts"]["orphans"]
    assert orphans["index"] == 1 and orphans["blobs"] == 1
    assert all(f["fix"] for f in rep["findings"])

    code, fixed = _doctor(home, "--repair")
    assert code == 0, fixed
    assert fixed["ok"] and fixed["not_repaired"] == []
    assert any("dropped 5 records" in r for r in fixed["repaired"])
    assert any("embedded 5 images again" in r for r in fixed["repaired"])
    assert any("rebuilt the index" in r for r in fixed["repaired"])
    (m,) = fixed["counts"]["models"]
    assert m["records"] == 24 and m["re_encoded"] == 24 and m["min_cosine"] >= 0.9999
    assert not (folder / "gen-000000").exists() and not (home / "blobs" / "ab" / "stray.jpg").exists()
    with Catalog.open(home) as cat:
        shas, vecs = cat.vectors("fake-encoder")
        assert len(set(shas)) == 24
        got = cat.search_image(root / "p7.png", 1, model="fake-encoder", all_images=True)
        assert got[0].image_source.endswith("p7.png")


def test_a_wrong_vector_of_unit_length_is_found_by_re_encoding(
    tmp_path: Path, home: Path, fake_encoder: FakeEncoder
) -> None:
    """A row replaced by another unit vector passes the norm check; only re-encoding finds it."""
    _home(tmp_path, home)
    path = _vector_file(home)
    mat = np.fromfile(path, dtype=np.float32).reshape(-1, fake_encoder.dim)
    mat[[5, 6]] = mat[[6, 5]]  # two rows swapped: both still unit length
    mat.tofile(path)
    code, rep = _doctor(home, "--sample", "24")
    assert code == 1
    (bad,) = [f for f in rep["findings"] if "re-encoded vectors" in f["message"]]
    assert bad["message"].startswith("2 of 24") and sorted(bad["detail"]["positions"]) == [5, 6]
    code, fixed = _doctor(home, "--repair", "--sample", "24")
    assert code == 0 and any("dropped 2 records" in r for r in fixed["repaired"])


def test_missing_source_images_are_named_as_not_repaired(
    tmp_path: Path, home: Path, fake_encoder: FakeEncoder
) -> None:
    root = _home(tmp_path, home, n=8)
    path = _vector_file(home)
    path.write_bytes(path.read_bytes()[: 6 * 4 * fake_encoder.dim])
    for i in range(8):
        (root / f"p{i}.png").unlink()
    code, rep = _doctor(home, "--repair")
    assert code == 1
    assert len([x for x in rep["not_repaired"] if "cannot be embedded again" in x]) == 2


def test_a_damaged_sqlite_database_is_found_and_named_on_open(
    tmp_path: Path, home: Path, fake_encoder: FakeEncoder
) -> None:
    _home(tmp_path, home, n=8)
    db = home / "catalog.db"
    data = bytearray(db.read_bytes())
    for i in range(4096 + 100, min(len(data), 4 * 4096)):
        data[i] ^= 0x5A
    db.write_bytes(bytes(data))
    for side in ("catalog.db-wal", "catalog.db-shm"):
        (home / side).unlink(missing_ok=True)
    code, rep = _doctor(home)
    assert code == 1
    (f,) = rep["findings"]
    assert f["check"] == "database" and not f["repairable"] and "catalens restore" in f["fix"]
    code, fixed = _doctor(home, "--repair")
    assert code == 1 and fixed["not_repaired"]
    res = runner.invoke(app, ["--home", str(home), "info"])
    assert res.exit_code == 2
    assert "is damaged" in res.stderr and "catalens doctor" in res.stderr and str(db) in res.stderr
    assert "Traceback" not in res.output


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.fixture
def tmpfs(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 20 MiB tmpfs (root only; skipped elsewhere, where it cannot be mounted)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if not _can_mount():
        pytest.skip("mounting a tmpfs needs root")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_read_only_home_is_refused_before_any_work(
    tmp_path: Path, tmpfs: Path, fake_encoder: FakeEncoder
) -> None:
    home = tmpfs / "home"
    root = _home(tmp_path, home, n=4)
    before = {p: p.stat().st_mtime_ns for p in home.rglob("*") if p.is_file()}
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    res = runner.invoke(app, ["--home", str(home), "ingest", str(root), "-q"])
    assert res.exit_code == 2
    assert "cannot be written" in res.stderr and "read-only file system" in res.stderr
    assert str(tmpfs) in res.stderr  # names the disk
    assert {p: p.stat().st_mtime_ns for p in home.rglob("*") if p.is_file()} == before
