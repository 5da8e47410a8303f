"""GPU check of the embedding pipeline: end-to-end ingest + embed on CUDA, and agreement with CPU.

    python bench/gpu_embed.py --data ../shared/data/myntra-dev [--limit 0]

Prints JSON lines: the end-to-end images/s of ``Catalog.ingest`` with ``device="cuda"`` (torch,
fp16 autocast) on the manifest, then the cosine similarity between the CUDA vectors and ONNX
Runtime CPU vectors of the same images (the two runtimes share one model version, so they must
agree to be interchangeable in one catalog).
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu-torch for a smoke test")
    ap.add_argument("--check", type=int, default=64, help="images compared against ONNX on CPU")
    args = ap.parse_args()
    import torch

    from catalens import Catalog
    from catalens.imageio import open_image
    from catalens.models import load_image_encoder

    rows = list(csv.DictReader(open(args.data / "labels.csv")))
    if args.limit:
        rows = rows[: args.limit]
    tmp = Path(tempfile.mkdtemp())
    manifest = tmp / "m.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "id"])
        for r in rows:
            w.writerow([str((args.data / r["image"]).resolve()), r["id"]])
    print(
        json.dumps({"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}), flush=True
    )
    with Catalog.open(tmp / "home", device=args.device, batch_size=128, workers=8) as cat:
        enc = cat.encoder()
        t = time.perf_counter()
        rep = cat.ingest(manifest)
        wall = time.perf_counter() - t
        print(
            json.dumps(
                {
                    "measure": f"e2e_{args.device}",
                    "backend": enc.backend,
                    "embedded": rep.embedded,
                    "images_per_s": round(rep.embedded / rep.elapsed_s, 1),
                    "wall_s": round(wall, 1),
                }
            ),
            flush=True,
        )
        hashes, vecs = cat.vectors()
        by_sha = dict(zip(hashes, vecs, strict=True))
        images = [r for r in cat.db.ok_images()][: args.check]
    cpu = load_image_encoder("efficientnet-lite0", device="cpu")
    x = np.stack([cpu.preprocess(open_image(img.source, draft_to=512).image) for img in images])
    ref = cpu.encode(x)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    cos = np.array([float(by_sha[img.sha256] @ ref[i]) for i, img in enumerate(images)])
    print(
        json.dumps(
            {
                "measure": "cuda_vs_onnx_cpu_cosine",
                "n": len(cos),
                "min": round(float(cos.min()), 6),
                "median": round(float(np.median(cos)), 6),
                "same_version": enc.version == cpu.version,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
