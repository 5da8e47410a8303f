"""Choosing the label-heatmap method: deletion AUC of candidate CAM variants on the ``select`` half.

Candidates (EfficientNet backbones; one forward + one backward per image gives every map):

* ``gc``: Grad-CAM on the last stage (``bn2``, stride 32);
* ``gc_pos``: the same with positive-gradient channel weights (mean of ReLU(grad));
* ``xgc``: XGrad-CAM weights (sum(grad * act) / sum(act)) on ``bn2``;
* ``lc``: LayerCAM on ``bn2`` (ReLU(grad) * act, summed over channels);
* ``gcpos_s16``: positive-gradient Grad-CAM on the stride-16 stage (``blocks.4``);
* ``gc*gcpos16``: the last-stage CAM times the stride-16 one (finer multi-layer CAM);
* ``gc+lc16``: the last-stage CAM plus a LayerCAM of the stride-16 stage;
* ``gc_blurK``: Grad-CAM, upsampled, then Gaussian smoothing with sigma = K % of the input side
  (catalens.explain.maps.smooth; the library default is Explainer's DEFAULT_SMOOTH);
* ``gcal`` / ``gcal_blur4``: Grad-CAM placed at the receptive-field centres of the feature cells
  (``grid_placement``: TF "same" padding shifts EfficientNet-Lite's grid; plain bilinear
  upsampling assumes the grid spans the input evenly), unsmoothed / smoothed;
* ``random7`` / ``random14``: uniform noise on the last-stage (7x7 for Lite0) / stride-16 grid,
  upsampled bilinearly like a CAM -- the baselines (``random7_blur4``: the same noise smoothed
  like ``gc_blur4``, to show what smoothing alone does to a random map).

Every map is min-max normalised; the deletion procedure is catalens.explain.faithfulness.curve
(mean-fill, the same for every map). The images come from bench/explain_faithfulness.py's
``sample(..., split="select")``, disjoint from the ``report`` half used for the reported numbers.
One JSON line per image (the AUC of every map; ``--start`` resumes), then one summary line per
map: mean deletion AUC, its reduction against ``random7`` and the share of images where it wins.

    python bench/explain_method_selection.py --model efficientnet-lite0 --n 24 --steps 16 --seed 1 \
        --maps gc,gc_blur4,gc_blur8,gc+lc16,random7,random14
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from explain_faithfulness import DATA, sample  # noqa: E402

from catalens.explain.explainer import Explainer, frozen, load_image  # noqa: E402
from catalens.explain.faithfulness import auc, curve, random_map  # noqa: E402
from catalens.explain.maps import normalise, smooth, upsample  # noqa: E402
from catalens.explain.targets import ImageNetTarget, classifier_target  # noqa: E402

LAYERS = ["blocks.4", "bn2"]
PLACE: dict[str, tuple[float, float]] = {}
DEFAULT_MAPS = "gc,gc_blur2,gc_blur4,gc_blur8,xgc,lc,gc+lc16,random7,random7_blur4,random14"


def activations_and_grads(ex: Explainer, target: Any, x: torch.Tensor) -> tuple[dict, int]:
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


def xgradcam(a: torch.Tensor, g: torch.Tensor) -> np.ndarray:
    w = (g * a).sum(dim=(2, 3)) / (a.sum(dim=(2, 3)) + 1e-7)
    return torch.relu((w[:, :, None, None] * a).sum(1))[0].numpy()


def layercam(a: torch.Tensor, g: torch.Tensor) -> np.ndarray:
    return torch.relu((torch.relu(g) * a).sum(1))[0].numpy()


def grid_placement(backbone: torch.nn.Module, size: int) -> tuple[float, float, int]:
    """Receptive-field centres of the last feature grid: ``centre(o) = a * o + b`` input pixels,
    from the strided convolutions in module order (TF "same" padding puts more padding after,
    which shifts the grid); also the grid length it predicts (to check against the real one)."""
    import math

    a, b, n = 1.0, 0.0, size
    for m in backbone.modules():
        if not isinstance(m, torch.nn.Conv2d) or m.stride[0] == 1:
            continue
        k, s = m.kernel_size[0], m.stride[0]
        if type(m).__name__ == "Conv2dSame":
            out = math.ceil(n / s)
            before = max((out - 1) * s + k - n, 0) // 2
        else:
            before = m.padding[0]
            out = (n + 2 * before - k) // s + 1
        b += a * (-before + (k - 1) / 2)
        a *= s
        n = out
    return a, b, n


def upsample_placed(grid: np.ndarray, size: tuple[int, int], place: tuple[float, float]) -> np.ndarray:
    """Bilinear map at input pixel centres, the grid cell ``o`` sitting at ``a * o + b`` (edges clamped)."""
    a, b = place
    h, w = grid.shape
    ys = np.clip((np.arange(size[0]) - b) / a, 0, h - 1)
    xs = np.clip((np.arange(size[1]) - b) / a, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    g = np.asarray(grid, dtype=np.float32)
    top = g[y0][:, x0] * (1 - fx) + g[y0][:, x1] * fx
    bot = g[y1][:, x0] * (1 - fx) + g[y1][:, x1] * fx
    return (top * (1 - fy) + bot * fy).astype(np.float32)


def candidates(
    ag: dict, size: tuple[int, int], rng: np.random.Generator
) -> dict[str, Callable[[], np.ndarray]]:
    """Every candidate map as a thunk (random maps are drawn in a fixed order by the caller)."""

    def up(m: np.ndarray) -> np.ndarray:
        return normalise(upsample(m, size))

    def blur(m: np.ndarray, pct: float) -> np.ndarray:
        return normalise(smooth(m, pct / 100 * min(size)))

    base = up(gradcam(*ag["bn2"]))
    raw = gradcam(*ag["bn2"])
    place = PLACE.get("bn2")
    aligned = normalise(upsample_placed(raw, size, place)) if place else base
    grid32, grid16 = tuple(ag["bn2"][0].shape[-2:]), tuple(ag["blocks.4"][0].shape[-2:])
    r7, r14 = random_map(grid32, size, rng), random_map(grid16, size, rng)  # always drawn: same stream
    s16 = up(gradcam(*ag["blocks.4"], positive=True))
    return {
        "gc": lambda: base,
        "gc_pos": lambda: up(gradcam(*ag["bn2"], positive=True)),
        "gcpos_blur4": lambda: blur(up(gradcam(*ag["bn2"], positive=True)), 4),
        "xgc": lambda: up(xgradcam(*ag["bn2"])),
        "lc": lambda: up(layercam(*ag["bn2"])),
        "gcpos_s16": lambda: s16,
        "gc*gcpos16": lambda: normalise(base * s16),
        "gc+lc16": lambda: normalise(base + up(layercam(*ag["blocks.4"]))),
        "gc_blur2": lambda: blur(base, 2),
        "gc_blur4": lambda: blur(base, 4),
        "gc_blur8": lambda: blur(base, 8),
        "gcal": lambda: aligned,
        "gcal_blur4": lambda: blur(aligned, 4),
        "random7": lambda: r7,
        "random7_blur4": lambda: blur(r7, 4),
        "random14": lambda: r14,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--target", default="imagenet", help="imagenet, or builtin (the e-commerce taxonomy head, Lite0)"
    )
    ap.add_argument("--maps", default=DEFAULT_MAPS, help="comma-separated candidate maps (see above)")
    ap.add_argument(
        "--start",
        type=int,
        default=0,
        help="resume: skip the curves of the first START images (same random maps)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ex = Explainer(args.model)
    target = ImageNetTarget(args.model) if args.target == "imagenet" else classifier_target(None, args.target)
    size = ex.spec.image_size
    names = args.maps.split(",")
    a, b, n_pred = grid_placement(ex.tower.backbone, size[0])
    PLACE["bn2"] = (a, b)
    print(json.dumps({"placement": [a, b], "predicted_grid": n_pred}), flush=True)

    @torch.inference_mode()
    def score(batch: torch.Tensor) -> torch.Tensor:
        return torch.softmax(target.logits(ex.tower, batch).float(), -1)

    rng = np.random.default_rng(args.seed)
    acc: dict[str, list[float]] = {}
    start = time.perf_counter()
    for j, (path, row) in enumerate(sample(DATA.resolve(), args.n, args.seed, "select")):
        pil, _ = load_image(path)
        x = ex.input_tensor(pil)
        ag, index = activations_and_grads(ex, target, x)
        maps = candidates(ag, size, rng)
        if j < args.start:  # maps drawn (same random maps for the later images as a full run), no curves
            continue
        row_out = {"i": j, "type": row["articleType"], "t": round(time.perf_counter() - start, 1)}
        for k in names:
            acc.setdefault(k, []).append(
                auc(curve(score, x, maps[k](), index, steps=args.steps, seed=args.seed))
            )
            row_out[k] = round(acc[k][-1], 4)
        print(json.dumps(row_out), flush=True)
    ref = np.asarray(acc["random7"]) if "random7" in acc else None
    for k, vals in acc.items():
        v = np.asarray(vals)
        out = {
            "bench": "explain_method_selection",
            "model": args.model,
            "target": args.target,
            "split": "select",
            "n": len(v),
            "steps": args.steps,
            "method": k,
            "deletion_auc": round(float(v.mean()), 4),
        }
        if ref is not None:
            out["deletion_reduction_pct"] = round(100 * (1 - v.mean() / ref.mean()), 1)
            out["beats_random7_share"] = round(float(np.mean(v < ref)), 3)
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
