"""Accepted QC exceptions from the command line (``catalens qc dismiss | undismiss | exceptions``)
and in the outputs of later runs: the summary, ``--json``, ``--csv``, the HTML report, the gate
and ``catalens export qc`` read a dismissed check as pass and count it as dismissed (issue 23)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from catalens.cli import app
from tests.conftest import make_product_image

pytestmark = pytest.mark.usefixtures("catalog_backend")  # on SQLite and on PostgreSQL

runner = CliRunner()
PROFILE = "checks:\n  file: {}\n  resolution: {}\n"


@pytest.fixture
def shots(tmp_path: Path, home: Path, fake_encoder: object) -> dict[str, Path]:
    """A catalog of three products: ``small`` (fails ``resolution``), ``big`` (passes) and ``pair``
    with two images (both small); plus a profile that runs ``file`` and ``resolution``."""
    folder = tmp_path / "shots"
    make_product_image(folder / "small.png", 1, size=(120, 160))
    make_product_image(folder / "big.png", 2, size=(900, 1200))
    make_product_image(folder / "pair_a.png", 3, size=(120, 160))
    make_product_image(folder / "pair_b.png", 4, size=(120, 160))
    (folder / "labels.csv").write_text(
        "image,id\nsmall.png,S\nbig.png,B\npair_a.png,PAIR\npair_b.png,PAIR\n", encoding="utf-8"
    )
    res = runner.invoke(app, ["--home", str(home), "ingest", str(folder / "labels.csv"), "-q"])
    assert res.exit_code == 0, res.output
    profile = tmp_path / "res.yaml"
    profile.write_text(PROFILE, encoding="utf-8")
    return {"folder": folder, "profile": profile}


def cli(home: Path, *args: str) -> object:
    return runner.invoke(app, ["--home", str(home), *args])


def qc_json(home: Path, profile: Path, *extra: str) -> tuple[int, dict]:
    res = cli(home, "qc", "--all", "--profile", str(profile), "--json", *extra)
    return res.exit_code, json.loads(res.stdout)  # type: ignore[attr-defined]


def by_name(data: dict) -> dict[str, dict]:
    return {Path(r["source"]).name: r for r in data["results"]}


def test_dismiss_is_respected_by_later_runs_outputs_and_gate(shots, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prof = shots["profile"]
    code, data = qc_json(home, prof)
    small = by_name(data)["small.png"]
    assert code == 1 and small["verdict"] == "fail" and small["issues"] == ["resolution"]
    assert data["counts"]["fail"] == 3 and data["counts"]["dismissed"] == 0 and small["dismissed"] == []

    # dismiss by the file's path (its bytes' sha256), with a note
    res = cli(
        home, "qc", "dismiss", str(shots["folder"] / "small.png"), "resolution", "--note", "a thumbnail"
    )
    assert res.exit_code == 0, res.output
    assert f"dismissed resolution on {small['sha256']}" in res.stdout
    assert "now read pass" in res.stdout and "res (fail)" in res.stdout

    # the next run: the check reads pass with the verdict it had, counts and by_check follow
    code, data = qc_json(home, prof)
    small = by_name(data)["small.png"]
    assert small["verdict"] == "pass" and small["issues"] == [] and small["dismissed"] == ["resolution"]
    shown = {r["check"]: r for r in small["results"]}
    assert shown["resolution"]["verdict"] == "pass" and shown["resolution"]["dismissed"] == "fail"
    assert "dismissed" not in shown["file"]  # only dismissed results carry the key
    assert data["counts"]["fail"] == 2 and data["counts"]["pass"] == 2 and data["counts"]["dismissed"] == 1
    assert data["by_check"]["resolution"] == {"pass": 2, "warn": 0, "fail": 2, "error": 0, "dismissed": 1}
    assert code == 1  # the pair's two images still fail

    # the gate passes once every failure is dismissed (here: through the product id is ambiguous,
    # so each image by its sha256 prefix)
    res = cli(home, "qc", "dismiss", "PAIR", "resolution")
    assert res.exit_code == 2 and "product PAIR matches 2 images" in res.output
    pair = [r["sha256"] for n, r in by_name(data).items() if n.startswith("pair_")]
    for sha in pair:
        assert cli(home, "qc", "dismiss", sha[:10], "resolution").exit_code == 0
    code, data = qc_json(home, prof)
    assert code == 0 and data["counts"]["fail"] == 0 and data["counts"]["dismissed"] == 3

    # the human summary, the CSV and the HTML report show it
    rep = tmp_path / "rep"
    res = cli(
        home,
        "qc",
        "--all",
        "--profile",
        str(prof),
        "-q",
        "--csv",
        str(tmp_path / "qc.csv"),
        "--report",
        str(rep),
    )
    assert res.exit_code == 0, res.output
    assert "4 pass" in res.stdout and "0 fail" in res.stdout and "3 dismissed" in res.stdout
    rows = {Path(r["source"]).name: r for r in csv.DictReader((tmp_path / "qc.csv").open(encoding="utf-8"))}
    assert (
        rows["small.png"]["dismissed"] == "resolution" and rows["small.png"]["resolution_verdict"] == "pass"
    )
    assert rows["big.png"]["dismissed"] == ""
    assert "dismissed: 3" in (rep / "index.html").read_text(encoding="utf-8")

    # --no-exceptions: the checks' own verdicts (an audit); the stored rows keep them too
    code, data = qc_json(home, prof, "--no-exceptions")
    assert code == 1 and data["counts"]["fail"] == 3 and data["counts"]["dismissed"] == 0

    # catalens export qc (stored results) agrees
    res = cli(home, "export", "qc", "--format", "jsonl")
    assert res.exit_code == 0, res.output
    exported = {Path(r["source"]).name: r for r in map(json.loads, res.stdout.splitlines())}
    assert exported["small.png"]["verdict"] == "pass" and exported["small.png"]["dismissed"] == ["resolution"]
    assert exported["big.png"]["dismissed"] == []

    # the list, then forgetting one dismissal makes the check count again
    res = cli(home, "qc", "exceptions", "--json")
    listed = json.loads(res.stdout)
    assert res.exit_code == 0 and len(listed) == 3
    mine = next(x for x in listed if x["sha256"] == small["sha256"])
    assert mine["check"] == "resolution" and mine["note"] == "a thumbnail" and mine["product_ids"] == ["S"]
    assert mine["source"].endswith("small.png")
    res = cli(home, "qc", "exceptions")
    assert res.exit_code == 0 and "accepted exceptions (3)" in res.stdout and "a thumbnail" in res.stdout
    assert cli(home, "qc", "undismiss", "S", "resolution").exit_code == 0  # by product id (one image)
    code, data = qc_json(home, prof)
    assert code == 1 and by_name(data)["small.png"]["verdict"] == "fail" and data["counts"]["dismissed"] == 2
    res = cli(home, "qc", "undismiss", "S", "resolution")
    assert res.exit_code == 2 and "no dismissal of check 'resolution'" in res.output


def test_dismiss_errors_and_warnings(shots, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = cli(home, "qc", "dismiss", "B", "resolutoin")
    assert res.exit_code == 2 and "unknown check 'resolutoin'" in res.output and "resolution" in res.output
    res = cli(home, "qc", "dismiss", "nothing-here", "blur")
    assert res.exit_code == 2 and "no image 'nothing-here'" in res.output
    res = cli(home, "qc", "dismiss", "0" * 64, "blur")
    assert res.exit_code == 2 and "no image with sha256" in res.output
    stray = make_product_image(tmp_path / "stray.png", 9)
    res = cli(home, "qc", "dismiss", str(stray), "blur")
    assert res.exit_code == 2 and "not in the catalog" in res.output
    # a known image whose stored results do not have the check failing: kept, with a warning
    res = cli(home, "qc", "dismiss", "B", "blur", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["check"] == "blur" and "no stored result has blur" in res.stderr
    assert cli(home, "qc", "exceptions", "--json").stdout.count('"check"') == 1


def test_qc_is_still_the_check_command(shots, home: Path) -> None:  # type: ignore[no-untyped-def]
    """``catalens qc PATHS`` works as before; ``catalens qc check PATHS`` is the same command."""
    small = str(shots["folder"] / "small.png")
    prof = str(shots["profile"])
    for args in (["qc", small], ["qc", "check", small]):
        res = cli(home, *args, "--profile", prof, "--json", "--no-store")
        assert res.exit_code == 1 and json.loads(res.stdout)["counts"]["fail"] == 1, res.output
    res = cli(home, "qc")
    assert res.exit_code == 2 and "give image files/folders or --all" in res.output
    res = cli(home, "qc", "--help")
    assert res.exit_code == 0 and "catalens qc dismiss" in res.stdout and "--fail-on" in res.stdout
