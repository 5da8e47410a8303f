"""Train the packaged product detector from a folder of catalog photos on white backdrops.

    python -m catalens.detect.train IMAGES_DIR --labels labels.csv --backgrounds PHOTO_DIR \\
        --out DIR [--exclude PATHS.txt] [--scenes 4000] [--epochs 24]

1. Every labelled photo whose product can be cut from a white backdrop (:mod:`.cutouts`) and whose
   labels map onto a coarse category (``data/categories.yaml``) becomes a cut-out.
2. One product in ten (by a hash of its id) is held aside for validation scenes.
3. ``--scenes`` synthetic scenes (:mod:`.scenes`: 0-5 products on textures or on corners of the
   ``--backgrounds`` photos) go through the frozen Lite0 front once; the maps are kept (float16).
4. The head (:mod:`.net`) is fitted (AdamW, one-cycle): CenterNet focal loss on the centre
   heatmap, L1 on box size and centre offset, binary cross-entropy + Dice on the product mask.
5. The score threshold is the one with the best F1 of boxes at IoU 0.5 on validation scenes;
   front + head are exported as ``detector.onnx`` with ``detector.json`` (categories, threshold,
   validation figures, the command).

Labels CSV: an ``image`` column (path relative to IMAGES_DIR's parent or to IMAGES_DIR) and
``articleType`` / ``subCategory`` columns (Myntra's names), or a ``category`` column naming a coarse
category directly. On two cores, 4,000 scenes take about 4 minutes to map and ~1 minute an epoch.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from catalens.detect.categories import categories, category_of
from catalens.detect.cutouts import cut_out
from catalens.detect.detector import INPUT_LONG, STRIDE, VERSION, decode, iou
from catalens.detect.scenes import SIZE, Item, Scene, compose, photo_patch, texture

SCENE_COUNTS = (0, 1, 2, 3, 4, 5)
SCENE_WEIGHTS = (0.05, 0.25, 0.2, 0.2, 0.15, 0.15)
GAUSS_ALPHA = 0.54  # centre Gaussian sigma = alpha * box side / 6 (TTFNet)


# ---- data -----------------------------------------------------------------------------------------


def _resolve(images: Path, name: str) -> Path:
    for base in (images.parent, images):
        p = base / name
        if p.is_file():
            return p
    return images / Path(name).name


def read_labels(
    images: Path, labels: Path, exclude: set[str]
) -> tuple[list[tuple[Path, str, str]], dict[str, int]]:
    """[(photo, product key, category)] of the labelled photos, and counts of what was left out."""
    skipped = {"excluded": 0, "no_category": 0, "missing": 0}
    rows: list[tuple[Path, str, str]] = []
    with labels.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "image" not in reader.fieldnames:
            raise SystemExit(f"{labels}: needs an 'image' column (found {reader.fieldnames})")
        known = set(categories())
        for row in reader:
            name = row["image"]
            if name in exclude or Path(name).name in exclude or Path(name).stem in exclude:
                skipped["excluded"] += 1
                continue
            cat = row.get("category") or category_of(
                article_type=row.get("articleType"), sub_category=row.get("subCategory")
            )
            if cat not in known:
                skipped["no_category"] += 1
                continue
            path = _resolve(images, name)
            if not path.is_file():
                skipped["missing"] += 1
                continue
            rows.append((path, str(row.get("id") or Path(name).stem), str(cat)))
    return rows, skipped


def load_items(rows: Sequence[tuple[Path, str, str]]) -> tuple[list[Item], int]:
    """Cut-outs of the photos that have a white backdrop; and how many had none."""
    from PIL import Image

    cats = categories()
    items: list[Item] = []
    none = 0
    for path, key, cat in rows:
        try:
            with Image.open(path) as im:
                im.draft("RGB", (800, 800))
                rgb = np.asarray(im.convert("RGB"))
        except OSError as exc:
            print(f"skipped {path}: {exc}", file=sys.stderr)
            none += 1
            continue
        if max(rgb.shape[:2]) > 800:
            import cv2

            k = 800 / max(rgb.shape[:2])
            rgb = cv2.resize(
                rgb, (int(rgb.shape[1] * k), int(rgb.shape[0] * k)), interpolation=cv2.INTER_AREA
            )
        cut = cut_out(rgb)
        if cut is None:
            none += 1
            continue
        items.append(Item(cut, cats.index(cat), key))
    return items, none


def held_aside(key: str, share: float = 0.1) -> bool:
    """True for the products kept out of training scenes (validation), by a hash of the key."""
    return int(hashlib.sha1(f"detect-val:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share


def background_photos(dirs: Sequence[Path], limit: int = 3000) -> list[Path]:
    exts = {".jpg", ".jpeg", ".png", ".webp"}
    out = sorted(p for d in dirs for p in d.rglob("*") if p.suffix.lower() in exts)
    return out[:: max(1, len(out) // limit)]


def make_scene(items: Sequence[Item], backgrounds: Sequence[Path], rng: np.random.Generator) -> Scene:
    from PIL import Image

    n = int(rng.choice(SCENE_COUNTS, p=SCENE_WEIGHTS))
    chosen = [items[i] for i in rng.choice(len(items), size=min(n, len(items)), replace=False)]
    bg = None
    if backgrounds and rng.random() < 0.5:
        path = backgrounds[int(rng.integers(len(backgrounds)))]
        try:
            with Image.open(path) as im:
                im.draft("RGB", (SIZE * 2, SIZE * 2))
                bg = photo_patch(
                    np.asarray(im.convert("RGB")), rng, SIZE, share=float(rng.uniform(0.25, 0.4))
                )
        except OSError:
            bg = None
    if bg is None:
        bg = texture(rng, SIZE)
    return compose(chosen, bg, rng)


def map_scenes(
    items: Sequence[Item], backgrounds: Sequence[Path], n: int, seed: int
) -> tuple[dict[str, np.ndarray], list[list[tuple[tuple[float, ...], int]]]]:
    """Front maps (float16) and mask targets (uint8, stride 4) of ``n`` new scenes, and their boxes."""
    import cv2
    import torch

    from catalens.detect.detector import prepare
    from catalens.detect.net import build_front

    torch.set_num_threads(2)
    front = build_front()
    rng = np.random.default_rng(seed)
    g = SIZE // 4
    out = {
        "f4": np.zeros((n, 24, g, g), np.float16),
        "f8": np.zeros((n, 40, g // 2, g // 2), np.float16),
        "f16": np.zeros((n, 112, g // 4, g // 4), np.float16),
        "m4": np.zeros((n, g, g), np.uint8),
    }
    truth: list[list[tuple[tuple[float, ...], int]]] = []
    with torch.inference_mode():
        for i in range(n):
            scene = make_scene(items, backgrounds, rng)
            maps = front(torch.from_numpy(prepare(scene.image, SIZE)))
            for key, m in zip(("f4", "f8", "f16"), maps, strict=True):
                out[key][i] = m[0].half().numpy()
            union = np.zeros((SIZE, SIZE), np.float32)
            for p in scene.items:
                union[p.mask] = 1.0
            out["m4"][i] = np.round(cv2.resize(union, (g, g), interpolation=cv2.INTER_AREA) * 255).astype(
                np.uint8
            )
            truth.append([(p.box, p.category) for p in scene.items])
            if i % 500 == 0:
                print(f"{i}/{n} scenes mapped", flush=True)
    return out, truth


def heat_targets(
    boxes: Sequence[tuple[tuple[float, ...], int]], n_cat: int, grid: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(heat (C, g, g), box (4, g, g), weight (g, g)) targets of one scene."""
    heat = np.zeros((n_cat, grid, grid), np.float32)
    reg = np.zeros((4, grid, grid), np.float32)
    weight = np.zeros((grid, grid), np.float32)
    yy, xx = np.mgrid[:grid, :grid].astype(np.float32)
    for (x0, y0, x1, y1), cat in boxes:
        w, h = (x1 - x0) / STRIDE, (y1 - y0) / STRIDE
        cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
        ix, iy = min(grid - 1, int(cx)), min(grid - 1, int(cy))
        sx, sy = max(0.5, GAUSS_ALPHA * w / 6), max(0.5, GAUSS_ALPHA * h / 6)
        g = np.exp(-((xx - ix) ** 2) / (2 * sx * sx) - ((yy - iy) ** 2) / (2 * sy * sy))
        heat[cat] = np.maximum(heat[cat], g)
        heat[cat, iy, ix] = 1.0
        reg[:, iy, ix] = (np.log(max(w, 0.25)), np.log(max(h, 0.25)), cx - ix, cy - iy)
        weight[iy, ix] = 1.0
    return heat, reg, weight


# ---- fitting ----------------------------------------------------------------------------------------


def _losses(out: tuple[Any, ...], heat: Any, reg: Any, weight: Any, m4: Any) -> tuple[Any, Any, Any]:
    import torch
    import torch.nn.functional as F

    logit, box, mask = out
    p = torch.sigmoid(logit).clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    n_pos = pos.sum().clamp(min=1)
    focal = (
        -(
            (torch.log(p) * (1 - p) ** 2 * pos).sum()
            + (torch.log(1 - p) * p**2 * (1 - heat) ** 4 * (1 - pos)).sum()
        )
        / n_pos
    )
    box_l1 = (F.l1_loss(box, reg, reduction="none").sum(1) * weight).sum() / weight.sum().clamp(min=1)
    m = torch.sigmoid(mask[:, 0])
    bce = F.binary_cross_entropy_with_logits(mask[:, 0], m4)
    dice = 1 - (2 * (m * m4).sum((1, 2)) + 1) / (m.sum((1, 2)) + m4.sum((1, 2)) + 1)
    return focal, box_l1, bce + dice.mean()


def fit(
    maps: dict[str, np.ndarray],
    truth: Sequence[Sequence[tuple[tuple[float, ...], int]]],
    *,
    epochs: int,
    seed: int,
    batch: int = 16,
    log: bool = True,
) -> Any:
    """A fresh head fitted on all the given scenes (mirrored half the time)."""
    import torch

    from catalens.detect.net import build_head

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_cat = len(categories())
    grid = maps["f8"].shape[-1]
    targets = [heat_targets(t, n_cat, grid) for t in truth]
    flipped = [
        heat_targets([((SIZE - b[2], b[1], SIZE - b[0], b[3]), c) for b, c in t], n_cat, grid) for t in truth
    ]
    head = build_head(n_cat)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=1e-4)
    n = len(truth)
    steps = epochs * ((n + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    for epoch in range(epochs):
        head.train()
        order = rng.permutation(n)
        tot = np.zeros(3)
        t0 = time.perf_counter()
        for s in range(0, n, batch):
            b = np.sort(order[s : s + batch])
            flip = rng.random() < 0.5
            f = [torch.from_numpy(maps[k][b].astype(np.float32)) for k in ("f4", "f8", "f16")]
            m4 = torch.from_numpy(maps["m4"][b].astype(np.float32) / 255.0)
            src = flipped if flip else targets
            heat = torch.from_numpy(np.stack([src[i][0] for i in b]))
            reg = torch.from_numpy(np.stack([src[i][1] for i in b]))
            weight = torch.from_numpy(np.stack([src[i][2] for i in b]))
            if flip:
                f = [x.flip(3) for x in f]
                m4 = m4.flip(2)
            losses = _losses(head(*f), heat, reg, weight, m4)
            loss = losses[0] + losses[1] + losses[2]
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += [float(v.detach()) for v in losses]
        if log:
            k = max(1, (n + batch - 1) // batch)
            print(
                f"epoch {epoch + 1}/{epochs}: focal {tot[0] / k:.3f} box {tot[1] / k:.3f} "
                f"mask {tot[2] / k:.3f} ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    return head.eval()


def predict(head: Any, maps: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    import torch

    out = []
    with torch.inference_mode():
        for s in range(0, len(maps["f8"]), 32):
            f = [torch.from_numpy(maps[k][s : s + 32].astype(np.float32)) for k in ("f4", "f8", "f16")]
            heat, box, mask = head(*f)
            out += [(heat[i].numpy(), box[i].numpy(), mask[i, 0].numpy()) for i in range(len(heat))]
    return out


def box_metrics(
    found: Sequence[Sequence[tuple[np.ndarray, float, int]]],
    truth: Sequence[Sequence[tuple[tuple[float, ...], int]]],
    threshold: float,
    iou_min: float = 0.5,
) -> dict[str, float]:
    """Recall, false boxes per image, precision, F1 and category accuracy of the matched boxes
    (greedy one-to-one matching, best score first) at ``threshold``."""
    tp = fp = n_true = cat_ok = 0
    for dets, gts in zip(found, truth, strict=True):
        n_true += len(gts)
        gt_boxes = np.array([g[0] for g in gts], np.float32).reshape(-1, 4)
        used = np.zeros(len(gts), bool)
        for b, score, cat in dets:
            if score < threshold:
                continue
            if len(gts):
                ov = iou(np.asarray(b, np.float32), gt_boxes)
                ov[used] = -1
                j = int(ov.argmax())
                if ov[j] >= iou_min:
                    used[j] = True
                    tp += 1
                    cat_ok += int(cat == gts[j][1])
                    continue
            fp += 1
    recall = tp / max(1, n_true)
    precision = tp / max(1, tp + fp)
    return {
        "recall": round(recall, 4),
        "precision": round(precision, 4),
        "f1": round(2 * recall * precision / max(1e-9, recall + precision), 4),
        "false_per_image": round(fp / max(1, len(truth)), 4),
        "category_accuracy": round(cat_ok / max(1, tp), 4),
    }


def choose_threshold(found: Sequence[Any], truth: Sequence[Any]) -> tuple[float, dict[str, float]]:
    best = (0.3, box_metrics(found, truth, 0.3))
    for thr in np.arange(0.1, 0.71, 0.05):
        m = box_metrics(found, truth, float(thr))
        if m["f1"] > best[1]["f1"]:
            best = (round(float(thr), 2), m)
    return best


# ---- command line -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    t0 = time.perf_counter()
    exclude = set(args.exclude.read_text().split()) if args.exclude else set()
    rows, skipped = read_labels(args.images, args.labels, exclude)
    items, no_backdrop = load_items(rows)
    train_items = [it for it in items if not held_aside(it.key)]
    val_items = [it for it in items if held_aside(it.key)]
    if len(train_items) < 10 or len(val_items) < 2:
        raise SystemExit(f"too few cut-outs: {len(train_items)} for training, {len(val_items)} held aside")
    backgrounds = background_photos(args.backgrounds)
    print(
        f"{len(items)} cut-outs ({len(val_items)} held aside), {no_backdrop} photos without a white backdrop, "
        f"skipped {skipped}, {len(backgrounds)} background photos",
        flush=True,
    )
    maps, truth = map_scenes(train_items, backgrounds, args.scenes, args.seed)
    val_maps, val_truth = map_scenes(val_items, backgrounds, args.val_scenes, args.seed + 1000)
    mapped = time.perf_counter() - t0
    head = fit(maps, truth, epochs=args.epochs, seed=args.seed)
    thr, validation = _validate(head, val_maps, val_truth)
    args.out.mkdir(parents=True, exist_ok=True)
    from catalens.detect.net import export

    err = export(head, args.out / "detector.onnx")
    training = {
        "cutouts": len(train_items),
        "held_aside": len(val_items),
        "photos_without_backdrop": no_backdrop,
        "skipped": skipped,
        "background_photos": len(backgrounds),
    }
    meta = _detector_meta(args, argv, thr, training, validation, err)
    meta["seconds"] = {"maps": round(mapped, 1), "total": round(time.perf_counter() - t0, 1)}
    (args.out / "detector.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps({k: meta[k] for k in ("threshold", "validation", "seconds")}))


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, checked (too few scenes or epochs: exit)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", type=Path, help="folder of catalog photos on white backdrops")
    ap.add_argument(
        "--labels", type=Path, required=True, help="CSV: image, articleType/subCategory or category"
    )
    ap.add_argument(
        "--backgrounds",
        type=Path,
        nargs="*",
        default=[],
        help="folders of photos whose corners serve as backgrounds",
    )
    ap.add_argument("--out", type=Path, required=True, help="where to write detector.onnx and detector.json")
    ap.add_argument(
        "--exclude", type=Path, help="text file of image paths or stems to leave out (one per line)"
    )
    ap.add_argument("--scenes", type=int, default=4000)
    ap.add_argument("--val-scenes", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.scenes < 10 or args.epochs < 1:
        raise SystemExit("--scenes must be >= 10 and --epochs >= 1")
    return args


def _validate(head: Any, val_maps: dict[str, np.ndarray], val_truth: Any) -> tuple[float, dict[str, Any]]:
    """The score threshold with the best F1 on validation scenes and the validation figures."""
    raw = predict(head, val_maps)
    found = [decode(h, b, threshold=0.05) for h, b, _ in raw]
    thr, val = choose_threshold(found, val_truth)
    at_one = max(
        (box_metrics(found, val_truth, float(t)) for t in np.arange(0.05, 0.9, 0.01)),
        key=lambda m: m["recall"] if m["false_per_image"] <= 1.0 else -1,
    )
    inter = union = 0.0
    for (_, _, m), k in zip(raw, range(len(raw)), strict=False):
        pred = m >= 0
        tgt = val_maps["m4"][k] >= 128
        inter += float((pred & tgt).sum())
        union += float((pred | tgt).sum())
    return thr, {
        "at_threshold": val,
        "best_recall_at_1_false_per_image": at_one,
        "union_mask_iou": round(inter / max(1.0, union), 4),
    }


def _detector_meta(
    args: argparse.Namespace,
    argv: Sequence[str] | None,
    thr: float,
    training: dict[str, Any],
    validation: dict[str, Any],
    err: float,
) -> dict[str, Any]:
    """``detector.json`` (without its timings): categories, threshold, architecture, training, validation."""
    import torch

    return {
        "name": "detector",
        "version": VERSION,
        "task": "products in a photo: box, mask, score and coarse category",
        "categories": categories(),
        "threshold": thr,
        "threshold_rule": "best F1 of boxes at IoU 0.5 on validation scenes of held-aside products",
        "input_long_side": INPUT_LONG,
        "architecture": "EfficientNet-Lite0 stem + blocks[0:5] (packaged ImageNet weights, frozen; taps at "
        "stride 4/8/16) + trained head (stride-32 context, top-down separable-conv pyramid; centre heatmap, "
        "box size/offset at stride 8, product mask at stride 4)",
        "input": f"RGB scaled to [-1, 1], long side {INPUT_LONG}, sides multiples of 32",
        "training": {
            **training,
            "scenes": args.scenes,
            "epochs": args.epochs,
            "seed": args.seed,
            "torch": torch.__version__,
            "command": "python -m catalens.detect.train " + " ".join(sys.argv[1:] if argv is None else argv),
        },
        "validation": {"scenes": args.val_scenes, **validation},
        "onnx_max_abs_error": err,
    }


if __name__ == "__main__":
    main()
