"""Duplicate detection on a planted set: catalens vs imagededup (PHash, DHash, WHash, CNN), side by side.

    python bench/search_dedup.py [--n-orig 300 --n-other 600] [--scale 100000]

Prints JSON lines: one per method with precision / recall / F1 over pairs and seconds; with
--scale N also times catalens dedup on N synthetic catalogue vectors (given the embeddings).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

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


def run_imagededup(folder: Path, truth: set[frozenset[str]]) -> list[dict]:
    out = []
    try:
        from imagededup import methods
    except ImportError as exc:
        return [{"method": "imagededup", "error": f"not installed: {exc}"}]
    for name in ("PHash", "DHash", "WHash", "CNN"):
        t0 = time.perf_counter()
        try:
            hasher = getattr(methods, name)()
            dup = hasher.find_duplicates(image_dir=str(folder))
        except Exception as exc:  # CNN needs weights from the internet
            out.append({"method": f"imagededup {name}", "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
            continue
        groups = [[k, *v] for k, v in dup.items() if v]
        out.append(
            {
                "method": f"imagededup {name} (default threshold)",
                **score(pairs_of(groups), truth),
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
    return out


def scale_run(n: int) -> dict:
    """catalens dedup on n synthetic catalogue vectors (given the embeddings: index + kNN + grouping)."""
    import numpy as np

    from catalens.index.faiss_index import FaissIndex
    from catalens.search.dedup import DedupOptions, candidate_pairs

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from search_index import realistic_vectors

    x = realistic_vectors(n, seed=5)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        idx = FaissIndex.open(Path(tmp) / "i", dim=x.shape[1])
        idx.upsert(np.arange(n), x)
        t_build = time.perf_counter() - t0

        class _S:  # the parts of CatalogSearch that candidate_pairs uses
            index = idx

            class data:  # noqa: N801
                positions = np.arange(n)

                @staticmethod
                def matrix() -> np.ndarray:
                    return x

        t1 = time.perf_counter()
        a, b, s = candidate_pairs(_S, DedupOptions())  # type: ignore[arg-type]
        t_knn = time.perf_counter() - t1
    return {
        "method": "catalens dedup scale (index build + kNN candidates)",
        "n": n,
        "index": idx.info()["kind"],
        "seconds_build": round(t_build, 1),
        "seconds_knn": round(t_knn, 1),
        "candidate_pairs": int(len(a)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-orig", type=int, default=300)
    ap.add_argument("--n-other", type=int, default=600)
    ap.add_argument("--scale", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1, help="planted-set seed (thresholds were tuned on seed 0)")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    work = args.work or Path(tempfile.mkdtemp(prefix="dedup-bench-"))
    folder = work / "images"
    truth_data = make_planted(DATA, folder, args.n_orig, args.n_other, seed=args.seed)
    truth = pairs_of(truth_data["groups"])
    emit(
        {
            "dataset": f"planted myntra-dev (seed {args.seed})",
            "images": truth_data["n_images"],
            "truth_pairs": len(truth),
        }
    )
    emit(run_catalens(folder, work / "home", truth))
    # imagededup reads every file in the folder: keep only images there
    for res in run_imagededup(folder, truth):
        emit(res)
    if args.scale:
        emit(scale_run(args.scale))


if __name__ == "__main__":
    main()
