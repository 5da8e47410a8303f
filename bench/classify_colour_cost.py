"""What the colour descriptor costs per image, per version (``catalens.classify.colour.calibration``):
the price of the first ``classify --all`` / training of a colour classifier (descriptors are cached per
image and version afterwards).

    python bench/classify_colour_cost.py [--n 120] [--runs 3]

Times decoding + :func:`describe` on the first ``--n`` photos of myntra-dev (225x300) and of
myntra-fullres-dev (to 1200 px), one thread, for each version; prints the median over ``--runs`` passes
of the milliseconds per photo, every pass and the load average (JSON lines).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CATALENS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from catalens.classify.colour.calibration import DESCRIPTORS, describe
    from catalens.imageio import open_image

    sets = {
        "myntra-dev 225x300": sorted((DATA / "myntra-dev" / "images").glob("*.jpg"))[: args.n],
        "myntra-fullres-dev": sorted((DATA / "myntra-fullres-dev" / "images").glob("*.jpg"))[: args.n],
    }
    describe(open_image(sets["myntra-dev 225x300"][0]).image, "colour-v3")  # load the detector
    for name, paths in sets.items():
        for version in DESCRIPTORS.names():
            passes = []
            for _ in range(args.runs):
                t = time.perf_counter()
                for p in paths:
                    describe(open_image(p).image, version)
                passes.append((time.perf_counter() - t) / len(paths) * 1000)
            print(
                json.dumps(
                    {
                        "set": name,
                        "version": version,
                        "photos": len(paths),
                        "ms_per_photo_median": round(statistics.median(passes), 1),
                        "passes": [round(x, 1) for x in passes],
                        "load": round(os.getloadavg()[0], 2),
                    }
                ),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
