from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import make_product_image, shared_dataset
from typer.testing import CliRunner

from catalens.cli import app

runner = CliRunner()


def _commands(typer_app) -> list[list[str]]:  # type: ignore[no-untyped-def]
    import typer.main

    group = typer.main.get_command(typer_app)
    paths: list[list[str]] = []

    def walk(cmd, prefix):  # type: ignore[no-untyped-def]
        for name, sub in getattr(cmd, "commands", {}).items():
            paths.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(group, [])
    return paths


def test_every_command_has_help_with_examples() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0 and "Example" in res.output
    for path in _commands(app):
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, path
        if len(path) == 1 and path[0] in {"models", "keys", "events"}:
            continue  # groups: their subcommands carry the examples
        assert "Example" in res.output, f"`catalens {' '.join(path)} --help` has no example"


@pytest.mark.usefixtures("catalog_backend")  # on SQLite and on PostgreSQL
def test_ingest_cli_exit_status_and_info(tmp_path: Path, fake_encoder: object) -> None:
    from badcorpus import make_bad_corpus

    root = tmp_path / "photos"
    for i in range(3):
        make_product_image(root / f"{i}.jpg", seed=i)
    home = str(tmp_path / "home")
    res = runner.invoke(app, ["--home", home, "ingest", str(root), "--json", "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["new_images"] == 3
    make_bad_corpus(root / "bad")
    res = runner.invoke(app, ["--home", home, "ingest", str(root), "-q"])
    assert res.exit_code == 1
    assert "truncated" in res.output and "not-an-image" in res.output
    res = runner.invoke(app, ["--home", home, "info", "--json"])
    data = json.loads(res.output)
    assert data["images"]["ok"] == 3 and data["failures_total"] == len(make_bad_corpus(tmp_path / "again"))
    res = runner.invoke(app, ["--home", home, "ingest", str(tmp_path / "nope.csv")])
    assert res.exit_code == 2 and "no such file" in res.output


@pytest.mark.usefixtures("catalog_backend")  # on SQLite and on PostgreSQL
@pytest.mark.integration
def test_real_manifest_ingest_with_packaged_model(tmp_path: Path) -> None:
    data = shared_dataset("myntra-dev")
    rows = list(csv.DictReader(open(data / "labels.csv")))[:48]
    manifest = tmp_path / "labels.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "image": str(data / r["image"])})
    home = str(tmp_path / "home")
    args = [
        "--home",
        home,
        "ingest",
        str(manifest),
        "--id-col",
        "id",
        "--text-col",
        "productDisplayName",
        "--json",
        "-q",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    first = json.loads(res.output)
    assert first["embedded"] == first["new_images"] >= 47 and first["model"] == "efficientnet-lite0"
    again = json.loads(runner.invoke(app, args).output)
    assert again["new_images"] == 0 and again["embedded"] == 0
    from catalens import Catalog

    with Catalog.open(home) as cat:
        hashes, vecs = cat.vectors()
        assert vecs.shape == (first["embedded"], 1280)
        info = cat.info()
        assert info["products"] == 48


def test_old_command_names_still_work_with_a_deprecation_notice(tmp_path: Path, fake_encoder: object) -> None:
    """Flat names became noun-verb groups; the old ones stay one release, hidden, with a notice."""
    root = tmp_path / "photos"
    for i in range(4):
        make_product_image(root / f"{i}.jpg", seed=i)
    home = str(tmp_path / "home")
    assert runner.invoke(app, ["--home", home, "ingest", str(root), "-q"]).exit_code == 0
    new = runner.invoke(app, ["--home", home, "classify", "list", "--json"])
    old = runner.invoke(app, ["--home", home, "classifiers", "--json"])
    assert new.exit_code == old.exit_code == 0
    assert json.loads(old.stdout) == json.loads(new.stdout)
    assert "deprecated" in old.stderr and "catalens classify list" in old.stderr and not new.stderr
    old_index = runner.invoke(app, ["--home", home, "search-index", "--json"])
    assert old_index.exit_code == 0 and "catalens search index" in old_index.stderr
    new_index = runner.invoke(app, ["--home", home, "search", "index", "--json"])
    assert (
        json.loads(old_index.stdout)["index"]["count"] == json.loads(new_index.stdout)["index"]["count"] == 4
    )
    top = runner.invoke(app, ["--help"]).output
    for hidden in ("search-index", "recommend-eval", "explain-match", "draw-regions"):
        assert hidden not in top  # hidden from the command list


def test_noun_groups_route_a_bare_argument_to_their_default_verb(
    tmp_path: Path, fake_encoder: object
) -> None:
    root = tmp_path / "photos"
    for i in range(4):
        make_product_image(root / f"{i}.jpg", seed=i)
    (root / "labels.csv").write_text(
        "image,id,title\n0.jpg,A,red shirt\n1.jpg,B,blue shoe\n2.jpg,C,red cap\n3.jpg,D,green bag\n",
        encoding="utf-8",
    )
    home = str(tmp_path / "home")
    ingest = [
        "--home",
        home,
        "ingest",
        str(root / "labels.csv"),
        "--id-col",
        "id",
        "--text-col",
        "title",
        "-q",
    ]
    assert runner.invoke(app, ingest).exit_code == 0
    flags = json.loads(
        runner.invoke(app, ["--home", home, "search", "--id", "A", "-k", "2", "--json"]).stdout
    )
    verb = json.loads(
        runner.invoke(app, ["--home", home, "search", "product", "A", "-k", "2", "--json"]).stdout
    )
    explicit = json.loads(
        runner.invoke(app, ["--home", home, "search", "query", "--id", "A", "-k", "2", "--json"]).stdout
    )
    assert flags["results"] == verb["results"] == explicit["results"] and len(verb["results"]) == 2
    by_image = json.loads(
        runner.invoke(app, ["--home", home, "search", "image", str(root / "0.jpg"), "--json"]).stdout
    )
    assert by_image["query"] == {"image": str(root / "0.jpg")} and by_image["results"][0]["product_id"] == "A"
    res = runner.invoke(app, ["--home", home, "search", "product"])  # the verb's own usage error
    assert res.exit_code == 2 and "Missing argument" in res.output
    res = runner.invoke(app, ["--home", home, "search"])
    assert (
        res.exit_code in (0, 2) and "image" in res.output and "train-text" in res.output
    )  # the group's help
