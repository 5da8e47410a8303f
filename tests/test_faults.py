"""The short run of ``bench/faults.py`` (3 kill -9 rounds, one tmpfs disk-full and read-only case when
run as root, every corruption case): nothing lost or corrupted, every fault detected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "faults.py"


def test_faults_quick(tmp_path: Path) -> None:
    out = tmp_path / "faults.json"
    res = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out), "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    rows = {r["case"].split(" (")[0].split(":")[0]: r for r in json.loads(out.read_text())["rows"]}
    for row in json.loads(out.read_text())["rows"]:
        assert (row["lost"], row["corrupted"]) == (0, 0), row
    soak = rows["kill -9 soak"]
    assert soak["runs"] == 3 and soak["killed"] >= 1, soak
    corruption = [r for r in json.loads(out.read_text())["rows"] if r["case"].startswith("corruption")]
    assert len(corruption) == 5 and all(r["detected"] == r["runs"] == 1 for r in corruption), corruption
    if os.geteuid() == 0 and rows["disk full"]["skipped"] is None:
        assert rows["disk full"]["detected"] == 1, rows["disk full"]
        assert rows["read-only home"]["detected"] == 1, rows["read-only home"]
