"""Product detection: synthetic multi-product scenes and real user photos, crop vs whole photo.

    python bench/detect.py --half dev        # choose here (crop style, padding)
    python bench/detect.py --half lockbox    # report once

Splits (md5 of ``detect:<id>``, see bench/README.md):
- myntra-dev products: train 70% (the only photos the packaged detector was trained on; the trainer
  gets ``--exclude bench/data/detect_heldout.txt``), dev 15%, lockbox 15%; myntra-fullres-dev
  products (never trained on): dev / lockbox halves; clothing-dev *validation* photos (their
  corners were never training backgrounds: the trainer used the train split): dev / lockbox halves.

Synthetic scenes are made by this script, not by ``catalens.detect.scenes``: its own layouts (a
loose grid, as in a flat-lay, or free placement), its own textures (linen, gradient, dots, parquet)
and corners of the half's clothing-dev validation photos, 2-5 held-out products each, rendered at
640 px (the speed target's size) and read again at 256 px (a small photo).

Measured, each in this one run:
- boxes at IoU 0.5: recall and false boxes per image at the packaged threshold, and the recall where
  the threshold gives one false box per image; category accuracy of matched boxes; mask IoU;
- exact-product search R@10 per pasted product: the detected crop (on white, or plain) as the query
  against a gallery of all myntra-dev + fullres photos, vs the whole scene as the query;
- baseColour of each product from its crop (``dominant_colours``) vs from the whole scene;
- clothing-dev user photos (one garment each): top-1 / kNN-10 coarse category of the nearest
  catalog products, crop of the best detection vs whole photo; the detector's own category;
- speed: detection ms per 640 px photo (median of 3 passes) and its share of an end-to-end search.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from catalens.classify.colour.features import dominant_colours
from catalens.detect.categories import categories, category_of, garment_category
from catalens.detect.crops import product_crop
from catalens.detect.cutouts import cut_out
from catalens.detect.detector import Detector, iou

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CATALENS_SHARED_DATA", ROOT.parent / "shared" / "data"))
SCENE = 640
SMALL = 256


def u(key: str) -> float:
    return int(hashlib.md5(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def myntra_part(pid: str) -> str:
    x = u(f"detect:{pid}")
    return "train" if x < 0.7 else ("dev" if x < 0.85 else "lockbox")


def half_part(key: str) -> str:
    return "dev" if u(f"detect:{key}") < 0.5 else "lockbox"


def write_exclude() -> None:
    rows = list(csv.DictReader(open(DATA / "myntra-dev" / "labels.csv", encoding="utf-8")))
    held = sorted(r["image"] for r in rows if myntra_part(r["id"]) != "train")
    (ROOT / "bench" / "data" / "detect_heldout.txt").write_text("\n".join(held) + "\n")


# ---- this benchmark's own scenes ---------------------------------------------------------------


def bench_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    base = rng.uniform(60, 235, 3)
    other = np.clip(base + rng.uniform(-70, 70, 3), 0, 255)
    kind = rng.integers(4)
    if kind == 0:  # linen: fine crossed threads
        t = 0.5 + 0.25 * np.sin(xx * rng.uniform(1.5, 3)) * np.sin(yy * rng.uniform(1.5, 3))
        t += rng.normal(0, 0.08, (size, size))
    elif kind == 1:  # diagonal gradient
        t = (xx + yy) / (2 * size)
    elif kind == 2:  # polka dots
        step = rng.uniform(20, 70)
        t = ((((xx % step) - step / 2) ** 2 + ((yy % step) - step / 2) ** 2) < (step / 5) ** 2).astype(
            np.float32
        )
    else:  # parquet: alternating short boards
        b = rng.uniform(30, 80)
        t = ((np.floor(xx / b) + np.floor(yy / (b / 3))) % 3) / 3 + 0.1 * np.sin(xx / 3)
    t = np.clip(t, 0, 1)[..., None]
    return np.clip(base * (1 - t) + other * t, 0, 255).astype(np.uint8)


def photo_corner(path: Path, rng: np.random.Generator, size: int) -> np.ndarray:
    with Image.open(path) as im:
        img = im.convert("RGB")
    w, h = img.size
    cw, ch = int(w * 0.3), int(h * 0.3)
    x = 0 if rng.random() < 0.5 else w - cw
    y = 0 if rng.random() < 0.5 else h - ch
    return np.asarray(img.crop((x, y, x + cw, y + ch)).resize((size, size), Image.BILINEAR))


def make_scene(
    products: list[dict], bg: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, list[dict]]:
    """Paste 2-5 cut-outs: a loose grid (flat-lay) or free placement; truth = visible masks."""
    size = bg.shape[0]
    canvas = bg.astype(np.float32)
    n = len(products)
    grid = rng.random() < 0.5
    cols = int(np.ceil(np.sqrt(n)))
    rows_n = int(np.ceil(n / cols))
    alphas, keep = [], []
    for i, p in enumerate(products):
        rgba = p["cut"].rgba
        h, w = rgba.shape[:2]
        if grid:
            cell_w, cell_h = size / cols, size / rows_n
            k = min(cell_w / w, cell_h / h) * rng.uniform(0.6, 0.9)
            cx = (i % cols + 0.5) * cell_w + rng.uniform(-0.1, 0.1) * cell_w
            cy = (i // cols + 0.5) * cell_h + rng.uniform(-0.1, 0.1) * cell_h
        else:
            k = size * rng.uniform(0.25, 0.5) / max(h, w)
            cx, cy = rng.uniform(0.2, 0.8) * size, rng.uniform(0.2, 0.8) * size
        im = Image.fromarray(rgba).resize((max(4, int(w * k)), max(4, int(h * k))), Image.LANCZOS)
        arr = np.asarray(im).astype(np.float32)
        x0, y0 = int(cx - arr.shape[1] / 2), int(cy - arr.shape[0] / 2)
        full = np.zeros((size, size), np.float32)
        xa, ya, xb, yb = max(0, x0), max(0, y0), min(size, x0 + arr.shape[1]), min(size, y0 + arr.shape[0])
        if xb <= xa or yb <= ya:
            continue
        part = arr[ya - y0 : yb - y0, xa - x0 : xb - x0]
        a = part[..., 3:4] / 255.0
        canvas[ya:yb, xa:xb] = canvas[ya:yb, xa:xb] * (1 - a) + part[..., :3] * a
        full[ya:yb, xa:xb] = a[..., 0]
        alphas = [prev * (1 - full) for prev in alphas]
        alphas.append(full)
        keep.append((p, float(full.sum())))
    truth = []
    for (p, area), alpha in zip(keep, alphas, strict=True):
        mask = alpha >= 0.5
        if float(alpha.sum()) < 0.6 * area or not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        truth.append({**p, "box": (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), "mask": mask})
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8), truth


# ---- measuring -----------------------------------------------------------------------------------


def match(dets: list, truth: list[dict], threshold: float) -> tuple[list[tuple[dict, object]], int]:
    """Greedy one-to-one matching at IoU 0.5 (best score first): [(truth, detection)], false boxes."""
    gt = np.array([t["box"] for t in truth], np.float32).reshape(-1, 4)
    used = np.zeros(len(truth), bool)
    pairs, false = [], 0
    for d in dets:
        if d.score < threshold:
            continue
        if len(truth):
            ov = iou(np.array(d.box, np.float32), gt)
            ov[used] = -1
            j = int(ov.argmax())
            if ov[j] >= 0.5:
                used[j] = True
                pairs.append((truth[j], d))
                continue
        false += 1
    return pairs, false


def encode(encoder, images: list[Image.Image]) -> np.ndarray:
    out = []
    for s in range(0, len(images), 64):
        batch = np.stack(
            [np.asarray(encoder.preprocess(im.convert("RGB")), np.float32) for im in images[s : s + 64]]
        )
        v = np.asarray(encoder.encode(batch), np.float32)
        out.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--half", choices=("dev", "lockbox"), required=True)
    ap.add_argument("--scenes", type=int, default=150)
    ap.add_argument("--model-dir", type=Path, help="detector folder (default: the packaged one)")
    ap.add_argument(
        "--write-exclude", action="store_true", help="rewrite bench/data/detect_heldout.txt and exit"
    )
    args = ap.parse_args()
    if args.write_exclude:
        write_exclude()
        return
    from catalens.models import load_image_encoder

    t_start = time.perf_counter()
    det = Detector(args.model_dir)
    cats = categories()
    rng = np.random.default_rng(7 if args.half == "dev" else 11)

    # products of this half, cut out (the truth masks come from the white backdrop)
    products, gallery_paths, gallery_keys, gallery_cat = [], [], [], []
    for source in ("myntra-dev", "myntra-fullres-dev"):
        for r in csv.DictReader(open(DATA / source / "labels.csv", encoding="utf-8")):
            path = DATA / source / r["image"]
            key = f"{source}:{r['id']}"
            gallery_paths.append(path)
            gallery_keys.append(key)
            gallery_cat.append(category_of(article_type=r["articleType"], sub_category=r["subCategory"]))
            part = myntra_part(r["id"]) if source == "myntra-dev" else half_part(r["id"])
            cat = gallery_cat[-1]
            if part != args.half or cat is None:
                continue
            with Image.open(path) as im:
                im.draft("RGB", (800, 800))
                rgb = np.asarray(im.convert("RGB"))
            cut = cut_out(rgb)
            if cut is not None:
                products.append({"key": key, "cut": cut, "cat": cats.index(cat), "colour": r["baseColour"]})
    user = [
        r
        for r in csv.DictReader(open(DATA / "clothing-dev" / "labels.csv", encoding="utf-8"))
        if r["split"] == "validation" and half_part(r["image"]) == args.half
    ]
    backgrounds = [DATA / "clothing-dev" / r["image"] for r in user]

    # scenes
    scenes = []
    for _ in range(args.scenes):
        n = int(rng.integers(2, 6))
        chosen = [products[i] for i in rng.choice(len(products), n, replace=False)]
        bg = (
            photo_corner(backgrounds[int(rng.integers(len(backgrounds)))], rng, SCENE)
            if rng.random() < 0.5
            else bench_texture(rng, SCENE)
        )
        img, truth = make_scene(chosen, bg, rng)
        scenes.append((img, truth))

    # detection at 640 and at 256 px
    thr = det.threshold
    res: dict[str, dict] = {}
    all_dets = {}
    times = []
    for label, size in (("640", SCENE), ("256", SMALL)):
        sweep = {t: [0, 0] for t in np.round(np.arange(0.05, 0.95, 0.01), 2)}
        n_true = 0
        pairs_at, false_at, mask_iou, cat_ok = [], 0, [], 0
        dets_here = []
        for img, truth in scenes:
            k = size / SCENE
            small = (
                img if size == SCENE else np.asarray(Image.fromarray(img).resize((size, size), Image.LANCZOS))
            )
            t0 = time.perf_counter()
            dets = det.detect(small, threshold=0.05)
            if size == SCENE:
                times.append(time.perf_counter() - t0)
            # back to 640 px coordinates for matching
            dets = [
                type(d)(
                    tuple(v / k for v in d.box),
                    d.score,
                    d.category,
                    None
                    if d.mask is None
                    else (
                        np.asarray(Image.fromarray(d.mask).resize((SCENE, SCENE), Image.NEAREST))
                        if size != SCENE
                        else d.mask
                    ),
                )
                for d in dets
            ]
            dets_here.append(dets)
            n_true += len(truth)
            for t in sweep:
                p, f = match(dets, truth, t)
                sweep[t][0] += len(p)
                sweep[t][1] += f
            p, f = match(dets, truth, thr)
            false_at += f
            pairs_at += p
            for tr, d in p:
                cat_ok += int(cats.index(d.category) == tr["cat"])
                if d.mask is not None:
                    inter = float((d.mask & tr["mask"]).sum())
                    mask_iou.append(inter / max(1.0, float((d.mask | tr["mask"]).sum())))
        at_one = max((v[0] for t, v in sweep.items() if v[1] <= len(scenes)), default=0)
        res[label] = {
            "products": n_true,
            "threshold": thr,
            "recall": round(len(pairs_at) / n_true, 4),
            "false_per_image": round(false_at / len(scenes), 3),
            "recall_at_1_false_per_image": round(at_one / n_true, 4),
            "category_accuracy": round(cat_ok / max(1, len(pairs_at)), 4),
            "mask_iou_median": round(float(np.median(mask_iou)), 4) if mask_iou else None,
            "mask_iou_mean": round(float(np.mean(mask_iou)), 4) if mask_iou else None,
        }
        all_dets[label] = dets_here
    # speed: three passes over 40 scenes at 640 px (median per pass)
    passes = []
    for _ in range(3):
        t0 = time.perf_counter()
        for img, _ in scenes[:40]:
            det.detect(img)
        passes.append((time.perf_counter() - t0) / 40 * 1000)

    # exact-product search, crop vs whole scene (at 640 px)
    encoder = load_image_encoder(None, device="cpu")
    gal_imgs = []
    for p in gallery_paths:
        with Image.open(p) as im:
            im.draft("RGB", (448, 448))
            gal_imgs.append(im.convert("RGB"))
    t0 = time.perf_counter()
    gallery = encode(encoder, gal_imgs)
    gal_ms = (time.perf_counter() - t0) / len(gal_imgs) * 1000
    key_index = {k: i for i, k in enumerate(gallery_keys)}
    whole_vecs = encode(encoder, [Image.fromarray(img) for img, _ in scenes])
    search = {"whole": [0, 0]}
    colour = {"whole": 0, "crop_on_white": 0, "crop_plain": 0, "n": 0}
    for style in ("crop_on_white", "crop_plain"):
        search[style] = [0, 0]
    for (img, truth), dets, wv in zip(scenes, all_dets["640"], whole_vecs, strict=True):
        top_whole = set(np.argsort(-(gallery @ wv))[:10])
        whole_colour = dominant_colours(Image.fromarray(img)).primary
        pairs, _ = match(dets, truth, thr)
        matched = {id(tr): d for tr, d in pairs}
        for tr in truth:
            gi = key_index[tr["key"]]
            search["whole"][0] += int(gi in top_whole)
            search["whole"][1] += 1
            colour["n"] += 1
            colour["whole"] += int(whole_colour == tr["colour"])
            d = matched.get(id(tr))
            for style, on_white in (("crop_on_white", True), ("crop_plain", False)):
                search[style][1] += 1
                if d is None:
                    continue
                crop = product_crop(img, d, on_white=on_white)
                v = encode(encoder, [crop])[0]
                search[style][0] += int(gi in set(np.argsort(-(gallery @ v))[:10]))
                colour[style] += int(dominant_colours(crop).primary == tr["colour"])
    search_r10 = {k: round(v[0] / max(1, v[1]), 4) for k, v in search.items()}
    # end to end, per 640 px photo: whole-photo search vs detect + cut out + embed + search each
    e2e_whole, e2e_each = [], []
    for img, _ in scenes[:40]:
        t0 = time.perf_counter()
        v = encode(encoder, [Image.fromarray(img)])[0]
        np.argsort(-(gallery @ v))[:10]
        e2e_whole.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        dets = det.detect(img)
        if dets:
            vs = encode(encoder, [product_crop(img, d) for d in dets])
            np.argsort(-(gallery @ vs.T), axis=0)[:10]
        e2e_each.append(time.perf_counter() - t0)
    colour_acc = {k: round(v / max(1, colour["n"]), 4) for k, v in colour.items() if k != "n"}

    # real user photos: clothing-dev validation half
    gal_cat = np.array([c or "" for c in gallery_cat])
    user_res = {
        k: 0
        for k in ("whole_top1", "whole_knn10", "crop_top1", "crop_knn10", "detector_category", "no_detection")
    }
    user_res_plain = {"crop_top1": 0, "crop_knn10": 0}
    for r in user:
        truth_cat = garment_category(r["label"])
        with Image.open(DATA / "clothing-dev" / r["image"]) as im:
            rgb = np.asarray(im.convert("RGB"))
        dets = det.detect(rgb)
        vw = encode(encoder, [Image.fromarray(rgb)])[0]
        order = np.argsort(-(gallery @ vw))
        user_res["whole_top1"] += int(gal_cat[order[0]] == truth_cat)
        vals, counts = np.unique(gal_cat[order[:10]], return_counts=True)
        user_res["whole_knn10"] += int(vals[np.argmax(counts)] == truth_cat)
        if not dets:
            user_res["no_detection"] += 1
            user_res["crop_top1"] += int(gal_cat[order[0]] == truth_cat)  # falls back to the whole photo
            user_res["crop_knn10"] += int(vals[np.argmax(counts)] == truth_cat)
            user_res_plain["crop_top1"] += int(gal_cat[order[0]] == truth_cat)
            user_res_plain["crop_knn10"] += int(vals[np.argmax(counts)] == truth_cat)
            continue
        user_res["detector_category"] += int(dets[0].category == truth_cat)
        for target, on_white in ((user_res, True), (user_res_plain, False)):
            vc = encode(encoder, [product_crop(rgb, dets[0], on_white=on_white)])[0]
            oc = np.argsort(-(gallery @ vc))
            target["crop_top1"] += int(gal_cat[oc[0]] == truth_cat)
            vals, counts = np.unique(gal_cat[oc[:10]], return_counts=True)
            target["crop_knn10"] += int(vals[np.argmax(counts)] == truth_cat)
    n_user = len(user)
    user_out = {k: round(v / n_user, 4) for k, v in user_res.items()}
    user_out["plain_crop_top1"] = round(user_res_plain["crop_top1"] / n_user, 4)
    user_out["plain_crop_knn10"] = round(user_res_plain["crop_knn10"] / n_user, 4)
    user_out["photos"] = n_user

    det_ms = statistics.median(passes)
    result = {
        "bench": "detect",
        "half": args.half,
        "scenes": len(scenes),
        "products_in_half": len(products),
        "detector": det.meta.get("version"),
        "boxes": res,
        "search_r10": search_r10,
        "search_ratio_crop_vs_whole": round(search_r10["crop_on_white"] / max(1e-9, search_r10["whole"]), 3),
        "colour_accuracy": colour_acc,
        "user_photos": user_out,
        "speed": {
            "detect_ms_640_median_of_3": round(det_ms, 1),
            "detect_ms_passes": [round(x, 1) for x in passes],
            "embed_ms_per_image": round(gal_ms, 2),
            "search_whole_ms_median": round(statistics.median(e2e_whole) * 1000, 1),
            "search_each_ms_median": round(statistics.median(e2e_each) * 1000, 1),
            "detect_share_of_search_each": round(det_ms / 1000 / statistics.median(e2e_each), 3),
            "loadavg": os.getloadavg(),
        },
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
