"""The OCR detector's runtime: ONNX Runtime (before) vs OpenVINO fp32 (default) vs OpenVINO at the CPU's
native precision (bf16 where the CPU has it), on the same images in one run.

For each variant, the general profile's OCR checks (``text``, ``watermark`` with its second look) run
on:

* both halves of the planted set (``quality_planted_set.py``: the clean, text-overlay and watermark
  copies of the first ``--originals`` originals per dataset and half), and
* the unseen-phrase set of ``quality_text_unseen.py`` (both halves, its own phrases and layouts).

Prints one JSON line per (variant, set): F1 / precision / recall of the check for its planted type
(a photo is flagged at warn or worse; negatives = the clean copies), the share of verdicts equal to
the ONNX Runtime variant's, and the OCR checks' seconds per image (one worker, one thread per call, no
OCR cache). A variant may replace the default only with F1 within 0.01 of ONNX Runtime's on every
set (issue 21).

    python bench/quality_ocr_runtime.py [--originals 40] [--n-small 60 --n-full 20]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_false_alarms as false_alarms  # noqa: E402
import quality_text_unseen as unseen  # noqa: E402
from quality_planted_set import build, load_items  # noqa: E402

VARIANTS = {  # name -> (CATALENS_OCR_RUNTIME, CATALENS_OCR_PRECISION)
    "onnxruntime": ("onnxruntime", "f32"),
    "openvino-f32": ("openvino", "f32"),
    "openvino-native": ("openvino", "native"),
}
CHECK_FOR = {"text_overlay": "text", "watermark": "watermark", "unseen_promo": "text"}


def planted_images(out: Path, data: Path, originals: int) -> list[tuple[str, str, bytes]]:
    """(set, label, JPEG bytes) for the OCR subset of both planted halves."""
    items = load_items(out) if (out / "items.jsonl").exists() else build(out, data)
    rows = []
    for half in ("dev", "test"):
        mine = [it for it in items if it.split == half]
        keep = {
            o
            for ds in ("myntra", "clothing")
            for o in sorted({it.original for it in mine if it.dataset == ds})[: originals // 2]
        }
        for it in mine:
            if it.original in keep and it.planted in ("clean", "text_overlay", "watermark"):
                rows.append((f"planted-{half}", it.planted, Path(it.path).read_bytes()))
    return rows


def unseen_images(n_small: int, n_full: int) -> list[tuple[str, str, bytes]]:
    """(set, label, JPEG bytes): clean photos and their planted copies, as quality_text_unseen makes them."""
    rows = []
    for half in ("dev", "lockbox"):
        photos = unseen.sample("myntra-dev", half, n_small) + unseen.sample(
            "myntra-fullres-dev", half, n_full
        )
        for key, path in photos:
            rng = np.random.default_rng(int(hashlib.md5(f"plant:{key}".encode()).hexdigest()[:8], 16))
            img = Image.open(path).convert("RGB")
            phrase, layout = str(rng.choice(unseen.PHRASES)), str(rng.choice(unseen.LAYOUTS))
            rows.append((f"unseen-{half}", "clean", false_alarms._jpeg(img, 92)))
            planted = unseen.plant(img, phrase, layout, rng)
            rows.append(
                (f"unseen-{half}", "unseen_promo", false_alarms._jpeg(planted, int(rng.integers(80, 96))))
            )
    return rows


def run_variant(rows: list[tuple[str, str, bytes]]) -> tuple[list[dict[str, str]], float]:
    from catalens.quality.context import QCImage
    from catalens.quality.profiles import load_profile

    checks = [c for c in load_profile("general").instantiate() if c.name in ("text", "watermark")]
    for c in checks:
        c.setup()
    for c in checks:  # load the engines before timing
        c.run(QCImage.from_bytes(rows[0][2], "warm-up"))
    verdicts, t0 = [], time.perf_counter()
    for i, (_, _, data) in enumerate(rows):
        img = QCImage.from_bytes(data, f"img-{i}")
        verdicts.append({c.name: c.run(img).verdict for c in checks})
    return verdicts, (time.perf_counter() - t0) / len(rows)


def prf(flags: list[bool], labels: list[bool]) -> dict[str, float]:
    tp = sum(f and y for f, y in zip(flags, labels, strict=True))
    fp = sum(f and not y for f, y in zip(flags, labels, strict=True))
    pos = sum(labels)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / pos if pos else 0.0
    return {
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(2 * p * r / (p + r), 4) if p and r else 0.0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--originals", type=int, default=40, help="planted originals per half (half per dataset)")
    ap.add_argument("--n-small", type=int, default=60)
    ap.add_argument("--n-full", type=int, default=20)
    ap.add_argument("--out", default="/tmp/catalens-planted")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
    a = ap.parse_args()
    rows = planted_images(Path(a.out), Path(a.data), a.originals) + unseen_images(a.n_small, a.n_full)
    base: list[dict[str, str]] | None = None
    for name, (runtime, precision) in VARIANTS.items():
        os.environ["CATALENS_OCR_RUNTIME"], os.environ["CATALENS_OCR_PRECISION"] = runtime, precision
        verdicts, per_image = run_variant(rows)
        base = base or verdicts
        for which in sorted({s for s, _, _ in rows}):
            idx = [i for i, (s, _, _) in enumerate(rows) if s == which]
            line: dict[str, Any] = {"variant": name, "set": which, "images": len(idx)}
            for planted in sorted({lab for s, lab, _ in rows if s == which} - {"clean"}):
                check = CHECK_FOR[planted]
                use = [i for i in idx if rows[i][1] in ("clean", planted)]
                line[planted] = {
                    "check": check,
                    **prf([verdicts[i][check] != "pass" for i in use], [rows[i][1] == planted for i in use]),
                }
            same = sum(verdicts[i] == base[i] for i in idx)
            line["verdicts_as_onnxruntime"] = round(same / len(idx), 4)
            line["ocr_checks_s_per_image"] = round(per_image, 4)
            line["load_1min"] = round(os.getloadavg()[0], 2)
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
