"""Wall time of ``Catalog.dedup()`` on an existing catalens home, for the code in a given source tree.

    git worktree add /tmp/catalens-old <commit>
    python bench/search_dedup_cost.py --home HOME --src /tmp/catalens-old/src --src src --repeat 3

Runs ``--repeat`` rounds; in each round every ``--src`` tree in turn (a fresh process each, so module
imports and caches do not carry over) times one whole dedup of the home (descriptors already stored are
reused by both). Prints one JSON line per run (seconds, stage seconds, pair counts, groups, load average)
and one summary line with the median per tree and the ratio to the first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

ONE_RUN = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import catalens
assert catalens.__file__.startswith(sys.argv[1]), catalens.__file__
from catalens.core import Catalog
cat = Catalog.open(sys.argv[2])
t = time.perf_counter()
rep = cat.dedup()
dt = time.perf_counter() - t
st = rep.stats
print(json.dumps({"seconds": round(dt, 2), "stage_seconds": st["seconds"], "candidate_pairs": st["candidate_pairs"],
                  "detail_pairs": st.get("detail_pairs"), "detail_views_loaded": st.get("detail_views_loaded"), "groups": st["groups"], "images_in_groups": st["images_in_groups"],
                  "families": st.get("families"), "load": round(os.getloadavg()[0], 2)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--src", action="append", required=True, help="a source tree (its src/ folder); repeat")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    times: dict[str, list[float]] = {s: [] for s in args.src}
    for r in range(args.repeat):
        for src in args.src:
            out = (
                subprocess.run(
                    [sys.executable, "-c", ONE_RUN, os.path.abspath(src), args.home],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            row = json.loads(out)
            times[src].append(row["seconds"])
            print(json.dumps({"round": r, "src": src, **row}), flush=True)
    med = {s: statistics.median(v) for s, v in times.items()}
    first = args.src[0]
    print(
        json.dumps(
            {"median_seconds": med, "ratio_to_first": {s: round(m / med[first], 3) for s, m in med.items()}}
        )
    )


if __name__ == "__main__":
    main()
