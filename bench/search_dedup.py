"""Duplicate detection on a planted set: catalens vs imagededup (PHash, DHash, WHash, CNN), side by side.

    python bench/search_dedup.py [--n-orig 300 --n-other 600] [--seed 1] [--scale 100000] [--scale-only]

Prints JSON lines: one per method with precision / recall / F1 over pairs and seconds; with
--scale N also times catalens dedup on N synthetic catalog vectors (given the embeddings and
descriptors; see bench/search_dedup_scale.py, which can also be run on its own).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_dedup_planted import make_planted  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "myntra-dev"


def pairs_of(groups: list[list[str]]) -> set[frozenset[str]]:
    return {frozenset(p) for g in groups for p in itertools.combinations(sorted(set(g)), 2)}


def score(found: set[frozenset[str]], truth: set[frozenset[str]]) -> dict[str, float]:
    tp = len(found & truth)
    p = tp / len(found) if found else 0.0
    r = tp / len(truth) if truth else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4), "pairs_found": len(found)}


def emit(d: dict) -> None:
    print(json.dumps(d), flush=True)


def run_catalens(folder: Path, home: Path, truth: set[frozenset[str]]) -> dict:
    from catalens.core import Catalog

    cat = Catalog.open(home)
    t0 = time.perf_counter()
    cat.ingest(folder / "labels.csv", id_col="id", label_cols=["orig_id", "edit"])
    t_embed = time.perf_counter() - t0
    t1 = time.perf_counter()
    report = cat.dedup()
    t_dedup = time.perf_counter() - t1
    groups = [[Path(im["source"]).name for im in g["images"]] for g in report.to_dict()["groups"]]
    res = {
        "method": "catalens dedup (efficientnet-lite0 kNN + copy verification)",
        **score(pairs_of(groups), truth),
    }
    res.update(
        {"seconds_dedup": round(t_dedup, 2), "seconds_ingest_embed": round(t_embed, 2), "stats": report.stats}
    )
    # per-edit recall
    by_edit: dict[str, list[int]] = {}
    found = pairs_of(groups)
    for pair in truth:
        names = sorted(pair)
        kind = next((n.rsplit("_", 1)[-1][:-4] for n in names if n.startswith("c")), "?")
        by_edit.setdefault(kind, []).append(int(pair in found))
    res["recall_by_edit"] = {k: round(sum(v) / len(v), 3) for k, v in sorted(by_edit.items())}
    cat.close()
    return res


def _direct_pairs(dup: dict[str, list]) -> set[frozenset[str]]:
    """imagededup's own claims: (file, each file it lists as a duplicate), no transitive closure."""
    out = set()
    for k, vs in dup.items():
        for v in vs:
            name = v[0] if isinstance(v, tuple | list) else v
            if name != k:
                out.add(frozenset((k, name)))
    return out


def _catalens_backbone(model: str = "efficientnet-lite0") -> Any:
    """imagededup CustomModel wrapping catalens' packaged encoder (its MobileNetV3 weights need the internet)."""
    import torch
    from imagededup.utils.models import CustomModel

    from catalens.models import load_image_encoder

    enc = load_image_encoder(model, device="cpu")

    class Wrapped(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(np.asarray(enc.encode(x.numpy()), dtype=np.float32))

    return CustomModel(
        name=f"catalens-{model}", model=Wrapped(), transform=lambda im: torch.from_numpy(enc.preprocess(im))
    )


def run_imagededup(folder: Path, truth: set[frozenset[str]]) -> list[dict]:
    """imagededup at its default threshold, and (labelled as such) at the best threshold chosen on this set."""
    out = []
    try:
        from imagededup import methods
    except ImportError as exc:
        return [{"method": "imagededup", "error": f"not installed: {exc}"}]
    sweeps = {
        "PHash": ("max_distance_threshold", 10, [0, 2, 4, 6, 8, 10, 12]),
        "DHash": ("max_distance_threshold", 10, [0, 2, 4, 6, 8, 10]),
        "WHash": ("max_distance_threshold", 10, [0, 2, 4, 6, 8, 10]),
        "CNN": ("min_similarity_threshold", 0.9, [0.9, 0.93, 0.95, 0.97, 0.98, 0.99]),
    }
    for name, (arg, default, grid) in sweeps.items():
        t0 = time.perf_counter()
        note = None
        try:
            if name == "CNN":
                try:
                    hasher = methods.CNN(verbose=False)
                except Exception as exc:  # MobileNetV3 weights come from the internet
                    hasher = methods.CNN(verbose=False, model_config=_catalens_backbone())
                    note = f"default MobileNetV3 weights unavailable offline ({type(exc).__name__}); "
                    note += "backbone = catalens efficientnet-lite0 (CustomModel)"
                enc = hasher.encode_images(image_dir=str(folder))
                kw: dict[str, Any] = {"encoding_map": enc}
            else:
                hasher = getattr(methods, name)(verbose=False)
                kw = {"encoding_map": hasher.encode_images(image_dir=str(folder))}
            t_enc = time.perf_counter() - t0
            best = None
            for thr in grid:
                t1 = time.perf_counter()
                dup = hasher.find_duplicates(**kw, **{arg: thr})
                res = score(_direct_pairs(dup), truth)
                res["seconds"] = round(t_enc + time.perf_counter() - t1, 2)
                if thr == default:
                    out.append({"method": f"imagededup {name} (default {arg}={default})", **res})
                    if note:
                        out[-1]["note"] = note
                if best is None or res["f1"] > best[1]["f1"]:
                    best = (thr, res)
            assert best is not None
            out.append(
                {
                    "method": f"imagededup {name} (best {arg}={best[0]} chosen on this set: optimistic)",
                    **best[1],
                }
            )
        except Exception as exc:
            out.append({"method": f"imagededup {name}", "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
    return out


def scale_run(n: int) -> dict:
    """The scale benchmark of ``bench/search_dedup_scale.py`` (realistic look-alikes, 2% planted copies)."""
    from search_dedup_scale import run

    return run(n, 0.02, 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-orig", type=int, default=300)
    ap.add_argument("--n-other", type=int, default=600)
    ap.add_argument("--scale", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1, help="planted-set seed (thresholds were tuned on seed 0)")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument(
        "--data",
        default="myntra-dev",
        help="folder under ../shared/data (or a path) with labels.csv + images",
    )
    ap.add_argument("--base-size", default=None, help="shrink the originals to fit WxH first, e.g. 60x80")
    ap.add_argument("--no-imagededup", action="store_true")
    ap.add_argument("--scale-only", action="store_true", help="only the --scale timing")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    if args.scale_only:
        emit(scale_run(args.scale or 100_000))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="dedup-bench-"))
    folder = work / "images"
    src = Path(args.data) if Path(args.data).is_dir() else DATA.parent / args.data
    base = tuple(int(v) for v in args.base_size.lower().split("x")) if args.base_size else None
    truth_data = make_planted(src, folder, args.n_orig, args.n_other, seed=args.seed, base_size=base)
    truth = pairs_of(truth_data["groups"])
    emit(
        {
            "dataset": f"planted {src.name} (seed {args.seed})"
            + (f", originals fit {args.base_size}" if base else ""),
            "images": truth_data["n_images"],
            "truth_pairs": len(truth),
        }
    )
    emit(run_catalens(folder, work / "home", truth))
    # imagededup reads every file in the folder: keep only images there
    for res in [] if args.no_imagededup else run_imagededup(folder, truth):
        emit(res)
    if args.scale:
        emit(scale_run(args.scale))


if __name__ == "__main__":
    main()
