"""How much of an explanation's heatmap lies on the product, and does weighting it by the detected
product keep it faithful? (issue 20 item 10)

    python bench/explain_product_mass.py --half select    # choose here
    python bench/explain_product_mass.py --half report    # report once

Photos: white-backdrop myntra-dev photos (three or four near-white corner patches) that the packaged
product detector never trained on (``bench/data/detect_heldout.txt``), in the fixed ``select`` /
``report`` halves of ``bench/explain_faithfulness.py`` (its ``SPLIT_SEED`` permutation), a seeded
sample of ``--n``. Model and target: EfficientNet-Lite0 with the built-in e-commerce taxonomy head
(what ``catalens explain`` explains by default), the default method (smoothed Grad-CAM).

Truth: the product is every pixel but the near-white backdrop connected to the frame (from the pixels,
not from the detector), cut to the network's input like the map. Mass on product = sum(map x product)
/ sum(map). Maps compared on the same images: ``cam`` (the default map), ``cam_on_product`` (weighted
by the detector's softened mask, ``Explainer.explain(on_product=True)``), ``uniform`` (mass = the
product's share of the input) and ``random`` (CAM-smooth noise on the 7x7 grid). Faithfulness: deletion
and insertion AUC of the explained class (``catalens.explain.faithfulness``, 16 steps), the mean over
images and the reduction of the deletion AUC against the random map's.

Variants tried on select (6 images each): softening sigma 3% of the side with the mask x1.5 (clipped),
sigma 1% x1 (both on the mask of detected products only), then sigma 1% x1 on every pixel the network
calls product (boxes or not: the shipped one), run on the full select sample; report run once.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from explain_faithfulness import DATA, SPLIT_SEED  # noqa: E402
from quality_background import corners_white  # noqa: E402

from catalens.detect.cutouts import backdrop_mask  # noqa: E402
from catalens.explain.explainer import Explainer  # noqa: E402
from catalens.explain.faithfulness import faithfulness, random_map  # noqa: E402
from catalens.explain.product import BOOST, SIGMA, from_source, weight  # noqa: E402
from catalens.explain.targets import classifier_target  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def photos(half: str, n: int, seed: int) -> list[Path]:
    rows = list(csv.DictReader(open(DATA / "labels.csv", encoding="utf-8")))
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(rows))
    idx = perm[: len(rows) // 2] if half == "select" else perm[len(rows) // 2 :]
    held = set((ROOT / "bench" / "data" / "detect_heldout.txt").read_text().split())
    out = []
    for i in np.random.default_rng(seed).permutation(idx):
        r = rows[int(i)]
        if r["image"] not in held:
            continue
        path = DATA / r["image"]
        if corners_white(np.asarray(Image.open(path).convert("RGB"))) >= 3:
            out.append(path)
        if len(out) >= n:
            break
    return out


def mass(m: np.ndarray, truth: np.ndarray) -> float:
    total = float(m.sum())
    return float((m * truth).sum()) / total if total > 0 else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--half", choices=("select", "report"), required=True)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sigma", type=float, default=None, help="softening (default: the shipped SIGMA)")
    ap.add_argument("--boost", type=float, default=None, help="mask gain (default: the shipped BOOST)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    ex = Explainer("efficientnet-lite0")
    target = classifier_target(None, "builtin")

    @torch.inference_mode()
    def score(batch: torch.Tensor) -> torch.Tensor:
        return torch.softmax(target.logits(ex.tower, batch).float(), dim=-1)  # type: ignore[attr-defined]

    rng = np.random.default_rng(args.seed)
    maps = ("cam", "cam_on_product", "uniform", "random")
    got: dict[str, dict[str, list[float]]] = {m: {"mass": [], "deletion": [], "insertion": []} for m in maps}
    found = 0
    t0 = time.perf_counter()
    items = photos(args.half, args.n, args.seed)
    for path in items:
        pil = Image.open(path).convert("RGB")
        e = ex.explain(pil, target)
        if args.sigma is None and args.boost is None:
            w = ex.explain(pil, target, e.index, on_product=True)
            weighted, ok = w.input_map, w.on_product
        else:
            weighted, ok = weight(e.input_map, pil, e.crop_box, sigma=args.sigma or SIGMA, boost=args.boost or BOOST)
        found += int(ok)
        h, wd = e.input_map.shape
        truth = from_source(~backdrop_mask(np.asarray(pil)), e.crop_box, (h, wd))
        x = ex.input_tensor(pil)
        candidates = {
            "cam": e.input_map,
            "cam_on_product": weighted,
            "uniform": np.ones_like(e.input_map),
            "random": random_map(e.grid_map.shape, (h, wd), rng),
        }
        for name, m in candidates.items():
            got[name]["mass"].append(mass(m, truth))
            if name == "uniform":
                continue
            f = faithfulness(score, x, m, e.index, steps=args.steps, seed=args.seed)
            got[name]["deletion"].append(f.deletion)
            got[name]["insertion"].append(f.insertion)
    rand_del = float(np.mean(got["random"]["deletion"]))
    out = {
        "half": args.half,
        "target": target.name,
        "images": len(items),
        "product_found": found,
        "steps": args.steps,
        "sigma": args.sigma or SIGMA,
        "boost": args.boost or BOOST,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    for name in maps:
        g = got[name]
        row = {"mass_on_product_mean": round(float(np.mean(g["mass"])), 4)}
        row["mass_on_product_median"] = round(float(np.median(g["mass"])), 4)
        if g["deletion"]:
            d = float(np.mean(g["deletion"]))
            row["deletion_auc"] = round(d, 4)
            row["insertion_auc"] = round(float(np.mean(g["insertion"])), 4)
            row["deletion_reduction_vs_random"] = round(1 - d / rand_del, 4)
        out[name] = row
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
