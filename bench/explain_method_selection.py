"""Choosing the label-heatmap method: deletion AUC of candidate CAM variants on the ``select`` half.

Candidates (EfficientNet backbones; one forward + one backward per image gives every map):

* ``gc``: Grad-CAM on the last stage (``bn2``, stride 32) -- the current default;
* ``gc_pos``: the same with positive-gradient channel weights (mean of ReLU(grad));
* ``gcpos_s16``: positive-gradient Grad-CAM on the stride-16 stage (``blocks.4``);
* ``gc*gcpos16``: the last-stage CAM times the stride-16 one (finer multi-layer CAM);
* ``gc+lc16``: the last-stage CAM plus a LayerCAM of the stride-16 stage;
* ``gc_blur`` / ``gc*gcpos16_blur``: Gaussian smoothing (sigma = 4 % of the input side) after upsampling;
* ``random7`` / ``random14``: uniform noise on the 7x7 (last-stage) / 14x14 grid, upsampled.

Every map is min-max normalised; the deletion procedure is catalens.explain.faithfulness.curve
(mean-fill, the same for every map). The images come from bench/explain_faithfulness.py's
``sample(..., split="select")``, disjoint from the ``report`` half used for the reported numbers.

    python bench/explain_method_selection.py --model efficientnet-lite0 --n 40 --steps 8 --seed 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from explain_faithfulness import DATA, sample  # noqa: E402

from catalens.explain.explainer import Explainer, frozen, load_image  # noqa: E402
from catalens.explain.faithfulness import auc, curve, random_map  # noqa: E402
from catalens.explain.maps import normalise, upsample  # noqa: E402
from catalens.explain.targets import ImageNetTarget  # noqa: E402

LAYERS = ["blocks.3", "blocks.4", "blocks.5", "bn2"]


def activations_and_grads(ex: Explainer, target: ImageNetTarget, x: torch.Tensor) -> tuple[dict, int]:
    """Activations and gradients of the top class at every layer of LAYERS (one backward pass)."""
    backbone = ex.tower.backbone
    store: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def hook(_m, _i, out):
            if name == LAYERS[0]:  # the lowest hooked layer is the leaf the backward pass stops at
                out = out.detach().requires_grad_(True)
            store[name] = out
            return out

        return hook

    handles = [backbone.get_submodule(n).register_forward_hook(hook_for(n)) for n in LAYERS]
    try:
        with torch.enable_grad(), frozen(ex.tower):
            logits = target.logits(ex.tower, x)
            index = int(logits[0].argmax())
            grads = torch.autograd.grad(logits[0, index], [store[n] for n in LAYERS])
    finally:
        for h in handles:
            h.remove()
    return {n: (store[n].detach(), g.detach()) for n, g in zip(LAYERS, grads, strict=True)}, index


def gradcam(a: torch.Tensor, g: torch.Tensor, positive: bool = False) -> np.ndarray:
    w = (torch.relu(g) if positive else g).mean(dim=(2, 3))
    return torch.relu((w[:, :, None, None] * a).sum(1))[0].numpy()


def layercam(a: torch.Tensor, g: torch.Tensor) -> np.ndarray:
    return torch.relu((torch.relu(g) * a).sum(1))[0].numpy()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--start",
        type=int,
        default=0,
        help="resume: skip the curves of the first START images (same random maps)",
    )
    args = ap.parse_args()
    from scipy.ndimage import gaussian_filter

    torch.set_num_threads(args.threads)
    ex = Explainer(args.model)
    target = ImageNetTarget(args.model)
    size = ex.spec.image_size
    sigma = 0.04 * size[0]

    @torch.inference_mode()
    def score(batch: torch.Tensor) -> torch.Tensor:
        return torch.softmax(target.logits(ex.tower, batch).float(), -1)

    def up(m: np.ndarray) -> np.ndarray:
        return normalise(upsample(m, size))

    rng = np.random.default_rng(args.seed)
    acc: dict[str, list[float]] = {}
    start = time.perf_counter()
    for j, (path, row) in enumerate(sample(DATA.resolve(), args.n, args.seed, "select")):
        pil, _ = load_image(path)
        x = ex.input_tensor(pil)
        ag, index = activations_and_grads(ex, target, x)
        base = up(gradcam(*ag["bn2"]))
        s16 = up(gradcam(*ag["blocks.4"], positive=True))
        maps = {
            "gc": base,
            "gc_pos": up(gradcam(*ag["bn2"], positive=True)),
            "gcpos_s16": s16,
            "gc*gcpos16": normalise(base * s16),
            "gc+lc16": normalise(base + up(layercam(*ag["blocks.4"]))),
            "gc_blur": normalise(gaussian_filter(base, sigma)),
            "gc*gcpos16_blur": normalise(gaussian_filter(base * s16, sigma)),
            "random7": random_map(tuple(ag["bn2"][0].shape[-2:]), size, rng),
            "random14": random_map(tuple(ag["blocks.4"][0].shape[-2:]), size, rng),
        }
        if j < args.start:  # maps drawn (same random maps for the later images as a full run), no curves
            continue
        row_out = {"i": j, "type": row["articleType"], "t": round(time.perf_counter() - start, 1)}
        for k, m in maps.items():
            acc.setdefault(k, []).append(auc(curve(score, x, m, index, steps=args.steps, seed=args.seed)))
            row_out[k] = round(acc[k][-1], 4)
        print(json.dumps(row_out), flush=True)
    r7 = np.asarray(acc["random7"])
    for k, vals in acc.items():
        v = np.asarray(vals)
        print(
            json.dumps(
                {
                    "bench": "explain_method_selection",
                    "model": args.model,
                    "split": "select",
                    "n": len(v),
                    "steps": args.steps,
                    "method": k,
                    "deletion_auc": round(float(v.mean()), 4),
                    "deletion_reduction_pct": round(100 * (1 - v.mean() / r7.mean()), 1),
                    "beats_random7_share": round(float(np.mean(v < r7)), 3),
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
