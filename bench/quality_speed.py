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
    ap.add_argument("--models", type=int, default=60, help="images for the model-check runs (0 = skip)")
    a = ap.parse_args()
    files = sorted(Path(a.folder).glob("*.jpg"))
    items = [QCItem(str(p), p) for p in files]
    settings = Settings(home=Path("/tmp/qc-speed-home"), workers=2)
    prof = load_profile("general")
    pixel = {c: prof.checks.get(c, {}) for c in PIXEL_CHECKS}
    cores = len(os.sched_getaffinity(0))
    for label, checks in (
        ("pixel checks", pixel),
        ("pixel checks without duplicates", {c: v for c, v in pixel.items() if c != "duplicates"}),
    ):
        rates = []
        for _ in range(a.runs):
            prof.checks = dict(checks)
            rep = run_checks(items, prof, settings)
            rates.append(len(items) / rep.seconds)
        print(
            json.dumps(
                {
                    "what": label,
                    "images": len(items),
                    "cores": cores,
                    "images_per_s_median": round(statistics.median(rates), 1),
                    "runs": [round(r, 1) for r in rates],
                    "load_1min": round(os.getloadavg()[0], 2),
                }
            ),
            flush=True,
        )
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
            prof.checks = dict(checks)
            run_checks(sub[:2], prof, settings)  # load the models
            rates = [len(sub) / run_checks(sub, prof, settings).seconds for _ in range(a.runs)]
            print(
                json.dumps(
                    {
                        "what": label,
                        "images": len(sub),
                        "cores": cores,
                        "images_per_s_median": round(statistics.median(rates), 2),
                        "runs": [round(r, 2) for r in rates],
                        "load_1min": round(os.getloadavg()[0], 2),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
