"""How often the uncalibrated display colour (``catalens colour``: foreground, palette names) equals
myntra-dev's baseColour label, on every 8th image, with the most frequent confusions.

    python bench/classify_colour_names.py

This is not the calibrated colour classifier (``catalens classify train --colour-features``, see
bench/classify_colour.py); it checks that the names a merchandiser sees are sensible.
"""

import collections
import csv
import json
import os
import time
from pathlib import Path

from PIL import Image

from catalens.classify.colour.features import dominant_colours

D = (
    Path(
        os.environ.get("CATALENS_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
    )
    / "myntra-dev"
)
rows = list(csv.DictReader(open(D / "labels.csv")))[::8]
ok = 0
n = 0
conf = collections.Counter()
t = time.perf_counter()
for r in rows:
    res = dominant_colours(Image.open(D / r["image"]))
    n += 1
    ok += res.primary == r["baseColour"]
    if res.primary != r["baseColour"]:
        conf[(r["baseColour"], res.primary)] += 1
print(
    json.dumps(
        {
            "images": n,
            "primary_equals_baseColour": round(ok / n, 3),
            "ms_per_image": round((time.perf_counter() - t) / n * 1000, 1),
            "top_confusions": [[a, b, c] for (a, b), c in conf.most_common(15)],
        }
    )
)
