"""Classifiers trained on a whole catalogue, scored on photos of other products as a user would classify
files, at every size (issue 20 items 1 and 7): the shipped defaults on held-out photos.

    catalens --home /tmp/semi-home ingest ../shared/data/myntra-dev/labels.csv --id-col id --text-col productDisplayName
    python bench/classify_heldout_files.py --home /tmp/semi-home

Training: ``Catalog.train_classifier`` on the catalogue's own attributes (every myntra-dev product;
articleType, gender, baseColour; linear heads, ``--drop-rare``, no hold-out), three ways: the default
(image; baseColour's heads read the colour descriptor), the former default (colour features off), and
image + title (MiniLM; titles name the colour, so no descriptor by default).

Scoring: the 200 photos of myntra-fullres-dev (other products: no id in common with myntra-dev; no
classifier choice was made on them), through ``Catalog.classify`` on files - as stored (to 1200 px),
shrunk to 225x300 and to a 60x80 JPEG thumbnail - against their labels (weighted-F1; a label the
classifier never saw counts as an error).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CATALENS_SHARED_DATA", ROOT.parent / "shared" / "data"))
FIELDS = ["articleType", "gender", "baseColour"]


def sized_copies(rows: list[dict[str, str]], folder: Path) -> dict[str, list[str]]:
    """Paths of every photo as stored, at 225x300 and as a 60x80 thumbnail (files in ``folder``)."""
    from PIL import Image

    from catalens.classify.thumbnail_views import VIEWS, view_image

    out: dict[str, list[str]] = {"stored (to 1200 px)": [], "225x300": [], "60x80": []}
    for r in rows:
        src = DATA / "myntra-fullres-dev" / r["image"]
        img = Image.open(src).convert("RGB")
        mid = img.copy()
        mid.thumbnail((225, 300), Image.Resampling.LANCZOS)
        mid_path = folder / f"{r['id']}_225.jpg"
        mid.save(mid_path, quality=90)
        small_path = folder / f"{r['id']}_60.jpg"
        view_image(img, VIEWS["thumb"]).save(small_path, quality=90)
        out["stored (to 1200 px)"].append(str(src))
        out["225x300"].append(str(mid_path))
        out["60x80"].append(str(small_path))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True)
    args = ap.parse_args()
    from sklearn.metrics import f1_score

    from catalens.core import Catalog

    t0 = time.perf_counter()
    rows = list(csv.DictReader(open(DATA / "myntra-fullres-dev" / "labels.csv", encoding="utf-8")))
    titles = [r["productDisplayName"] for r in rows]
    cat = Catalog.open(args.home)
    variants = {
        "default (image; colour descriptor for baseColour)": {"use_colour": None},
        "colour features off (the former default)": {"use_colour": False},
        "image + title (MiniLM)": {"text_model": "minilm"},
    }
    with tempfile.TemporaryDirectory() as tmp:
        sizes = sized_copies(rows, Path(tmp))
        for name, opts in variants.items():
            clf = cat.train_classifier("heldout-check", FIELDS, drop_rare=True, holdout=0.0, **opts)
            out: dict[str, object] = {"classifier": name, "input": clf.input, "photos": len(rows)}
            for size, paths in sizes.items():
                preds = cat.classify(paths, "heldout-check", titles=titles if "text_model" in opts else None)
                for f in FIELDS:
                    truth = [r[f] for r in rows]
                    got = [p.fields[f].label for p in preds]
                    out[f"{f} {size}"] = round(
                        float(f1_score(truth, got, average="weighted", zero_division=0)), 4
                    )
            print(json.dumps(out), flush=True)
    print(json.dumps({"seconds": round(time.perf_counter() - t0, 1), "load": round(os.getloadavg()[0], 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
