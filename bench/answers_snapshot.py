"""Same answers before and after a restructure: one script, run on two source trees, compares the JSON
of ingest, search, dedup, classify, qc and recommend on a myntra-dev subset (issue 19).

    git worktree add /tmp/catalens-before <commit>
    python bench/answers_snapshot.py --src /tmp/catalens-before/src --src src [--n 300]

Each tree runs in a fresh process on a fresh home (same photos, same rows): ingest of the first ``--n``
rows of myntra-dev (id, title, labels), image / product / text search for 5 queries each (after the
text projection is trained), catalog
dedup, a linear articleType classifier trained on the catalog and ``classify --all``, QC of every image
with the general profile, and recommendations for 5 shoppers of a seeded event log. Volatile fields
(timings, ids of jobs, paths of the temporary home, dates) are dropped. Prints one JSON line per
section: equal or not, and the differences grouped by key (list indices blanked) with a count and the
first before / after values.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "myntra-dev"

ONE_RUN = r"""
import csv, json, random, sys
sys.path.insert(0, sys.argv[1])
import catalens
assert catalens.__file__.startswith(sys.argv[1]), catalens.__file__
from catalens.core import Catalog
home, manifest, events, out = sys.argv[2:6]
cat = Catalog.open(home)
res = {}
rep = cat.ingest(manifest, id_col="id", text_col="productDisplayName")
res["ingest"] = rep.to_dict()
rows = list(csv.DictReader(open(manifest)))
cat.train_text_projection(method="ridge")
res["search"] = {
    "image": [[r.to_dict() for r in cat.search_image(rows[i]["image"], 5)] for i in range(0, 50, 10)],
    "product": [[r.to_dict() for r in cat.search_product(rows[i]["id"], 5)] for i in range(1, 51, 10)],
    "text": [[r.to_dict() for r in cat.search_text(q, 5)] for q in ("blue shirt", "black watch", "women red top")],
}
res["dedup"] = cat.dedup().to_dict()
cat.train_classifier("snap", ["articleType"], drop_rare=True)
cat.classify_all("snap")
res["classify"] = [getattr(r, "to_dict", lambda r=r: r)()  # ImagePrediction (dicts before issue 19)
                   for r in cat.classify([rows[i]["image"] for i in range(0, 40, 4)], "snap")]
res["qc"] = [im.to_dict() for im in cat.qc(all_images=True, profile="general").images]
cat.import_events(events)
res["recommend"] = [cat.recommend(f"u{u}", k=5).to_dict() for u in range(5)]
json.dump(res, open(out, "w"), default=str)
"""

VOLATILE = {"seconds", "elapsed", "took", "job_id", "id_job", "created_at", "checked_at", "updated_at", "engine",
            "timings", "stats", "path", "stored_path", "home", "version", "fitted_at", "elapsed_s", "images_per_s",
            "took_ms"}  # fmt: skip


def _clean(x: Any, tmp: str) -> Any:
    if isinstance(x, dict):
        return {k: _clean(v, tmp) for k, v in sorted(x.items()) if k not in VOLATILE}
    if isinstance(x, list):
        return [_clean(v, tmp) for v in x]
    if isinstance(x, float):
        return round(x, 4)
    if isinstance(x, str):
        return x.replace(tmp, "<home>")
    return x


def _diff(a: Any, b: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(path, before, after) of every difference between two JSON values."""
    if type(a) is not type(b):
        return [(path or "/", a, b)]
    if isinstance(a, dict):
        out = [(f"{path}/{k}", a.get(k), b.get(k)) for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += _diff(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [(f"{path} (length {len(a)} vs {len(b)})", len(a), len(b))]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [(path, a, b)]


def _patterns(diffs: list[tuple[str, Any, Any]]) -> list[dict[str, Any]]:
    """Differences grouped by key with list indices blanked: count, and the first before / after values."""
    import re

    groups: dict[str, dict[str, Any]] = {}
    for path, a, b in diffs:
        key = re.sub(r"\[\d+\]", "[*]", path)
        g = groups.setdefault(key, {"key": key, "count": 0, "before": str(a)[:120], "after": str(b)[:120]})
        g["count"] += 1
    return list(groups.values())


def _inputs(work: Path, n: int) -> tuple[Path, Path]:
    """The manifest (first ``n`` rows, absolute image paths) and a seeded event log of 40 shoppers."""
    import random

    rows = list(csv.DictReader(open(DATA / "labels.csv")))[:n]
    manifest = work / "labels.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "image": str(DATA / r["image"])})
    rng = random.Random(0)
    events = work / "events.csv"
    with open(events, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "product_id", "event", "timestamp"])
        for u in range(40):
            for t in range(8):
                w.writerow(
                    [
                        f"u{u}",
                        rng.choice(rows)["id"],
                        rng.choice(["view", "view", "purchase"]),
                        1_700_000_000 + 60 * (8 * u + t),
                    ]
                )
    return manifest, events


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", action="append", required=True, help="a source tree's src/ folder (two)")
    ap.add_argument("--n", type=int, default=300)
    a = ap.parse_args()
    if len(a.src) != 2:
        ap.error("give --src twice: before and after")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        manifest, events = _inputs(Path(tmp), a.n)
        for k, src in enumerate(a.src):
            home, out = Path(tmp) / f"home{k}", Path(tmp) / f"out{k}.json"
            env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
            subprocess.run(
                [sys.executable, "-c", ONE_RUN, str(Path(src).resolve()), str(home), str(manifest), str(events), str(out)],
                check=True, env=env,
            )  # fmt: skip
            runs.append(_clean(json.loads(out.read_text()), str(home)))
    for section in runs[0]:
        d = _diff(runs[0][section], runs[1][section])
        print(
            json.dumps(
                {"section": section, "equal": not d, "differences": len(d), "by_key": _patterns(d)[:8]}
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
