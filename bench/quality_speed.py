"""Speed of catalens' quality checks on a folder of ~1200 px JPEGs (2 workers): the pixel checks, then
the general profile with its model checks (OCR, overlay detector, NSFW) one lever at a time: the OCR
detector's runtime, precision and threads, the watermark second look, and the ceiling without OCR.
Prints JSON lines; medians of ``--runs`` runs in one invocation, with the load average. Pin to 2
cores with taskset for the 2-core figure:

    python bench/quality_speed.py ../shared/data/myntra-fullres-dev/images --runs 3 --models 60
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from typing import Any

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


def measure(
    label: str,
    items: list[QCItem],
    checks: dict,
    prof: Any,
    settings: Settings,
    runs: int,
    *,
    digits: int,
    warm: bool = False,
) -> None:
    """Check ``items`` with ``checks`` ``runs`` times (after a warm-up run on two, to load the models,
    with ``warm``); print the median images/s, every run and the load average as one JSON line."""
    prof.checks = dict(checks)
    if warm:
        run_checks(items[:2], prof, settings)
    rates = [len(items) / run_checks(items, prof, settings).seconds for _ in range(runs)]
    print(
        json.dumps(
            {
                "what": label,
                "images": len(items),
                "cores": len(os.sched_getaffinity(0)),
                "images_per_s_median": round(statistics.median(rates), digits),
                "runs": [round(r, digits) for r in rates],
                "load_1min": round(os.getloadavg()[0], 2),
            }
        ),
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--models", type=int, default=60, help="images for the model-check runs (0 = skip)")
    a = ap.parse_args()
    files = sorted(Path(a.folder).glob("*.jpg"))
    items = [QCItem(str(p), p) for p in files]
    settings = Settings(home=Path("/tmp/qc-speed-home"), workers=2)
    prof = load_profile("general")
    pixel = {c: prof.checks.get(c, {}) for c in PIXEL_CHECKS}
    for label, checks in (
        ("pixel checks", pixel),
        ("pixel checks without duplicates", {c: v for c, v in pixel.items() if c != "duplicates"}),
    ):
        measure(label, items, checks, prof, settings, a.runs, digits=1)
    if a.models:
        sub = items[: a.models]
        # the general profile with its model checks (OCR text + watermark, the overlay detector, NSFW),
        # one lever at a time, each the median of --runs runs in this one invocation
        import catalens.quality.checks.text_ocr as text_ocr

        general = load_profile("general").checks
        full = {**pixel, **{c: general[c] for c in ("text", "watermark", "watermark_visual", "nsfw")}}
        no_ocr = {c: v for c, v in full.items() if c not in ("text", "watermark")}
        variants = [  # label, checks, OCR runtime, OCR precision, OCR threads per call
            ("OCR detector on ONNX Runtime, 2 threads per call (before)", full, "onnxruntime", "f32", 2),
            ("OCR detector on ONNX Runtime, 1 thread per call", full, "onnxruntime", "f32", 1),
            ("OCR detector on OpenVINO fp32, 1 thread per call (default)", full, "openvino", "f32", 1),
            (
                "OCR detector on OpenVINO, native precision (bf16 where the CPU has it)",
                full,
                "openvino",
                "native",
                1,
            ),
            (
                "default, watermark second look off",
                {**full, "watermark": {**full["watermark"], "second_look": []}},
                "openvino",
                "f32",
                1,
            ),
            (
                "ceiling: general profile without the OCR checks (text, watermark)",
                no_ocr,
                "openvino",
                "f32",
                1,
            ),
        ]
        for label, checks, runtime, precision, threads in variants:
            os.environ["CATALENS_OCR_RUNTIME"], os.environ["CATALENS_OCR_PRECISION"] = runtime, precision
            text_ocr.OCR_THREADS = threads
            measure(label, sub, checks, prof, settings, a.runs, digits=2, warm=True)


if __name__ == "__main__":
    main()
