"""Brand tagging benchmark on myntra-dev (brand = title words before the gender word).

Same fixed split as ``classify_myntra.py``. OCR runs on the test images only (cached per image in
the home: run on a writable copy of the bench home). Prints JSON lines: OCR timing, then accuracy
of OCR alone, the logo classifier alone and the combination, on test rows whose brand has
``>= N`` training examples ("known"), and the rate of "unknown" answers on the other rows.

    python bench/classify_brand.py --home /tmp/bench-home-copy [--min-examples 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def run(home: str, min_examples: int, model: str) -> None:
    import torch

    torch.set_num_threads(2)
    from classify_myntra import FIELDS, split

    from catalens.classify.brand.tagger import (
        UNKNOWN,
        brand_labels,
        match_brand,
        ocr_texts,
        train_brand_tagger,
    )
    from catalens.classify.labels import catalog_labels
    from catalens.classify.train import image_matrix
    from catalens.core import Catalog

    cat = Catalog.open(home)
    L = catalog_labels(cat.db, FIELDS)
    tr, te = split(cat, L)
    X, _ = image_matrix(cat, L.shas, model)
    brands = brand_labels(L.titles)
    t0 = time.perf_counter()
    tagger = train_brand_tagger(X[tr], [L.titles[i] for i in tr], min_examples=min_examples)
    train_s = time.perf_counter() - t0
    known = set(tagger.brands)
    print(
        json.dumps(
            {
                "split": {"train": len(tr), "test": len(te)},
                "brands_in_train": len(tagger.all_brands),
                "brands_with_enough_examples": len(known),
                "min_examples": min_examples,
                "train_s": round(train_s, 2),
            }
        ),
        flush=True,
    )
    shas = [L.shas[i] for i in te]
    times: list[float] = []
    last = [time.perf_counter()]

    def progress(n: int, total: int) -> None:
        now = time.perf_counter()
        times.append((now - last[0]) / 16)
        last[0] = now
        if n % 160 == 0 or n == total:
            print(json.dumps({"ocr_done": n, "of": total}), flush=True)

    texts = ocr_texts(cat, shas, progress=progress)
    if times:
        print(json.dumps({"ocr_s_per_image_median": round(float(np.median(times)), 3)}), flush=True)
    T = [texts[s] for s in shas]
    truth = [brands[i] for i in te]
    combined = tagger.predict(X[te], T)
    logo = tagger.predict(X[te], None)
    ocr = [match_brand(t, tagger.all_brands)[0] for t in T]
    k_idx = [k for k, b in enumerate(truth) if b in known]
    u_idx = [k for k, b in enumerate(truth) if b not in known]

    def acc(preds: list[str | None], idx: list[int]) -> float:
        return float(np.mean([preds[k] == truth[k] for k in idx])) if idx else 0.0

    logo_top1 = tagger.predict(X[te], None, threshold=0.0)
    both_top1 = tagger.predict(X[te], T, threshold=0.0)
    for name, preds in (
        ("ocr", [p or UNKNOWN for p in ocr]),
        ("logo (top-1, no abstain)", [r["brand"] for r in logo_top1]),
        ("logo (abstain)", [r["brand"] for r in logo]),
        ("ocr+logo (top-1, no abstain)", [r["brand"] for r in both_top1]),
        ("ocr+logo (abstain)", [r["brand"] for r in combined]),
    ):
        print(
            json.dumps(
                {
                    "method": name,
                    "known_brand_rows": len(k_idx),
                    "accuracy_known": round(acc(preds, k_idx), 4),
                    "answered_known": round(float(np.mean([preds[k] != UNKNOWN for k in k_idx])), 4),
                    "other_rows": len(u_idx),
                    "unknown_rate_other": round(float(np.mean([preds[k] == UNKNOWN for k in u_idx])), 4),
                    "precision_answered": round(
                        float(
                            np.mean([preds[k] == truth[k] for k in range(len(truth)) if preds[k] != UNKNOWN])
                        )
                        if any(p != UNKNOWN for p in preds)
                        else 0.0,
                        4,
                    ),
                    "wrong_brand_other": round(
                        float(np.mean([preds[k] not in (UNKNOWN, truth[k]) for k in u_idx])), 4
                    ),
                }
            ),
            flush=True,
        )
    print(
        json.dumps(
            {
                "ocr_any_text": round(float(np.mean([bool(t) for t in T])), 4),
                "ocr_matched": round(float(np.mean([o is not None for o in ocr])), 4),
                "ocr_match_precision": round(
                    float(np.mean([ocr[k] == truth[k] for k in range(len(ocr)) if ocr[k] is not None]))
                    if any(o is not None for o in ocr)
                    else 0.0,
                    4,
                ),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--min-examples", type=int, default=10)
    ap.add_argument("--model", default="efficientnet-lite0")
    a = ap.parse_args()
    run(a.home, a.min_examples, a.model)
