"""Products and stored quality results from the command line and the Python API (issue 19 item 2): the
same core methods (``Catalog.list_products`` / ``product`` / ``update_product`` / ``delete_product`` /
``qc_summary``) that the REST API calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from catalens.cli import app
from catalens.core import Catalog
from catalens.errors import ConfigError, NotFoundError
from tests.conftest import make_product_image

pytestmark = pytest.mark.usefixtures("catalog_backend")  # on SQLite and on PostgreSQL

runner = CliRunner()


@pytest.fixture
def shop(tmp_path: Path, home: Path, fake_encoder: object) -> Path:
    """Three products: A (red shirt, one image), B (blue shoe, one small image), P (two images)."""
    folder = tmp_path / "shots"
    make_product_image(folder / "a.png", 1, size=(900, 1200))
    make_product_image(folder / "b.png", 2, size=(120, 160))
    make_product_image(folder / "p1.png", 3, size=(900, 1200))
    make_product_image(folder / "p2.png", 4, size=(900, 1200))
    (folder / "labels.csv").write_text(
        "image,id,title,colour,kind\n"
        "a.png,A,Red Check Shirt,Red,shirt\n"
        "b.png,B,Blue Runner,Blue,shoe\n"
        "p1.png,P,Pair of socks,Red,socks\n"
        "p2.png,P,Pair of socks,Red,socks\n",
        encoding="utf-8",
    )
    res = runner.invoke(
        app,
        [
            "--home",
            str(home),
            "ingest",
            str(folder / "labels.csv"),
            "--id-col",
            "id",
            "--text-col",
            "title",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    return folder


def cli(home: Path, *args: str, **kw: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["--home", str(home), *args], **kw)  # type: ignore[arg-type]


def test_products_list_show_filters_and_pages(shop: Path, home: Path) -> None:
    res = cli(home, "products", "list", "--json")
    assert res.exit_code == 0, res.output
    page = json.loads(res.stdout)
    assert page["total"] == 3 and [p["id"] for p in page["items"]] == ["A", "B", "P"]
    assert {p["id"]: p["image_count"] for p in page["items"]} == {"A": 1, "B": 1, "P": 2}
    page = json.loads(
        cli(home, "products", "list", "--where", "colour = 'Red'", "--sort", "-id", "--json").stdout
    )
    assert [p["id"] for p in page["items"]] == ["P", "A"]
    page = json.loads(cli(home, "products", "list", "-q", "runner", "--json").stdout)
    assert [p["id"] for p in page["items"]] == ["B"]
    page = json.loads(cli(home, "products", "list", "--limit", "1", "--offset", "1", "--json").stdout)
    assert page["total"] == 3 and [p["id"] for p in page["items"]] == ["B"]
    table = cli(home, "products", "list")
    assert table.exit_code == 0 and "Red Check Shirt" in table.output and "of 3" in table.output
    shown = json.loads(cli(home, "products", "show", "P", "--json").stdout)
    assert shown["title"] == "Pair of socks" and len(shown["images"]) == 2
    assert shown["attrs"]["kind"] == "socks"
    text = cli(home, "products", "show", "P")
    assert text.exit_code == 0 and "Pair of socks" in text.output and "image " in text.output


def test_products_bad_input_is_one_clear_error(shop: Path, home: Path) -> None:
    res = cli(home, "products", "show", "NOPE")
    assert res.exit_code == 2 and "no product 'NOPE'" in res.output
    res = cli(home, "products", "list", "--sort", "price")
    assert res.exit_code == 2 and "unknown sort 'price'" in res.output
    res = cli(home, "products", "list", "--where", "material = 'silk'")
    assert res.exit_code == 2 and "material" in res.output
    res = cli(home, "products", "update", "A", "--set", "no-equals-sign")
    assert res.exit_code == 2 and "FIELD=VALUE" in res.output
    res = cli(home, "products", "update", "A", "--attrs", "[1, 2]")
    assert res.exit_code == 2 and "JSON object" in res.output
    res = cli(home, "products", "update", "A")
    assert res.exit_code == 2 and "nothing to change" in res.output


def test_products_update_merges_unsets_and_replaces(shop: Path, home: Path) -> None:
    res = cli(home, "products", "update", "A", "--title", "Red Shirt", "--set", "colour=Maroon", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["attrs"] == {"colour": "Maroon", "kind": "shirt"}
    res = cli(home, "products", "update", "A", "--unset", "kind", "--json")
    assert json.loads(res.stdout)["attrs"] == {"colour": "Maroon"}
    res = cli(home, "products", "update", "A", "--attrs", '{"season": "Fall"}', "--replace", "--json")
    assert json.loads(res.stdout)["attrs"] == {"season": "Fall"}
    with Catalog.open(home) as cat:
        assert cat.product("A")["title"] == "Red Shirt"


def test_products_delete_keeps_going_and_removes_only_their_images(shop: Path, home: Path) -> None:
    def images() -> int:
        from sqlalchemy import func, select

        from catalens.catalog.schema import ImageRecord

        with Catalog.open(home) as cat, cat.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(ImageRecord)) or 0)

    before = images()
    res = cli(home, "products", "delete", "P", "NOPE", "B", "--yes")
    assert res.exit_code == 1  # one unknown id; the others are deleted
    assert "deleted P" in res.output and "deleted B" in res.output and "no product 'NOPE'" in res.output
    with Catalog.open(home) as cat:
        assert [p["id"] for p in cat.list_products()["items"]] == ["A"]
        with pytest.raises(NotFoundError):
            cat.product("P")
    assert images() == before - 3  # P's two and B's one
    refused = cli(home, "products", "delete", "A", input="n\n")
    assert refused.exit_code == 1
    with Catalog.open(home) as cat:
        assert cat.product("A")["id"] == "A"


def test_qc_summary_from_cli_and_python(shop: Path, home: Path, tmp_path: Path) -> None:
    profile = tmp_path / "res.yaml"
    profile.write_text("checks:\n  file: {}\n  resolution: {}\n", encoding="utf-8")
    res = cli(home, "qc", "summary")
    assert res.exit_code == 0 and "no stored quality results" in res.output
    assert cli(home, "qc", "--all", "--profile", str(profile), "-q").exit_code == 1  # b.png is too small
    data = json.loads(cli(home, "qc", "summary", "--json").stdout)
    assert data["profile"] == "res" and data["images"] == 4
    assert data["verdicts"]["fail"] == 1 and data["worst_total"] == 1
    assert data["worst"][0]["products"] == ["B"] and data["worst"][0]["reasons"][0]["check"] == "resolution"
    assert "general" in data["available_profiles"]
    text = cli(home, "qc", "summary", "--check", "resolution")
    assert text.exit_code == 0 and "resolution" in text.output and "worst images" in text.output
    with Catalog.open(home) as cat:
        assert cat.qc_summary(check="file")["worst_total"] == 0
        stored = cat.qc_stored([data["worst"][0]["sha256"]])
        assert [r["verdict"] for r in stored] == ["fail"]
        with pytest.raises(ConfigError):
            cat.list_products(limit=0)
