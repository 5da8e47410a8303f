"""Speed of catalens' quality checks on a folder of ~1200 px JPEGs: pixel checks (2 workers), then
with OCR + NSFW. Prints JSON lines; medians of ``--runs`` runs. Pin to 2 cores with taskset for the
2-core figure: ``taskset -c 0,1 python bench/quality_speed.py FOLDER``."""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from catalens.config import Settings
from catalens.quality.profiles import load_profile
from catalens.quality.runner import QCItem, run_checks

PIXEL_CHECKS = [
    "file",
    "resolution",
    "aspect_ratio",
    "blur",
    "underexposed",
    "overexposed",
    "low_contrast",
    "grayscale",
    "low_information",
    "border",
    "background",
    "framing",
    "duplicates",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--models", type=int, default=40, help="images for the OCR + NSFW run (0 = skip)")
    a = ap.parse_args()
    files = sorted(Path(a.folder).glob("*.jpg"))
    items = [QCItem(str(p), p) for p in files]
    settings = Settings(home=Path("/tmp/qc-speed-home"), workers=2)
    prof = load_profile("general")
    pixel = {c: prof.checks.get(c, {}) for c in PIXEL_CHECKS}
    cores = len(os.sched_getaffinity(0))
    rates = []
    for _ in range(a.runs):
        prof.checks = dict(pixel)
        rep = run_checks(items, prof, settings)
        rates.append(len(items) / rep.seconds)
    print(
        json.dumps(
            {
                "what": "pixel checks",
                "images": len(items),
                "cores": cores,
                "images_per_s_median": round(statistics.median(rates), 1),
                "runs": [round(r, 1) for r in rates],
            }
        )
    )
    if a.models:
        sub = items[: a.models]
        # the general profile's model checks (OCR text + watermark, the overlay detector, NSFW); the
        # watermark check's second look (extra OCR views when the shared read finds no mark) as the
        # profile gates it, ungated and off, in the same run: what it costs
        general = load_profile("general").checks
        models = {c: general[c] for c in ("text", "watermark", "watermark_visual", "nsfw")}
        for label, watermark in (
            ("pixel + OCR + overlay detector + NSFW (general profile: second look gated)", {}),
            ("same, second look not gated", {"second_look_gate": None}),
            ("same, no second look", {"second_look": []}),
        ):
            prof.checks = {**pixel, **models, "watermark": {**models["watermark"], **watermark}}
            run_checks(sub[:2], prof, settings)  # load the models
            rep = run_checks(sub, prof, settings)
            print(
                json.dumps(
                    {
                        "what": label,
                        "images": len(sub),
                        "cores": cores,
                        "images_per_s": round(len(sub) / rep.seconds, 2),
                    }
                )
            )


if __name__ == "__main__":
    main()
