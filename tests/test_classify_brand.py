"""Brand tagging from the CLI and the Catalog API (FakeEncoder catalog; OCR stubbed where used)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from catalens.cli import app
from catalens.core import Catalog
from tests.conftest import make_product_image

pytestmark = pytest.mark.usefixtures("catalog_backend")  # each test on SQLite and on PostgreSQL

N = 30
runner = CliRunner()


def _run(home: Path, *args: str):
    return runner.invoke(app, ["--home", str(home), *args])


def _t(r) -> str:
    return " ".join(r.output.split())


@pytest.fixture
def shop(fake_encoder: object, home: Path, tmp_path: Path) -> Path:
    """30 products: Nike (one look), Puma (another look), and a few of a rare brand."""
    root = tmp_path / "imgs"
    rows = ["image,id,productDisplayName"]
    for i in range(N):
        brand = ["Nike", "Puma"][i % 2] if i < N - 3 else "Rarebrand"
        p = make_product_image(root / f"b{i}.png", seed=i % 2 if i < N - 3 else 5)
        im = Image.open(p).convert("RGB")
        im.putpixel((i, 0), (i * 9 % 256, 7, 200))
        im.save(p)
        rows.append(f"{p},B{i},{brand} {'Men' if i % 3 else 'Women'} Item {i}")
    (tmp_path / "products.csv").write_text("\n".join(rows) + "\n")
    with Catalog.open(home) as cat:
        cat.ingest(tmp_path / "products.csv", id_col="id", text_col="productDisplayName")
    return root


def test_brand_train_tag_files_and_all(shop: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = _run(home, "brand", "train", "brands", "--min-examples", "5", "--model", "fake-encoder", "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["brands"] == 2 and info["brands_seen"] == 3 and Path(info["folder"]).is_dir()
    assert any(c["name"] == "brands" for c in json.loads(_run(home, "classify", "list", "--json").stdout))

    r = _run(home, "brand", "tag", str(shop / "b1.png"), str(shop / "b2.png"), "-c", "brands", "--no-ocr",
             "--json", "--threshold", "0")  # fmt: skip
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert [g["brand"] for g in got] == ["Puma", "Nike"] and all(g["by"] == "logo" for g in got)
    r = _run(
        home, "brand", "tag", str(shop / "b1.png"), "-c", "brands", "--no-ocr", "--json", "--threshold", "1"
    )
    assert json.loads(r.stdout)[0]["brand"] == "unknown"

    # a brand read by OCR wins over the logo head, and may be a brand without a logo class
    import catalens.classify.brand.catalog_tagging as svc

    monkeypatch.setattr(svc, "ocr_image", lambda im: [("RAREBRAND", 0.98)])
    with Catalog.open(home) as cat:
        out = cat.brands([shop / "b1.png"], "brands")
    assert out[0].brand == "Rarebrand" and out[0].by == "ocr"

    r = _run(home, "brand", "tag", "--all", "-c", "brands", "--json", "--threshold", "0")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert (
        res["images"] == N and res["stored"] and res["brands"]["Nike"] >= 13 and res["brands"]["Puma"] >= 13
    )
    from sqlalchemy import func, select

    from catalens.classify.tables import ClassPrediction

    with Catalog.open(home) as cat, cat.db.session() as s:
        n = s.scalar(
            select(func.count()).select_from(ClassPrediction).where(ClassPrediction.field == "brand")
        )
        assert n == N
    assert _run(home, "brand", "tag", "--all", "-c", "brands", "--json").exit_code == 0
    with Catalog.open(home) as cat, cat.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ClassPrediction)) == N  # replaced, not duplicated


def test_brand_errors_name_the_problem(shop: Path, home: Path) -> None:
    r = _run(home, "brand", "train", "b", "--min-examples", "50", "--model", "fake-encoder")
    assert r.exit_code != 0 and "fewer than 2 brands" in _t(r)
    r = _run(home, "brand", "tag", str(shop / "b1.png"), "-c", "nosuch")
    assert r.exit_code != 0 and "nosuch" in _t(r)
    r = _run(home, "brand", "tag")
    assert r.exit_code != 0 and "--all" in _t(r)


def test_brand_tag_refuses_a_non_brand_classifier(shop: Path, home: Path, tmp_path: Path) -> None:
    csv = tmp_path / "kinds.csv"
    csv.write_text(
        "image,kind\n" + "\n".join(f"{shop / f'b{i}.png'},{'A' if i % 2 else 'B'}" for i in range(10)) + "\n"
    )
    r = _run(home, "classify", "train", "kinds", "--labels", str(csv), "--field", "kind", "--model", "fake-encoder")
    assert r.exit_code == 0, r.output
    r = _run(home, "brand", "tag", str(shop / "b1.png"), "-c", "kinds", "--no-ocr")
    assert r.exit_code != 0 and "not a brand tagger" in _t(r)
