"""Faithfulness and speed of catalens explanations (deletion / insertion AUC vs random maps).

For a seeded sample of myntra-dev images and each backbone, explain the predicted class with
the library's methods (default settings, i.e. the smoothed Grad-CAM; ``METHOD:smooth=S`` overrides
the smoothing) and with a random map on the same grid as the CAM (uniform noise on the feature
grid, bilinearly upsampled like the CAM, not smoothed), then measure deletion and insertion AUC
of the explained class's probability (see catalens.explain.faithfulness). Targets: the backbone's ImageNet-1k
classifier, and for EfficientNet-Lite0 also the built-in e-commerce taxonomy (subcategory).

Prints one JSON line per (model, target, method) -- mean AUCs, the reduction against the random
map with a paired bootstrap 95 % interval, median per-image ratio, win shares -- plus a timing line
and a ViT code-path line; ``--per-image`` adds one line per image (mergeable across shards with
``--summarise``); ``--sheet`` writes the contact sheet PNG.

    python bench/explain_faithfulness.py --n 40 --steps 16 --per-image --sheet docs/explain_contact_sheet.png
    python bench/explain_faithfulness.py --models efficientnet-lite2 --start 12 --per-image > b.jsonl  # shard
    python bench/explain_faithfulness.py --summarise a.jsonl b.jsonl --steps 16   # merge shards
    python bench/explain_faithfulness.py --timing-only --synthetic   # speed on any machine, no data
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from catalens.explain.explainer import Explainer, load_image
from catalens.explain.faithfulness import Faithfulness, auc, curve, faithfulness, random_map
from catalens.explain.targets import ImageNetTarget, classifier_target

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "myntra-dev"


def emit(**row: object) -> None:
    print(json.dumps(row), flush=True)


SPLIT_SEED = 12345  # fixed: which half of the data set is for choosing the method, which for reporting


def sample(data: Path, n: int, seed: int, split: str = "report") -> list[tuple[Path, dict[str, str]]]:
    """``n`` images across articleTypes: the rows are split once into two fixed halves (``select``:
    used to choose the method; ``report``: used for the reported numbers; ``all``: both); within the
    half, a ``seed``-shuffled round robin over the articleTypes (most frequent first) takes one image
    of each type per round, so a sample of 60 has 60 different kinds of product."""
    rows = list(csv.DictReader(open(data / "labels.csv")))
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(rows))
    half = len(rows) // 2
    idx = {"select": perm[:half], "report": perm[half:], "all": perm}[split]
    by_type: dict[str, list[int]] = {}
    for i in np.random.default_rng(seed).permutation(idx):
        by_type.setdefault(rows[i].get("articleType", ""), []).append(int(i))
    types = sorted(by_type, key=lambda t: (-len(by_type[t]), t))
    picked: list[int] = []
    for r in range(max(len(v) for v in by_type.values())):
        picked += [by_type[t][r] for t in types if r < len(by_type[t])]
        if len(picked) >= n:
            break
    return [(data / rows[i]["image"], rows[i]) for i in picked[:n]]


def synthetic(n: int) -> list[tuple[Image.Image, dict[str, str]]]:
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        img = Image.new("RGB", (225, 300), (255, 255, 255))
        colour = tuple(int(c) for c in rng.integers(0, 230, 3))
        ImageDraw.Draw(img).rectangle([30, 50, 190, 260], fill=colour)
        out.append((img, {"id": f"synthetic-{i}"}))
    return out


def score_fn(ex: Explainer, target: object, device: str):
    """Probabilities of a batch; the perturbed batches may run on a GPU (the maps are made on CPU)."""
    tower, tgt = ex.tower, target
    if device != "cpu":
        tower = copy.deepcopy(ex.tower).to(device)
        if isinstance(getattr(target, "head", None), torch.nn.Module):
            tgt = copy.copy(target)
            tgt.head = copy.deepcopy(target.head).to(device)  # type: ignore[attr-defined]

    @torch.inference_mode()
    def score(batch: torch.Tensor) -> torch.Tensor:
        return torch.softmax(tgt.logits(tower, batch.to(device)).float(), dim=-1).cpu()  # type: ignore[attr-defined]

    return score


def timing(ex: Explainer, target: object, items: list, repeats: int) -> dict[str, float]:
    """Seconds per explanation (Grad-CAM, one image): the first call after loading, then the median."""
    first = ex.explain(items[0][0], target).seconds
    walls, cpus = [], []
    for r in range(repeats):
        img = items[r % len(items)][0]
        t, c = time.perf_counter(), time.process_time()
        ex.explain(img, target)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return {
        "first_s": round(first, 4),
        "median_s": round(statistics.median(walls), 4),
        "p90_s": round(float(np.percentile(walls, 90)), 4),
        "median_cpu_s": round(statistics.median(cpus), 4),
    }


def bootstrap_reduction(ours: np.ndarray, rand: np.ndarray, seed: int, rounds: int = 2000) -> list[float]:
    """95 % interval of ``1 - mean(ours) / mean(random)`` in %, resampling images (paired)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(ours), size=(rounds, len(ours)))
    red = 100 * (1 - ours[idx].mean(axis=1) / rand[idx].mean(axis=1))
    return [round(float(v), 1) for v in np.percentile(red, [2.5, 97.5])]


def faithfulness_run(
    ex: Explainer,
    target: object,
    tname: str,
    items: list,
    methods: list[str],
    steps: int,
    seed: int,
    device: str = "cpu",
    per_image: bool = False,
    insertion_all: bool = True,
    start_at: int = 0,
) -> None:
    """Deletion / insertion AUC of each method and of a random map on the method's own grid.

    The random map is uniform noise on the grid of the (first) method's raw map -- the feature
    grid, e.g. 7x7 for Lite0 -- upsampled bilinearly to the input like the CAM (one per image,
    seeded). Summary: mean AUCs, the reduction of the mean deletion AUC against the random
    map's with a paired bootstrap 95 % interval over images, the median per-image ratio and the
    share of images where the method's deletion AUC is below the random map's. With
    ``insertion_all=False`` only the first method and the random map get an insertion curve
    (the others: deletion only, insertion reported as null). ``start_at`` skips the curves of
    the first images (their random maps are still drawn, so a run split into shards draws the
    same maps as one run; merge the per-image lines with ``--summarise``).
    """
    score = score_fn(ex, target, device)
    rng = np.random.default_rng(seed)
    acc: dict[str, list[tuple[float, float]]] = {m: [] for m in [*methods, "random"]}
    start = time.perf_counter()
    for j, (img, row) in enumerate(items):
        pil, _ = load_image(img)
        x = ex.input_tensor(pil)
        index = None
        grid = None
        line: dict[str, object] = {}
        if j < start_at:
            e = ex.explain(pil, target, None, method=methods[0].partition(":smooth=")[0])
            random_map(e.grid_map.shape, ex.spec.image_size, rng)
            continue
        for k, m in enumerate(methods):
            name, _, opt = m.partition(":smooth=")
            e = ex.explain(pil, target, index, method=name, smooth=float(opt) if opt else None)
            index = e.index
            grid = grid or e.grid_map.shape
            if insertion_all or k == 0:
                f = faithfulness(score, x, e.input_map, e.index, steps=steps, seed=seed)
            else:
                dc = curve(score, x, e.input_map, e.index, mode="deletion", steps=steps, seed=seed)
                f = Faithfulness(auc(dc), float("nan"))
            acc[m].append((f.deletion, f.insertion))
            line[m] = [round(f.deletion, 4), round(f.insertion, 4) if np.isfinite(f.insertion) else None]
        rmap = random_map(grid, ex.spec.image_size, rng)  # type: ignore[arg-type]
        f = faithfulness(score, x, rmap, index, steps=steps, seed=seed)  # type: ignore[arg-type]
        acc["random"].append((f.deletion, f.insertion))
        line["random"] = [round(f.deletion, 4), round(f.insertion, 4)]
        if per_image:
            emit(
                bench="explain_faithfulness_image",
                model=ex.model_id,
                target=tname,
                i=j,
                id=row.get("id", ""),
                type=row.get("articleType", ""),
                grid=list(grid or ()),
                seconds=round(time.perf_counter() - start, 1),
                **line,
            )
    summarise(ex.model_id, tname, acc, steps, list(grid or ()), seed, time.perf_counter() - start)


def summarise(
    model: str,
    tname: str,
    acc: dict[str, list[tuple[float, float]]],
    steps: int,
    grid: list[int],
    seed: int,
    seconds: float = 0.0,
) -> None:
    """One summary line per method (and the random map) from per-image (deletion, insertion) AUCs."""
    rand = np.asarray(acc["random"])
    for m, vals in acc.items():
        v = np.asarray(vals, dtype=np.float64)
        d, i = float(v[:, 0].mean()), float(v[:, 1].mean())
        ins = bool(np.isfinite(i))
        emit(
            bench="explain_faithfulness",
            model=model,
            target=tname,
            method=m,
            n=len(v),
            steps=steps,
            random_grid=grid,
            deletion_auc=round(d, 4),
            insertion_auc=round(i, 4) if ins else None,
            random_deletion_auc=round(float(rand[:, 0].mean()), 4),
            random_insertion_auc=round(float(rand[:, 1].mean()), 4),
            deletion_vs_random=round(d / float(rand[:, 0].mean()), 3),
            insertion_vs_random=round(i / float(rand[:, 1].mean()), 3) if ins else None,
            deletion_reduction_pct=round(100 * (1 - d / float(rand[:, 0].mean())), 1),
            deletion_reduction_ci95=bootstrap_reduction(v[:, 0], rand[:, 0], seed),
            median_deletion_ratio=round(float(np.median(v[:, 0] / np.maximum(rand[:, 0], 1e-9))), 3),
            deletion_beats_random_share=round(float(np.mean(v[:, 0] < rand[:, 0])), 3),
            insertion_beats_random_share=round(float(np.mean(v[:, 1] > rand[:, 1])), 3) if ins else None,
            seconds=round(seconds, 1),
        )


def summarise_files(paths: list[Path], steps: int, seed: int) -> None:
    """Merge the per-image lines (``--per-image``) of one or more runs / shards and summarise them
    per (model, target); an image seen twice (same index) counts once."""
    groups: dict[tuple[str, str], dict[int, dict]] = {}
    for path in paths:
        for text in path.read_text().splitlines():
            if '"explain_faithfulness_image"' not in text:
                continue
            row = json.loads(text)
            groups.setdefault((row["model"], row["target"]), {})[int(row["i"])] = row
    for (model, tname), by_index in groups.items():
        rows = [by_index[i] for i in sorted(by_index)]
        methods = [k for k, v in rows[0].items() if isinstance(v, list) and k != "grid"]
        methods = [m for m in methods if m != "random"] + ["random"]
        acc = {m: [(r[m][0], np.nan if r[m][1] is None else r[m][1]) for r in rows] for m in methods}
        summarise(model, tname, acc, steps, rows[0]["grid"], seed)


def vit_code_path() -> None:
    """Randomly initialised ViT: token Grad-CAM and attention rollout run (no AUC claim)."""
    ex = Explainer("timm:vit_tiny_patch16_224?random=1")
    img = synthetic(1)[0][0]
    for m in ("gradcam", "gradcam++", "rollout"):
        e = ex.explain(img, ImageNetTarget(ex.model_id), method=m)
        emit(
            bench="explain_vit_code_path",
            model=ex.model_id,
            method=m,
            grid=list(e.grid_map.shape),
            finite=bool(np.isfinite(e.input_map).all()),
            seconds=round(e.seconds, 3),
        )


def contact_sheet(ex: Explainer, target: object, items: list, match_pairs: list, path: Path) -> None:
    from catalens.explain.match import explain_match
    from catalens.explain.render import caption, grid

    tiles = []
    for img, row in items:
        e = ex.explain(img, target)
        ov = e.overlay().resize((150, 200))
        tiles.append(caption(ov, f"{e.label} {e.probability:.2f} | {row.get('articleType', '')}", height=16))
    rows = [tiles[i : i + 6] for i in range(0, len(tiles), 6)]
    for q, m in match_pairs:
        me = explain_match(ex, q, m)
        r = me.render(height=200)
        rows.append([r])
    sheet = grid(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)
    emit(bench="explain_contact_sheet", path=str(path), size=list(sheet.size), bytes=path.stat().st_size)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--split",
        choices=("select", "report", "all"),
        default="report",
        help="half of the data set to sample (select: choosing the method; report: reported numbers)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="efficientnet-lite0,efficientnet-lite2")
    ap.add_argument(
        "--methods",
        default="",
        help="methods to score (default: gradcam,gradcam++ on the first model, gradcam after); "
        "METHOD:smooth=S sets the map smoothing (default: the library's DEFAULT_SMOOTH; 0: none)",
    )
    ap.add_argument("--timing-repeats", type=int, default=15)
    ap.add_argument("--per-image", action="store_true", help="also print one line per image (AUCs)")
    ap.add_argument("--start", type=int, default=0, help="skip the curves of the first START images (shards)")
    ap.add_argument(
        "--summarise",
        type=Path,
        nargs="+",
        default=None,
        help="only merge the per-image lines of these output files (shards) and print the summary",
    )
    ap.add_argument(
        "--insertion-first-only",
        action="store_true",
        help="insertion curves only for the first method and the random map (saves time)",
    )
    ap.add_argument("--timing-only", action="store_true")
    ap.add_argument(
        "--synthetic", action="store_true", help="synthetic images (timing on machines without data)"
    )
    ap.add_argument("--sheet", type=Path, default=None, help="write the contact sheet PNG here")
    ap.add_argument("--no-vit", action="store_true")
    ap.add_argument("--no-builtin", action="store_true", help="skip the built-in taxonomy target on Lite0")
    ap.add_argument(
        "--device", default="cpu", help="where the perturbed batches of the AUC curves run (cpu, cuda)"
    )
    args = ap.parse_args()
    if args.summarise:
        summarise_files(args.summarise, args.steps, args.seed)
        return 0
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    items = (
        synthetic(args.n) if args.synthetic else sample(args.data.resolve(), args.n, args.seed, args.split)
    )
    for k, name in enumerate(args.models.split(",")):
        ex = Explainer(name)
        targets = [("imagenet", ImageNetTarget(name))]
        if name == "efficientnet-lite0" and not args.no_builtin:
            targets.insert(0, ("builtin/subcategory", classifier_target(None, "builtin")))  # type: ignore[arg-type]
        tname, target = targets[0]
        emit(
            bench="explain_timing",
            model=name,
            target=tname,
            method="gradcam",
            threads=args.threads,
            **timing(ex, target, items, args.timing_repeats),
        )
        if args.timing_only:
            continue
        for tname, target in targets:
            methods = (
                args.methods.split(",")
                if args.methods
                else (["gradcam", "gradcam++"] if k == 0 else ["gradcam"])
            )
            faithfulness_run(
                ex,
                target,
                tname,
                items,
                methods,
                args.steps,
                args.seed,
                args.device,
                args.per_image,
                not args.insertion_first_only,
                args.start,
            )
        if args.sheet is not None and k == 0 and not args.synthetic:
            rows = list(csv.DictReader(open(args.data / "labels.csv")))
            by_type: dict[str, list[Path]] = {}
            for r in rows:
                by_type.setdefault(r["articleType"], []).append(args.data / r["image"])
            pairs = [
                (by_type[t][0], by_type[t][1])
                for t in ("Watches", "Casual Shoes")
                if len(by_type.get(t, [])) > 1
            ]
            contact_sheet(ex, targets[0][1], items[:12], pairs, args.sheet)
    if not args.no_vit:
        vit_code_path()
    return 0


if __name__ == "__main__":
    sys.exit(main())
