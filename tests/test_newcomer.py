"""What a newcomer hits first (issue 23): version, empty inputs, unknown --where fields and values."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import pytest
from conftest import make_product_image
from test_recommend import T0, _shop_log, _write_events, shop  # noqa: F401  (shop: a fixture)
from typer.testing import CliRunner

from catalens import Catalog
from catalens.cli import app
from catalens.errors import CatalensWarning, UnknownFieldError
from catalens.search.filters import check_filter, parse_where

runner = CliRunner()


def test_version() -> None:
    from catalens import __version__

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"catalens {__version__}"


def test_ingest_empty_folder_and_manifest_is_an_error(tmp_path: Path, fake_encoder: object) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("not an image")
    manifest = tmp_path / "labels.csv"
    manifest.write_text("id,image\n")
    home = str(tmp_path / "home")
    res = runner.invoke(app, ["--home", home, "ingest", str(empty), "-q"])
    assert res.exit_code == 2, res.output
    assert "no images in this folder" in res.output and "--allow-empty" in res.output
    res = runner.invoke(app, ["--home", home, "ingest", str(manifest), "-q"])
    assert res.exit_code == 2 and "manifest has no rows" in res.output
    res = runner.invoke(app, ["--home", home, "ingest", str(empty), "-q", "--allow-empty", "--json"])
    assert res.exit_code == 0, res.output
    assert "warning:" in res.output and "no images in this folder" in res.output
    # one empty source among good ones is still named
    make_product_image(tmp_path / "good" / "a.jpg", seed=1)
    res = runner.invoke(app, ["--home", home, "ingest", str(tmp_path / "good"), str(empty), "-q"])
    assert res.exit_code == 2 and str(empty) in res.output


def test_qc_empty_folder_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    home = str(tmp_path / "home")
    res = runner.invoke(app, ["--home", home, "qc", str(empty), "-q"])
    assert res.exit_code == 2 and "no images in this folder" in res.output
    res = runner.invoke(app, ["--home", home, "qc", str(empty), "-q", "--allow-empty", "--no-store"])
    assert res.exit_code == 0 and "warning:" in res.output


ROWS = [
    {"id": "1", "title": "Red tee", "articleType": "Tshirts", "baseColour": "Red"},
    {"id": "2", "title": "Blue shirt", "articleType": "Shirts", "baseColour": "Blue"},
]


def test_check_filter_unknown_field_lists_known_fields() -> None:
    with pytest.raises(UnknownFieldError) as ei:
        check_filter(parse_where("colour = 'Red'"), ROWS)
    msg = str(ei.value)
    assert (
        "'colour'" in msg
        and "articleType, baseColour, id, title" in msg
        and "did you mean 'baseColour'" in msg
    )
    # fields are matched ignoring case, as the filter does
    assert check_filter(parse_where("ARTICLETYPE = 'tshirts'"), ROWS) == []
    assert check_filter(parse_where("colour = 'x'"), []) == []  # nothing to check on no rows


def test_check_filter_absent_value_warns_with_did_you_mean() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        notes = check_filter(parse_where("articleType = 'Tshirt' and baseColour in ('Red', 'Pink')"), ROWS)
    assert notes[0].startswith("--where: no product has articleType = 'Tshirt'; did you mean 'Tshirts'")
    assert "baseColour = 'Pink'" in notes[1] and len(notes) == 2
    assert [str(w.message) for w in caught if w.category is CatalensWarning] == notes
    assert (
        check_filter(
            parse_where("articleType != 'Tshirt' and year >= 2012 or id = '1'"),
            [{**r, "year": 2012} for r in ROWS],
        )
        == []
    )  # only = and in on strings are checked


def test_search_cli_where_unknown_field_and_value(tmp_path: Path, fake_encoder: object) -> None:
    root = tmp_path / "shop"
    rows = ["id,image,articleType"]
    for i in range(4):
        make_product_image(root / f"{i}.jpg", seed=i)
        rows.append(f"p{i},{i}.jpg,{'Tshirts' if i % 2 else 'Shirts'}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    home = str(tmp_path / "home")
    assert runner.invoke(app, ["--home", home, "ingest", str(root / "labels.csv"), "-q"]).exit_code == 0
    res = runner.invoke(app, ["--home", home, "search", "--id", "p0", "--where", "colour = 'Red'"])
    assert res.exit_code == 2 and "known fields: articleType, id, title" in res.output
    res = runner.invoke(
        app, ["--home", home, "search", "--id", "p0", "--where", "articleType = 'Tshirt'", "--json"]
    )
    assert res.exit_code == 0
    assert "warning: --where: no product has articleType = 'Tshirt'; did you mean 'Tshirts'" in res.output
    res = runner.invoke(
        app, ["--home", home, "search", "--id", "p0", "--where", "articleType = 'Tshirts'", "--json"]
    )
    assert res.exit_code == 0 and "warning" not in res.output
    assert {r["product_id"] for r in json.loads(res.output)["results"]} == {"p1", "p3"}


def test_recommend_orders_by_score_own_reasons_and_popularity_fallback(
    shop: Catalog,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    shop.import_events(_write_events(tmp_path / "ev.csv", _shop_log()))
    for n, pid in enumerate(["shoe-1", "shoe-2", "watch-1", "watch-2", "shoe-4", "watch-5", "bag-3"]):
        shop.record_event("mixed", pid, "view", T0 + 1000 + n)
    res = shop.recommend("mixed", k=12)
    scores = [r.score for r in res.items]
    assert scores == sorted(scores, reverse=True) and res.fallback is None
    reasons = [r.reason for r in res.items]
    assert len(set(reasons)) == len(reasons), reasons
    cold = shop.recommend("nobody", k=6)
    assert cold.fallback == "popularity" and "unknown user" in (cold.note or "")
    assert len(cold.items) == 6 and all(r.score > 0 for r in cold.items)
    assert [r.score for r in cold.items] == sorted((r.score for r in cold.items), reverse=True)
    res = runner.invoke(app, ["--home", str(shop.settings.home), "recommend", "--user", "nobody", "-k", "3"])
    assert res.exit_code == 0 and "fallback: popularity" in res.output


def test_info_shows_classifiers_events_qc_text_search_and_jobs(
    shop: Catalog,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    home = str(shop.settings.home)
    res = runner.invoke(app, ["--home", home, "info"])
    assert res.exit_code == 0, res.output
    for text in ("not trained (run catalens search train-text)", "classifiers: none", "events: none"):
        assert text in res.output
    assert "QC results: none" in res.output and "recent jobs" in res.output and "ingest" in res.output
    shop.import_events(_write_events(tmp_path / "ev.csv", _shop_log(n_users=4)))
    shop.qc([str(tmp_path / "img" / "shoe-1.png")], profile="general")
    shop.train_classifier("kinds", fields=["articleType"], model="fake-encoder")
    data = json.loads(runner.invoke(app, ["--home", home, "info", "--json"]).output)
    assert data["classifiers"][0]["name"] == "kinds" and data["classifiers"][0]["fields"] == ["articleType"]
    assert data["events"]["events"] == 40 and data["events"]["users"] == 4
    assert data["events"]["by_kind"] == {"view": 32, "cart": 4, "purchase": 4}
    assert data["qc_runs"][0]["profile"] == "general" and data["qc_runs"][0]["images"] == 1
    assert data["text_search"][0]["model"] == "fake-encoder"
    assert data["recent_jobs"][0]["kind"] == "ingest"
    res = runner.invoke(app, ["--home", home, "info"])
    assert "kinds" in res.output and "events: 40" in res.output and "general" in res.output


def test_plain_progress_lines_when_piped() -> None:
    import io
    import time

    from rich.console import Console

    from catalens.progress import rich_progress, step

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    with rich_progress(console) as make:
        advance = make("qc", 10)
        for _ in range(10):
            advance(1)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "qc: started, 10 to do" and lines[-1].startswith("qc: 10/10 100.0%")
    assert lines[-1].endswith("- done") and "img/s" in lines[-1]
    buf.truncate(0)
    buf.seek(0)
    with step("train shop", console, every=0.05):
        time.sleep(0.2)
    lines = buf.getvalue().splitlines()
    assert any(x.startswith("train shop: running") for x in lines) and lines[-1].startswith(
        "train shop: done in"
    )


def test_qc_piped_prints_progress_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALENS_PROGRESS_EVERY", "0")
    for i in range(3):
        make_product_image(tmp_path / "p" / f"{i}.jpg", seed=i)
    res = runner.invoke(app, ["--home", str(tmp_path / "home"), "qc", str(tmp_path / "p"), "--no-store"])
    assert "qc: started, 3 to do" in res.output and "qc: 3/3 100.0%" in res.output, res.output


def test_train_keeps_a_holdout_and_eval_refuses_training_rows(
    shop: Catalog,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    home = str(shop.settings.home)
    test_csv = tmp_path / "test.csv"
    args = ["--home", home, "classify", "train", "kinds", "--field", "articleType", "--model", "fake-encoder"]
    res = runner.invoke(app, [*args, "--holdout-out", str(test_csv)])
    assert res.exit_code == 0, res.output
    assert "held out 6 labelled images" in res.output  # 2 of 10 products per kind
    import csv as csvmod

    held = list(csvmod.DictReader(open(test_csv)))
    assert len(held) == 6 and {r["articleType"] for r in held} == {"shoe", "watch", "bag"}
    folder = Path(shop.load_classifier("kinds").folder)
    trained = set((folder / "train_images.txt").read_text().split())
    assert len(trained) == 24 and not trained & {r["sha256"] for r in held}
    # eval with no labels: the held-out split
    res = runner.invoke(app, ["--home", home, "classify", "eval", "-c", "kinds"])
    assert res.exit_code == 0, res.output
    ev = json.loads(res.output)
    assert ev["fields"]["articleType"]["n"] == 6 and ev["train_overlap"]["rows"] == 0
    assert "held-out split of kinds" in ev["labels"]
    assert (
        json.loads(
            runner.invoke(app, ["--home", home, "classify", "eval", "-c", "kinds", "--labels", str(test_csv)]).output
        )["fields"]["articleType"]["n"]
        == 6
    )
    # the training rows: refused, or scored with a loud warning
    full = tmp_path / "img" / ".." / "products.csv"
    res = runner.invoke(app, ["--home", home, "classify", "eval", "-c", "kinds", "--labels", str(full)])
    assert (
        res.exit_code == 2 and "24 of 30 label rows" in res.output and "--allow-train-overlap" in res.output
    )
    res = runner.invoke(
        app, ["--home", home, "classify", "eval", "-c", "kinds", "--labels", str(full), "--allow-train-overlap"]
    )
    assert res.exit_code == 0 and "WARNING:" in res.output and "optimistic" in res.output


def test_export_every_kind_in_every_format(
    shop: Catalog,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    import csv as csvmod

    import pyarrow.parquet as pq

    home = str(shop.settings.home)
    shop.train_classifier("kinds", ["articleType"], model="fake-encoder", holdout=0)
    shop.classify_all("kinds", threshold=0.985)  # about half the predictions (p 0.96-0.99) flagged for review
    # a stored label that the classifier contradicts: shoe-0 relabelled as a bag afterwards
    with shop.db.session() as s:
        from catalens.catalog.schema import Product

        p = s.get(Product, "shoe-0")
        p.attrs = {**p.attrs, "articleType": "bag"}
    shop.qc([str(tmp_path / "img")], profile="general")
    shop.import_events(_write_events(tmp_path / "ev.csv", _shop_log(n_users=3)))

    def export(*args: str) -> str:
        res = runner.invoke(app, ["--home", home, "export", *args])
        assert res.exit_code == 0, res.output
        return res.output

    preds = list(csvmod.DictReader(io_text(export("predictions"))))
    assert len(preds) == 30 and {r["field"] for r in preds} == {"articleType"}
    assert json.loads(preds[0]["product_ids"]) and preds[0]["source"].endswith(".png")
    dis = [json.loads(x) for x in export("disagreements", "--format", "jsonl").splitlines()]
    assert any(r["product_ids"] == ["shoe-0"] and r["stored_label"] == "bag" for r in dis)
    assert all(r["label"].casefold() != r["stored_label"].casefold() for r in dis)
    assert [r["prob"] for r in dis] == sorted((r["prob"] for r in dis), reverse=True)
    review = list(csvmod.DictReader(io_text(export("review"))))
    flagged = [r for r in preds if r["needs_review"] == "True"]
    assert 0 < len(flagged) < len(preds) and all(float(r["prob"]) < 0.985 for r in flagged)
    assert review == flagged  # exactly the predictions flagged for review, nothing else
    qc = [json.loads(x) for x in export("qc", "--format", "jsonl").splitlines()]
    assert len(qc) == 30 and {r["profile"] for r in qc} == {"general"}
    out = tmp_path / "recs.parquet"
    export("recommendations", "-k", "4", "--format", "parquet", "--out", str(out))
    table = pq.read_table(out).to_pylist()
    assert len(table) == 12 and {r["user_id"] for r in table} == {"u0", "u1", "u2"}
    assert [r["rank"] for r in table[:4]] == [1, 2, 3, 4]
    dd = list(csvmod.DictReader(io_text(export("dedup"))))
    groups = Counter(r["group"] for r in dd)
    assert dd and all(int(r["group_size"]) == groups[r["group"]] >= 2 for r in dd), dd
    assert export("dedup").splitlines()[0].startswith("group,kind,score")
    res = runner.invoke(app, ["--home", home, "export", "predictions", "--format", "parquet"])
    assert res.exit_code == 2 and "--out" in res.output
    res = runner.invoke(app, ["--home", home, "export", "mistakes"])
    assert res.exit_code == 2 and "disagreements" in res.output


def io_text(text: str):  # type: ignore[no-untyped-def]
    import io

    return io.StringIO(text)


def test_builtin_taxonomy_answers_best_guess_to_article_type_with_abstain_flag(tmp_path: Path) -> None:
    from catalens.classify.taxonomy import load_taxonomy

    tax = load_taxonomy("builtin")
    assert tax.hierarchy == ["category", "subcategory", "type"]
    assert ("apparel", "topwear", "t-shirts") in tax.paths and (
        "footwear",
        "shoes",
        "sports shoes",
    ) in tax.paths
    img = make_product_image(tmp_path / "shape.jpg", seed=3)
    res = runner.invoke(app, ["--home", str(tmp_path / "home"), "classify", str(img), "--json"])
    assert res.exit_code == 0, res.output
    fields = json.loads(res.output)[0]["fields"]
    assert list(fields) == ["category", "subcategory", "type"]
    path = tuple(fields[f]["label"] for f in ("category", "subcategory", "type"))
    assert path in tax.paths  # a best guess, consistent down the hierarchy, never "unknown"
    for f in fields.values():
        assert f["label"] != "unknown" and f["prob"] <= f["top_k"][0]["prob"] + 1e-9
        assert f["needs_review"] == (f["prob"] < tax.unknown_below)
    res = runner.invoke(app, ["--home", str(tmp_path / "home"), "classify", str(img)])
    shown = " ".join(res.output.split())
    assert f"type={fields['type']['label']} ({fields['type']['prob']:.2f})" in shown
    assert ("[abstain]" in shown) == any(f["needs_review"] for f in fields.values())


def test_brand_train_brand_col(
    shop: Catalog,  # noqa: F811  (the fixture imported above)
) -> None:
    home = str(shop.settings.home)
    base = ["--home", home, "brand", "train", "b", "--model", "fake-encoder", "--json"]
    res = runner.invoke(app, [*base, "--brand-col", "maker"])
    assert res.exit_code == 2 and "'maker'" in res.output and "articleType, colour, in_stock" in res.output
    res = runner.invoke(app, [*base, "--brand-col", "articleType"])  # 3 values, 10 products each
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["brands"] == 3
    assert shop.load_classifier("b").head("brand").classes == ["bag", "shoe", "watch"]
