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
