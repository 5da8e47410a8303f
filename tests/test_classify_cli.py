"""CLI train / classify --all / eval (FakeEncoder catalog), labels CSV errors, the HTML eval report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from catalens.cli import app
from catalens.core import Catalog
from tests.conftest import make_product_image

pytestmark = pytest.mark.usefixtures("catalog_backend")  # each test on SQLite and on PostgreSQL

N = 24
runner = CliRunner()


def _t(r) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(r.output.split())


def _run(home: Path, *args: str):
    return runner.invoke(app, ["--home", str(home), *args])


@pytest.fixture
def shop(fake_encoder: object, home: Path, tmp_path: Path) -> Path:
    """24 products whose kind follows the image (two seeds families) and a labels CSV."""
    root = tmp_path / "imgs"
    rows = ["image,id,productDisplayName,kind,gender"]
    for i in range(N):
        p = make_product_image(root / f"p{i}.png", seed=i % 2)  # two looks -> two kinds
        im = Image.open(p).convert("RGB")
        im.putpixel((i, 0), (i * 9 % 256, 7, 200))  # distinct images, same look
        im.save(p)
        kind = "Tshirts" if i % 2 == 0 else "Shoes"
        rows.append(f"{p},P{i},Item {i},{kind},{'Women' if i % 3 == 0 else 'Men'}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    with Catalog.open(home) as cat:
        cat.ingest(tmp_path / "labels.csv", id_col="id", text_col="productDisplayName")
    return tmp_path / "labels.csv"


def test_train_classify_all_eval_and_report(shop: Path, home: Path, tmp_path: Path) -> None:
    r = _run(home, "classify", "train", "kinds", "--labels", str(shop), "--field", "kind", "--field", "gender",
             "--method", "prototype", "--model", "fake-encoder", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert (
        info["name"] == "kinds" and info["fields"]["kind"]["classes"] == 2 and Path(info["folder"]).is_dir()
    )

    r = _run(home, "classify", "--all", "-c", "kinds", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["images"] == N and res["stored"] and sum(res["labels"]["kind"].values()) == N
    from sqlalchemy import func, select

    from catalens.classify.tables import ClassPrediction

    with Catalog.open(home) as cat, cat.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ClassPrediction)) == 2 * N
        rows = s.execute(select(ClassPrediction).where(ClassPrediction.field == "kind")).scalars().all()
        sure = [p for p in rows if not p.needs_review]  # measured: all N (separable kinds)
        assert len(rows) == N and len(sure) >= N - 2, [(p.label, p.prob) for p in rows if p.needs_review]
        assert all(len(p.top_k) == 2 and abs(p.top_k[0][1] - p.prob) < 1e-4 for p in sure)
    # running again replaces, it does not duplicate
    assert _run(home, "classify", "--all", "-c", "kinds", "--json").exit_code == 0
    with Catalog.open(home) as cat, cat.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ClassPrediction)) == 2 * N

    report = tmp_path / "report"
    r = _run(home, "classify", "eval", "--classifier", "kinds", "--labels", str(shop), "--report", str(report))
    assert r.exit_code == 2 and "were used to train" in r.output  # its own training rows: refused
    r = _run(home, "classify", "eval", "--classifier", "kinds", "--labels", str(shop), "--report", str(report),
             "--allow-train-overlap")  # fmt: skip
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)
    assert ev["train_overlap"]["rows"] == N - info["holdout"]["rows"] and "optimistic" in ev["warning"]
    for f in ("kind", "gender"):
        m = ev["fields"][f]
        assert m["n"] == N and set(m) >= {"accuracy", "macro_f1", "weighted_f1", "ece"}
    assert ev["fields"]["kind"]["accuracy"] >= 0.9  # the kinds are visually separable
    html = (report / "index.html").read_text()
    assert "<table>" in html and "<td>Tshirts</td>" in html
    for f in ("kind", "gender"):
        for png in (f"confusion_{f}.png", f"reliability_{f}.png"):
            assert f"src='{png}'" in html
            with Image.open(report / png) as im:
                assert im.format == "PNG" and im.size[0] > 100


def test_labels_csv_errors_name_the_problem(shop: Path, home: Path, tmp_path: Path) -> None:
    def train(csv_text: str, *extra: str):
        p = tmp_path / "bad.csv"
        p.write_text(csv_text)
        return _run(home, "classify", "train", "x", "--labels", str(p), "--model", "fake-encoder", *extra)

    lines = shop.read_text().splitlines()
    r = train("\n".join(lines) + "\n", "--field", "colour")
    assert r.exit_code != 0 and "missing label column" in _t(r) and "colour" in _t(r)
    r = train("foo,kind\n1,Shoes\n", "--field", "kind")
    assert r.exit_code != 0 and "no image column" in _t(r)
    r = train(
        lines[0] + "\n" + "/nowhere/x.png,PX,t,Shoes,Men\n" + "\n".join(lines[1:]) + "\n", "--field", "kind"
    )
    assert r.exit_code != 0 and "not in the catalog" in _t(r) and "--skip-unknown" in _t(r)
    r = train(lines[0] + "\n" + "/nowhere/x.png,PX,t,Shoes,Men\n" + "\n".join(lines[1:]) + "\n",
              "--field", "kind", "--skip-unknown", "--method", "prototype")  # fmt: skip
    assert r.exit_code == 0, r.output
    empty = [",".join(c if j != 3 else "" for j, c in enumerate(ln.split(","))) for ln in lines[1:]]
    r = train(lines[0] + "\n" + "\n".join(empty) + "\n", "--field", "kind")
    assert r.exit_code != 0 and "empty" in _t(r) and "kind" in _t(r)
    one = [lines[1].replace("Tshirts", "Socks")] + lines[2:]  # one Socks example
    r = train(lines[0] + "\n" + "\n".join(one) + "\n", "--field", "kind", "--method", "linear")
    assert r.exit_code != 0 and "fewer than 2 examples" in _t(r) and "Socks" in _t(r)
    r = train(lines[0] + "\n", "--field", "kind")
    assert r.exit_code != 0 and "no rows" in _t(r)
    r = _run(home, "classify", "eval", "--classifier", "nosuch")
    assert r.exit_code != 0 and "nosuch" in _t(r)


def test_classify_file_json_and_threshold(shop: Path, home: Path) -> None:
    assert (
        _run(
            home, "train", "k2", "--field", "kind", "--method", "linear", "--model", "fake-encoder"
        ).exit_code
        == 0
    )
    img = next((shop.parent / "imgs").glob("p1.png"))
    r = _run(home, "classify", str(img), "-c", "k2", "--json", "--top-k", "1")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)[0]["fields"]["kind"]
    assert out["label"] == "Shoes" and len(out["top_k"]) == 1
    r = _run(home, "classify", str(img), "-c", "k2", "--json", "--threshold", "1.0")
    assert json.loads(r.stdout)[0]["fields"]["kind"]["needs_review"] is True
    r = _run(home, "classify")
    assert r.exit_code == 2 and "--all" in _t(r)
    assert np.isfinite(out["prob"])


def test_train_propagate_spreads_labels_to_the_unlabelled_catalog(shop: Path, home: Path, tmp_path: Path) -> None:
    """Six labelled products of 24: ``--propagate kind`` adds the confident unlabelled images to the
    training rows for that field only; the held-out rows never join; an unknown field is an error."""
    few = tmp_path / "few.csv"
    lines = shop.read_text().splitlines()
    few.write_text("\n".join(lines[:7]) + "\n")  # header + 6 rows (3 of each kind)
    r = _run(home, "classify", "train", "few", "--labels", str(few), "--field", "kind", "--method", "prototype",
             "--model", "fake-encoder", "--holdout", "0.34", "--propagate", "kind", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    spread = info["propagated"]
    assert spread["unlabelled"] == N - 6 and 0 < spread["joined"]["kind"] <= N - 6
    folder = Path(info["folder"])
    trained = set((folder / "train_images.txt").read_text().split())
    held = {row.split(",")[0] for row in (folder / "holdout.csv").read_text().splitlines()[1:]}
    assert held and not trained & held and len(trained) == 6 - len(held) + spread["joined"]["kind"]
    r = _run(home, "classify", "train", "few", "--labels", str(few), "--field", "kind", "--method", "prototype",
             "--model", "fake-encoder", "--propagate", "colour")  # fmt: skip
    assert r.exit_code != 0 and "--propagate names fields not trained: colour" in _t(r)
