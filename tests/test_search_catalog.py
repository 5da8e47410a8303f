"""Catalog search, index/database consistency, duplicates and the CLI (FakeEncoder, synthetic images)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps
from typer.testing import CliRunner

from catalens.cli import app
from catalens.core import Catalog
from catalens.errors import EmptyCatalogError, FilterSyntaxError, NotFoundError, TextSearchUnavailableError
from catalens.search.dedup import DedupOptions
from tests.conftest import make_product_image

pytestmark = pytest.mark.usefixtures("catalog_backend")  # each test on SQLite and on PostgreSQL

N = 24


def build_catalog(home: Path, root: Path, n: int = N) -> Catalog:
    rows = ["image,id,productDisplayName,articleType,gender,year"]
    for i in range(n):
        p = make_product_image(root / f"p{i}.png", seed=100 + i)
        kind = "Tshirts" if i % 2 == 0 else "Shoes"
        gender = "Women" if i % 3 == 0 else "Men"
        rows.append(f"{p},P{i},Item {i} {kind},{kind},{gender},{2010 + i % 5}")
    # product P0 has a second image
    p2 = make_product_image(root / "p0b.png", seed=999)
    rows.append(f"{p2},P0,Item 0 Tshirts,Tshirts,Women,2010")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    cat = Catalog.open(home)
    cat.ingest(root / "labels.csv", id_col="id", text_col="productDisplayName")
    return cat


@pytest.fixture
def catalog(fake_encoder: object, home: Path, tmp_path: Path) -> Catalog:
    cat = build_catalog(home, tmp_path / "imgs")
    yield cat
    cat.close()


def test_search_by_image_product_and_filters(catalog: Catalog, tmp_path: Path) -> None:
    res = catalog.search_image(tmp_path / "imgs" / "p5.png", k=5)
    assert res[0].product_id == "P5" and res[0].score == pytest.approx(1.0, abs=1e-4)
    assert res[0].title == "Item 5 Shoes" and res[0].attrs["articleType"] == "Shoes"
    assert len({r.product_id for r in res}) == len(res) == 5
    # a new (not ingested) image is encoded on the fly
    q = make_product_image(tmp_path / "q.png", seed=100 + 7)
    Image.open(q).resize((100, 130)).save(tmp_path / "q2.png")
    assert catalog.search_image(tmp_path / "q2.png", k=1)[0].product_id == "P7"
    # one result per product; --all-images lists both images of P0
    per_prod = catalog.search_product("P2", k=N)
    assert "P2" not in {r.product_id for r in per_prod}
    assert [r.product_id for r in per_prod].count("P0") == 1
    all_imgs = catalog.search_product("P2", k=N + 5, all_images=True)
    assert [r.product_id for r in all_imgs].count("P0") == 2
    women = catalog.search_product("P1", k=10, where="articleType = 'tshirts' and gender = 'Women'")
    expected = {f"P{i}" for i in range(N) if i % 2 == 0 and i % 3 == 0}
    assert {r.product_id for r in women} == expected  # k results when that many pass, all passing
    years = catalog.search_product("P1", k=50, where="year >= 2013 and not (id in ('P3', 'P8'))")
    assert {r.product_id for r in years} == {f"P{i}" for i in range(N) if i % 5 >= 3} - {"P3", "P8", "P1"}
    assert catalog.search_product("P1", k=5, where="title like '%zzz%'") == []


def test_search_follows_ingests_of_this_and_other_catalog_objects(
    catalog: Catalog, home: Path, tmp_path: Path
) -> None:
    """A catalog searched, then written (by itself or another process on the same home), then
    searched again answers from the new state: ingest then search in one script just works."""
    assert catalog.search_product("P1", k=100)  # an engine is open now
    engine = catalog.searcher()
    assert catalog.searcher() is engine  # nothing written: the same engine, no rebuild
    new = make_product_image(tmp_path / "new" / "n1.png", seed=4242)
    (tmp_path / "new" / "labels.csv").write_text(f"image,id\n{new},NEW1\n")
    catalog.ingest(tmp_path / "new" / "labels.csv", id_col="id")
    assert catalog.search_image(new, k=1)[0].product_id == "NEW1"
    other = Catalog.open(home)  # "another process" writes the same catalog
    try:
        more = make_product_image(tmp_path / "new" / "n2.png", seed=4343)
        (tmp_path / "new" / "more.csv").write_text(f"image,id\n{more},NEW2\n")
        other.ingest(tmp_path / "new" / "more.csv", id_col="id")
    finally:
        other.close()
    assert catalog.search_image(more, k=1)[0].product_id == "NEW2"
    assert "NEW2" in {r.product_id for r in catalog.search_product("NEW1", k=N + 5)}


def test_bad_inputs_raise(catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        catalog.search_product("nope")
    with pytest.raises(FilterSyntaxError):
        catalog.search_product("P1", where="articleType = ")
    (tmp_path / "bad.jpg").write_text("not an image")
    from catalens.errors import ImageError

    with pytest.raises(ImageError):
        catalog.search_image(tmp_path / "bad.jpg")
    with pytest.raises(TextSearchUnavailableError):
        catalog.search_text("red shoes")


def test_empty_catalog(fake_encoder: object, tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "empty") as cat, pytest.raises(EmptyCatalogError):
        cat.search_product("x")


def test_index_follows_database_through_crashes(fake_encoder: object, home: Path, tmp_path: Path) -> None:
    cat = build_catalog(home, tmp_path / "imgs", n=10)
    first = cat.sync_index()
    assert first["sync"]["action"] == "rebuilt" and first["index"]["count"] == 11
    cat.close()
    # ingest after the index was written (= crash between DB commit and index write)
    rows = ["image,id"] + [
        f"{make_product_image(tmp_path / 'more' / f'm{i}.png', seed=500 + i)},M{i}" for i in range(4)
    ]
    (tmp_path / "more.csv").write_text("\n".join(rows) + "\n")
    with Catalog.open(home) as cat:
        cat.ingest(tmp_path / "more.csv", id_col="id")
    with Catalog.open(home) as cat:
        rep = cat.sync_index()["sync"]
        assert rep["action"] == "added" and rep["added"] == 4 and rep["count"] == 15
        assert cat.search_image(tmp_path / "more" / "m2.png", k=1)[0].product_id == "M2"
    with Catalog.open(home) as cat:
        assert cat.sync_index()["sync"]["action"] == "none"
    # the database loses rows (vectors lost): the index is ahead and is rebuilt
    with Catalog.open(home) as cat:
        rec = cat.db.models()[-1]
        cat.db.drop_embeddings_from(rec.model_id, rec.version, 12)
        rep = cat.sync_index()["sync"]
        assert rep["action"] == "rebuilt" and "ahead" in rep["reason"] and rep["count"] == 12
    # corrupt index files: rebuilt
    folder = next((home / "index").iterdir())
    for f in folder.glob("gen-*/index.faiss"):
        f.write_bytes(b"\0" * 10)
    with Catalog.open(home) as cat:
        rep = cat.sync_index()["sync"]
        assert rep["action"] == "rebuilt" and "corrupt" in rep["reason"]
    # vectors replaced under the index: checksum differs, rebuilt
    with Catalog.open(home) as cat:
        _negate_first_vector(cat, home)
    with Catalog.open(home) as cat:
        rep = cat.sync_index()["sync"]
        assert rep["action"] == "rebuilt" and "checksum" in rep["reason"]
    # the index folder removed entirely: rebuilt
    shutil.rmtree(home / "index")
    with Catalog.open(home) as cat:
        assert cat.sync_index()["sync"]["action"] == "rebuilt"


def _negate_first_vector(cat: Catalog, home: Path) -> None:
    """Replace the stored vector at row 0 under the index, in whichever store holds the vectors."""
    files = list((home / "vectors").glob("*.f32"))
    if files:
        data = np.fromfile(files[0], dtype=np.float32)
        data[:16] = -data[:16]
        data.tofile(files[0])
        return
    from sqlalchemy import update

    from catalens.catalog.schema import EmbeddingVector

    with cat.db.session() as s:
        row = s.get(EmbeddingVector, (*[(m.model_id, m.version) for m in cat.db.models()][-1], 0))
        assert row is not None
        flipped = (-np.frombuffer(row.data, dtype=np.float32)).tobytes()
        s.execute(update(EmbeddingVector).where(EmbeddingVector.position == 0).values(data=flipped))


def photo_like(path: Path, seed: int) -> Path:
    """A smoother, larger product shot (thick strokes, slight blur) than make_product_image."""
    from PIL import ImageFilter

    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (240, 320), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((50, 40, 190, 290), radius=30, fill=tuple(int(c) for c in rng.integers(20, 220, 3)))
    for _ in range(4):
        x, y = (int(v) for v in rng.integers(60, 180, 2))
        d.ellipse((x - 18, y - 18, x + 18, y + 18), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        d.line(
            [
                tuple(int(v) for v in rng.integers(55, 185, 2)),
                tuple(int(v) for v in rng.integers(55, 185, 2)),
            ],
            fill=tuple(int(c) for c in rng.integers(0, 255, 3)),
            width=7,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    img.filter(ImageFilter.GaussianBlur(1.2)).save(path)
    return path


def _copies(src: Path, out: Path) -> dict[str, Path]:
    img = Image.open(src).convert("RGB")
    w, h = img.size
    out.mkdir(parents=True, exist_ok=True)
    res = {}
    img.resize((int(w * 0.6), int(h * 0.6))).save(out / "resized.jpg", quality=60)
    res["resized"] = out / "resized.jpg"
    ImageOps.expand(img, border=12, fill=(0, 0, 0)).save(out / "border.png")
    res["border"] = out / "border.png"
    img.crop((int(w * 0.06), int(h * 0.05), w, h - int(h * 0.04))).save(out / "crop.png")
    res["crop"] = out / "crop.png"
    over = img.copy()
    ImageDraw.Draw(over).text((5, 5), "SALE", fill=(200, 0, 0))
    over.save(out / "overlay.jpg", quality=85)
    res["overlay"] = out / "overlay.jpg"
    # same pixels, different bytes: exact duplicate by pixels
    img.save(out / "same_pixels.bmp")
    res["same_pixels"] = out / "same_pixels.bmp"
    # the same design in another colour: merely similar
    arr = np.asarray(img).astype(np.int16)
    mask = (arr < 240).any(axis=2)
    recol = arr.copy()
    recol[mask] = 255 - recol[mask]
    Image.fromarray(recol.clip(0, 255).astype(np.uint8)).save(out / "other_colour.png")
    res["other_colour"] = out / "other_colour.png"
    return res


def test_dedup_groups_copies_not_similar_products(fake_encoder: object, home: Path, tmp_path: Path) -> None:
    cat = build_catalog(home, tmp_path / "imgs", n=12)
    original = photo_like(tmp_path / "photo" / "shot.png", seed=7)
    copies = _copies(original, tmp_path / "copies")
    rows = ["image,id", f"{original},ORIG"] + [f"{p},C_{name}" for name, p in copies.items()]
    (tmp_path / "copies.csv").write_text("\n".join(rows) + "\n")
    cat.ingest(tmp_path / "copies.csv", id_col="id")
    # FakeEncoder vectors of white-background images are all close: test the verified path alone
    report = cat.dedup(options=DedupOptions(candidate_cosine=0.5))
    groups = report.to_dict()["groups"]
    by_product = {frozenset(p for im in g["images"] for p in im["product_ids"]): g for g in groups}
    group_p4 = next(g for members, g in by_product.items() if "ORIG" in members)
    members = {p for im in group_p4["images"] for p in im["product_ids"]}
    assert {"ORIG", "C_resized", "C_border", "C_crop", "C_overlay", "C_same_pixels"} <= members
    assert "C_other_colour" not in members
    assert all(other not in members for other in (f"P{i}" for i in range(12))), group_p4["pairs"]
    kinds = {p["kind"] for p in group_p4["pairs"]}
    assert "exact-pixels" in kinds and "near" in kinds
    near = [p for p in group_p4["pairs"] if p["kind"] == "near"]
    assert all(p["colour"] <= 20 for p in near)
    assert report.stats["candidate_pairs"] >= report.stats["verified_pairs"]
    # one new image checked incrementally
    new = tmp_path / "new.jpg"
    Image.open(tmp_path / "imgs" / "p9.png").convert("RGB").resize((90, 120)).save(new, quality=70)
    res = cat.dedup_image(new, options=DedupOptions(candidate_cosine=0.5))
    assert res["duplicate"] and any("P9" in m["product_ids"] for m in res["matches"])
    fresh = make_product_image(tmp_path / "fresh.png", seed=4242)
    assert not cat.dedup_image(fresh, options=DedupOptions(candidate_cosine=0.5))["duplicate"]
    # the full-detail check ran on the unsettled pairs and can be switched off
    assert report.stats["detail_pairs"] > 0 and report.stats["detail_views_loaded"] > 0
    assert any(p["inliers"] for g in groups for p in g["pairs"] if p["kind"] == "near")
    quick = cat.dedup(options=DedupOptions(candidate_cosine=0.5, detail=False))
    assert quick.stats["detail_pairs"] == 0 and quick.options.detail is False
    assert quick.stats["detail_views_loaded"] == 0
    cat.close()


def test_text_projection_train_and_search(catalog: Catalog) -> None:
    meta = catalog.train_text_projection(holdout=0.25)
    assert meta["pairs"] == N + 1 and meta["products"] == N
    assert meta["lambda"] > 0 and "trained_at" in meta
    res = catalog.search_text("Item 3 Shoes", k=3)
    assert len(res) == 3 and all(r.product_id for r in res)


def test_cli(catalog: Catalog, home: Path, tmp_path: Path) -> None:
    r = CliRunner()
    ok = r.invoke(app, ["--home", str(home), "search", "--id", "P3", "-k", "4", "--json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["query"] == {"id": "P3"} and len(data["results"]) == 4
    assert set(data["results"][0]) >= {
        "rank",
        "score",
        "product_id",
        "image_sha256",
        "image_source",
        "title",
        "attrs",
    }
    for args in (
        ["search", "--id", "NOPE"],
        ["search", "--image", str(tmp_path / "missing.jpg")],
        ["search", "--id", "P3", "--where", "gender = 'Men' and"],
        ["search", "--text", "red shoes"],
        ["search"],
    ):
        res = r.invoke(app, ["--home", str(home), *args])
        assert res.exit_code == 2, (args, res.output)
    empty = r.invoke(app, ["--home", str(tmp_path / "empty-home"), "search", "--id", "x"])
    assert empty.exit_code == 2 and "no embeddings" in empty.output
    d = r.invoke(app, ["--home", str(home), "dedup", "--json"])
    assert d.exit_code == 0 and "groups" in json.loads(d.stdout)
    one = r.invoke(
        app, ["--home", str(home), "dedup", "--image", str(tmp_path / "imgs" / "p1.png"), "--json"]
    )
    assert one.exit_code == 1 and json.loads(one.stdout)["duplicate"]
    idx = r.invoke(app, ["--home", str(home), "search", "index", "--json"])
    assert idx.exit_code == 0 and json.loads(idx.stdout)["index"]["kind"] == "exact"
    tt = r.invoke(app, ["--home", str(home), "search", "train-text", "--method", "ridge", "--json"])
    assert tt.exit_code == 0, tt.output
    assert json.loads(tt.stdout)["method_key"] == "ridge"
    bad = r.invoke(app, ["--home", str(home), "search", "train-text", "--method", "nope"])
    assert bad.exit_code == 2 and "nope" in bad.output


def test_catalog_search_through_milvus_lite(fake_encoder: object, home: Path, tmp_path: Path) -> None:
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    build_catalog(home, tmp_path / "imgs", n=8).close()
    uri = f"milvus://{tmp_path / 'milvus.db'}"
    with Catalog.open(home, index_uri=uri) as cat:
        rep = cat.sync_index()
        assert rep["sync"]["action"] == "rebuilt" and rep["index"]["backend"] == "milvus"
        faiss_free = cat.search_product("P2", k=3, where="articleType = 'Tshirts'")
        assert [r.product_id for r in faiss_free] and all(
            r.attrs["articleType"] == "Tshirts" for r in faiss_free
        )
    with Catalog.open(home) as cat:  # the FAISS default gives the same answers
        assert [r.product_id for r in cat.search_product("P2", k=3, where="articleType = 'Tshirts'")] == [
            r.product_id for r in faiss_free
        ]
    with Catalog.open(home, index_uri=uri) as cat:
        assert cat.sync_index()["sync"]["action"] == "none"


def test_text_search_ranks_thumbnails_as_their_own_group(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Thumbnails sit apart from the stored-size photos the projection learned from (here: shifted
    along one axis); plain cosine buries them, the grouped ranking brings the matching one up, and one
    group alone ranks exactly as the plain search."""
    from catalens.search import text as T
    from catalens.search.engine import SearchResult
    from catalens.vectors import l2_normalize

    rng = np.random.default_rng(0)
    dim = 16
    titled = l2_normalize(rng.standard_normal((60, dim)).astype(np.float32) + 2 * np.eye(dim)[0])
    untitled = l2_normalize(rng.standard_normal((30, dim)).astype(np.float32) + 2 * np.eye(dim)[1])
    X = np.vstack([titled, untitled])
    q = l2_normalize((np.eye(dim, dtype=np.float32)[0] * 3 + untitled[5])[None])[0]  # the title of untitled #5

    class Searcher:
        _generation, links = 0, {f"s{i}": [f"P{i}"] for i in range(len(X))}
        sha_at = {i: f"s{i}" for i in range(len(X))}

        def matrix(self):  # type: ignore[no-untyped-def]
            return X

        def search(self, qv, k, where=None, all_images=False, positions=None):  # type: ignore[no-untyped-def]
            pos = np.arange(len(X)) if positions is None else np.asarray(positions)
            sc = X[pos] @ qv
            order = pos[np.argsort(-sc)][:k]
            return [SearchResult(r, float(X[p] @ qv), f"P{p}", f"s{p}", None) for r, p in enumerate(order, 1)]

    s = Searcher()
    monkeypatch.setattr(T, "text_query_vector", lambda cat, searcher, text: q)
    monkeypatch.setattr(T, "titled_pairs", lambda searcher: ([], [], np.arange(60)))
    sizes = {f"s{i}": (225, 300) if i < 60 else (60, 80) for i in range(len(X))}
    monkeypatch.setattr(T, "_image_sizes", lambda searcher: sizes)
    plain = [r.product_id for r in s.search(q, 10)]
    grouped = [r.product_id for r in T.search_text(None, s, "a title", 10)]
    assert "P65" not in plain and "P65" in grouped[:3]
    assert [r.rank for r in T.search_text(None, s, "a title", 10)] == list(range(1, 11))
    groups = T.image_groups(s)
    assert set(groups) == {"regular", "thumb"} and len(groups["thumb"][0]) == 30
    monkeypatch.setattr(T, "BY_TITLE", True)
    assert set(T.image_groups(Searcher())) == {"titled/regular", "untitled/thumb"}
    # every photo of one size: one group, the plain ranking
    monkeypatch.setattr(T, "BY_TITLE", False)
    monkeypatch.setattr(T, "_image_sizes", lambda searcher: {f"s{i}": (225, 300) for i in range(len(X))})
    s2 = Searcher()
    assert [r.product_id for r in T.search_text(None, s2, "a title", 10)] == [r.product_id for r in s2.search(q, 10)]
