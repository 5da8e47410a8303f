"""Vector index protocol: one contract run on every backend (FAISS, Milvus Lite, a real Milvus
server), then what only FAISS does (approximate switch, atomic saves, crashes) and the registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from catalens.errors import ConfigError, IndexCorruptError
from catalens.index import SearchHits, VectorIndex, open_index, parse_index_uri, register_index_backend
from catalens.index.faiss_index import FaissIndex


def unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_topk(x: np.ndarray, q: np.ndarray, k: int, ids: np.ndarray | None = None) -> np.ndarray:
    ids = np.arange(len(x)) if ids is None else ids
    return ids[np.argsort(-(q @ x.T), axis=1)[:, :k]]


def test_uri_parsing() -> None:
    assert parse_index_uri(None) == ("faiss", "")
    assert parse_index_uri("faiss") == ("faiss", "")
    assert parse_index_uri("milvus://a/b.db") == ("milvus", "a/b.db")
    assert parse_index_uri("https://h:19530") == ("milvus", "https://h:19530")
    with pytest.raises(ConfigError):
        parse_index_uri("nonsense")
    with pytest.raises(ConfigError):
        parse_index_uri("milvus://")


# ---- the contract every backend keeps: FAISS, Milvus Lite and a real Milvus server ------------
BACKENDS = ["faiss", "milvus-lite", "milvus-server"]


class Backend:
    """Opens (and re-opens) one index of the backend under test; removes what it made."""

    def __init__(self, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.kind, self.opened = kind, []
        if kind == "faiss":
            self.uri = f"faiss://{tmp_path / 'faiss'}"
        elif kind == "milvus-lite":
            pytest.importorskip("pymilvus")
            pytest.importorskip("milvus_lite")
            self.uri = f"milvus://{tmp_path / 'm.db'}"
        else:
            self.uri = request.getfixturevalue("milvus_server")
        # collections on a shared server never collide: a name of this test only
        self.name = (
            request.getfixturevalue("milvus_collection") if kind == "milvus-server" else "cat-model-v1"
        )

    def open(self, dim: int) -> VectorIndex:
        idx = open_index(self.uri, dim=dim, name=self.name)
        self.opened.append(idx)
        return idx

    def cleanup(self) -> None:
        if self.kind == "milvus-server" and self.opened:
            idx = self.opened[-1]
            for name in (idx.collection, idx.state_collection):  # type: ignore[attr-defined]
                idx._client.drop_collection(name)  # type: ignore[attr-defined]
        for idx in self.opened:
            idx.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    b = Backend(request.param, tmp_path, request)
    yield b
    b.cleanup()


def test_exact_search_matches_brute_force(backend: Backend) -> None:
    x = unit(500, 32)
    idx = backend.open(32)
    assert isinstance(idx, VectorIndex)
    idx.upsert(np.arange(1000, 1500), x)
    assert idx.count() == 500
    hits = idx.search(x[:7], 5)
    assert isinstance(hits, SearchHits)
    assert (hits.ids == exact_topk(x, x[:7], 5) + 1000).all()
    assert np.allclose(hits.scores, np.sort(x[:7] @ x.T, axis=1)[:, ::-1][:, :5], atol=1e-4)
    assert np.allclose(hits.scores[:, 0], 1.0, atol=1e-5)
    if backend.kind == "faiss":
        assert idx.info()["kind"] == "exact"


def test_filter_delete_upsert_and_metadata(backend: Backend) -> None:
    x = unit(300, 16, 1)
    idx = backend.open(16)
    meta = [{"colour": "red" if i % 3 == 0 else "blue"} for i in range(300)]
    idx.upsert(np.arange(300), x, meta)
    allowed = np.arange(0, 300, 3)
    by_ids = idx.search(x[:4], 10, allowed)
    by_pred = idx.search(x[:4], 10, lambda m: m.get("colour") == "red")
    assert (by_ids.ids == by_pred.ids).all()
    assert set(by_ids.ids.ravel()) <= set(allowed)
    assert (by_ids.ids == exact_topk(x[allowed], x[:4], 10, allowed)).all()
    assert idx.delete([0, 3, 999]) == 2
    assert idx.count() == 298
    assert 0 not in idx.search(x[:1], 10).ids
    # replacing a vector moves the id
    idx.upsert([5], x[[200]])
    assert idx.count() == 298
    assert idx.search(x[[200]], 2).ids[0].tolist() in ([200, 5], [5, 200])
    assert idx.get_metadata([6, 5]) == [{"colour": "red"}, {}]
    # fewer allowed than k: padded with -1
    few = idx.search(x[:1], 10, [1, 2])
    assert sorted(few.ids[0][:2].tolist()) == [1, 2] and (few.ids[0][2:] == -1).all()


def test_save_reopen_and_drop(backend: Backend) -> None:
    x = unit(200, 16, 4)
    idx = backend.open(16)
    idx.upsert(np.arange(200), x)
    idx.delete([0, 1])
    idx.manifest = {"n": 198}  # type: ignore[attr-defined]
    idx.save()
    again = backend.open(16)
    assert again.count() == 198 and again.manifest == {"n": 198}  # type: ignore[attr-defined]
    assert again.ids().tolist() == list(range(2, 200))
    assert (again.search(x[2:5], 3).ids == exact_topk(x[2:], x[2:5], 3, np.arange(2, 200))).all()
    again.drop()
    assert again.count() == 0 and (again.search(x[:1], 3).ids == -1).all()


def test_bad_arguments(backend: Backend) -> None:
    idx = backend.open(8)
    with pytest.raises(ConfigError):
        idx.upsert([1, 2], unit(3, 8))
    with pytest.raises(ConfigError):
        idx.search(unit(1, 9), 3)
    with pytest.raises(ConfigError):
        idx.search(unit(1, 8), 0)
    assert (idx.search(unit(1, 8), 3).ids == -1).all()


def test_switches_to_approximate_past_threshold_with_good_recall(tmp_path: Path) -> None:
    # catalog-like data: products with a few close variants each
    base = unit(400, 64, 2)
    rng = np.random.default_rng(3)
    x = np.repeat(base, 10, axis=0) + 0.05 * rng.standard_normal((4000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    idx = FaissIndex.open(tmp_path / "i", dim=64, exact_threshold=1000)
    idx.upsert(np.arange(800), x[:800])
    assert idx.info()["kind"] == "exact"
    idx.upsert(np.arange(800, 4000), x[800:])
    info = idx.info()
    assert info["kind"] == "ivfpq" and info["params"]["nlist"] >= 16 and "factory" in info["params"]
    q = x[::97] + 0.02 * rng.standard_normal((len(x[::97]), 64)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    got = idx.search(q, 10).ids
    want = exact_topk(x, q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)])
    assert recall >= 0.9
    # selective filter on the approximate index still returns k allowed results
    allowed = np.arange(0, 4000, 50)
    hits = idx.search(q[:3], 10, allowed)
    assert (hits.ids >= 0).all() and set(hits.ids.ravel()) <= set(allowed)
    idx.save()
    again = FaissIndex.open(tmp_path / "i", dim=64, exact_threshold=1000)
    assert again.info()["kind"] == "ivfpq" and again.count() == 4000
    assert (again.search(q, 10).ids == got).all()


def test_save_is_atomic_and_corruption_detected(tmp_path: Path) -> None:
    folder = tmp_path / "i"
    x = unit(50, 8)
    idx = FaissIndex.open(folder, dim=8)
    idx.upsert(np.arange(50), x)
    idx.manifest = {"n": 50}
    idx.save()
    # a crash while writing the next generation leaves a partial folder: the old one is loaded
    (folder / "gen-000002").mkdir()
    (folder / "gen-000002" / "index.faiss").write_bytes(b"partial")
    again = FaissIndex.open(folder, dim=8)
    assert again.count() == 50 and again.manifest == {"n": 50}
    again.save()  # overwrites the stale partial generation
    assert FaissIndex.open(folder, dim=8).count() == 50
    assert sorted(p.name for p in folder.glob("gen-*")) == ["gen-000002"]
    # damaged files are reported, not silently used
    (folder / "gen-000002" / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexCorruptError):
        FaissIndex.open(folder, dim=8)
    head = json.loads((folder / "current.json").read_text())
    head["dim"] = 9
    (folder / "current.json").write_text(json.dumps(head))
    with pytest.raises(IndexCorruptError):
        FaissIndex.open(folder, dim=8)


def test_faiss_rejects_duplicate_ids(tmp_path: Path) -> None:
    idx = FaissIndex.open(tmp_path / "i", dim=8)
    with pytest.raises(ConfigError):
        idx.upsert([1, 1], unit(2, 8))


def test_registry_accepts_custom_backend(tmp_path: Path) -> None:
    made = {}

    def factory(location: str, *, dim: int, name: str, **kw: object) -> FaissIndex:
        made["loc"] = location
        return FaissIndex(tmp_path / "custom", dim, name=name)

    register_index_backend("mine", factory)
    idx = open_index("mine://somewhere", dim=4, name="x")
    assert made["loc"] == "somewhere" and idx.dim == 4
    with pytest.raises(ConfigError):
        register_index_backend("mine", lambda *a, **k: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigError):
        open_index("nosuch://x", dim=4, name="x")
