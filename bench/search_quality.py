"""Retrieval quality on myntra-dev: image-to-image mAP@10 (same articleType = relevant) and
text-to-image Recall@10 (productDisplayName queries on held-out products).

    python bench/search_quality.py [--home /work/bench-home] [--text-methods ridge krr] [--skip-image] [--splits 5]

The bench home is copied to a temporary folder first (it is read-only). Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def ap_at_k(rel: list[bool], n_rel: int, k: int = 10) -> float:
    hits, s = 0, 0.0
    for i, r in enumerate(rel[:k], 1):
        if r:
            hits += 1
            s += hits / i
    return s / min(k, n_rel) if n_rel else 0.0


def split_check(cat, s, n_splits: int) -> dict:  # type: ignore[no-untyped-def]
    """Recall@10 of fixed settings on ``n_splits`` random 20% product splits (no selection on them)."""
    from catalens.search.text import _fit, _text_encoder, apply_projection, fit_krr, recall_at_k, titled_pairs
    from catalens.vectors import l2_normalize

    pids, titles, pos = titled_pairs(s)
    t = l2_normalize(np.asarray(_text_encoder("minilm").encode(titles), dtype=np.float32))
    x = l2_normalize(np.asarray(s.data.matrix()[pos]))
    first = {p: i for i, p in reversed(list(enumerate(pids)))}
    out: dict[str, list[float]] = {}
    for split in range(n_splits):
        prods = sorted(set(pids))
        test_p = {
            p
            for p, r in zip(prods, np.random.default_rng(100 + split).random(len(prods)), strict=True)
            if r < 0.2
        }
        te = np.array([p in test_p for p in pids])
        q = np.array([first[p] for p in sorted(test_p)])
        qp = [pids[i] for i in q]
        for lam in (0.03, 0.3):
            w, mu = _fit(t[~te], x[~te], lam)
            r = recall_at_k(apply_projection(t[q], {"w": w, "mu_t": mu}), qp, x, pids)
            out.setdefault(f"ridge lambda={lam}", []).append(round(r, 4))
        for temp, lam in ((0.5, 0.01), (1.0, 0.01)):
            art = fit_krr(t[~te], x[~te], temp, lam)
            out.setdefault(f"krr T={temp},lambda={lam}", []).append(
                round(recall_at_k(apply_projection(t[q], art), qp, x, pids), 4)
            )
    return {
        "task": f"text-to-image Recall@10, fixed settings on {n_splits} random 20% product splits",
        "recall_at_10": {k: {"mean": round(float(np.mean(v)), 4), "splits": v} for k, v in out.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, default=Path("/work/bench-home"))
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--text-methods", nargs="+", default=["ridge", "krr"], help="text projection methods")
    ap.add_argument("--skip-image", action="store_true", help="only the text-to-image task")
    ap.add_argument("--splits", type=int, default=5, help="extra random product splits, fixed settings")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    from catalens.core import Catalog

    tmp = Path(tempfile.mkdtemp(prefix="sq-"))
    shutil.copytree(args.home, tmp / "home")
    cat = Catalog.open(tmp / "home")
    s = cat.searcher()
    from catalens.search.engine import product_rows

    prods = product_rows(cat.db)
    rng = np.random.default_rng(0)
    shas = [h for h in s.pos_of if s.links.get(h)]
    picks = rng.choice(len(shas), size=min(args.queries, len(shas)), replace=False)
    art = {pid: (a.get("articleType") or "") for pid, (_, a) in prods.items()}
    n_by_type: dict[str, int] = {}
    for t in art.values():
        n_by_type[t] = n_by_type.get(t, 0) + 1
    aps = []
    t0 = time.perf_counter()
    for i in [] if args.skip_image else picks:
        sha = shas[i]
        pid = s.links[sha][0]
        res = s.search(s.stored_vector(sha), 10, exclude_products=[pid])
        rel = [art.get(r.product_id or "") == art[pid] for r in res]
        aps.append(ap_at_k(rel, n_by_type[art[pid]] - 1))
    dt = (time.perf_counter() - t0) / len(picks)
    if not args.skip_image:
        # chance level: a random ranking's precision equals the share of same-type products
        chance = float(np.mean([(n_by_type[art[s.links[shas[i]][0]]] - 1) / (len(art) - 1) for i in picks]))
        print(
            json.dumps(
                {
                    "task": "image-to-image mAP@10 (relevant = same articleType)",
                    "method": f"{s.data.model_id} embeddings, cosine, {s.index.info()['kind']} index, one result per product",
                    "queries": len(picks),
                    "map_at_10": round(float(np.mean(aps)), 4),
                    "chance_precision": round(chance, 4),
                    "ms_per_query": round(dt * 1000, 2),
                }
            ),
            flush=True,
        )
    chance = round(10 / len(set(prods)), 4)
    for method in args.text_methods:  # the library default (krr) last, so its artefact stays
        meta = cat.train_text_projection(holdout=0.2, method=method)
        print(
            json.dumps(
                {
                    "task": "text-to-image Recall@10 (productDisplayName of held-out products, whole catalog as gallery)",
                    "method": meta["method"] + f", picked {meta['picked']}",
                    "heldout_products": meta["heldout_products"],
                    "recall_at_10": meta["heldout_recall_at_10"],
                    "recall_by_setting": meta["recall_by_setting"],
                    "chance_recall_at_10": chance,
                    "train_seconds": meta["seconds"],
                }
            ),
            flush=True,
        )
    if args.splits:
        print(json.dumps(split_check(cat, s, args.splits)), flush=True)
    cat.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
