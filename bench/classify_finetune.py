"""Fine-tuning vs linear / prototype, Lite0 vs Lite2, and the ensemble, on myntra-dev.

Same fixed split as ``bench/classify_myntra.py`` (seeded 80/20 by product, no shared title and no
pixel-identical image across). Prints JSON lines; test-set probabilities go to ``--out`` so that
``--what ensemble`` can average any of them afterwards (probability averaging, joint hierarchy).

    # a home embedded with both models (copy of /work/bench-home + `embed --model efficientnet-lite2`)
    python bench/classify_finetune.py --home /work/bench-home-l2 --what backbones --out /tmp/ft
    python bench/classify_finetune.py --home /work/bench-home-l2 --what finetune --out /tmp/ft \
        --unfreeze-blocks 2 --epochs 4 --views 2
    python bench/classify_finetune.py --home /work/bench-home-l2 --what ensemble --out /tmp/ft \
        --members lite0-linear+lite2-linear lite0-finetune+lite2-linear
    python bench/classify_finetune.py --home /work/bench-home-l2 --write-split bench/data/myntra_dev_split.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classify_myntra import FIELDS, HIER, split  # noqa: E402


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def load_split(cat, labels) -> tuple[list[int], list[int]]:
    return split(cat, labels)


def evaluate(
    name: str, P: dict, classes: dict, paths: list, L, te: list[int], extra: dict | None = None
) -> None:
    """Joint-hierarchy decoding, then weighted / macro F1 and ECE per field on the test rows."""
    from catalens.classify.metrics import ece, scores
    from catalens.classify.predict import decode

    hier = [f for f in HIER if f in P]
    chosen = decode(P, classes, hier, paths, "joint")
    for f in P:
        idx = [k for k, i in enumerate(te) if L.labels[f][i] is not None]
        yt = [L.labels[f][te[k]] for k in idx]
        yp = [classes[f][int(chosen[f][k])] for k in idx]
        res = scores(yt, yp)
        col = {c: j for j, c in enumerate(classes[f])}
        known = [k for k in idx if L.labels[f][te[k]] in col]
        res["ece"] = ece(P[f][known], np.array([col[L.labels[f][te[k]]] for k in known]))
        emit(
            {
                "method": name,
                "field": f,
                **{k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()},
                **(extra or {}),
            }
        )


def save_probs(out: Path, name: str, P: dict, classes: dict, paths: list) -> None:
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / f"probs-{name}.npz", **{f"P.{f}": p for f, p in P.items()})
    (out / f"probs-{name}.json").write_text(json.dumps({"classes": classes, "paths": paths}))


def load_probs(out: Path, name: str) -> tuple[dict, dict, list]:
    z = np.load(out / f"probs-{name}.npz")
    meta = json.loads((out / f"probs-{name}.json").read_text())
    return {k[2:]: z[k] for k in z.files}, meta["classes"], meta["paths"]


def backbones(cat, L, tr, te, out: Path) -> None:
    """Linear (and prototype) heads on stored Lite0 and Lite2 embeddings."""
    from catalens.classify.predict import field_probas
    from catalens.classify.train import image_matrix, train_on_matrix

    Ltr = L.subset(tr)
    for model, short in (("efficientnet-lite0", "lite0"), ("efficientnet-lite2", "lite2")):
        X, _ = image_matrix(cat, L.shas, model)
        for method in ("linear", "prototype"):
            t0 = time.perf_counter()
            clf = train_on_matrix(
                X[tr],
                Ltr,
                FIELDS,
                method,
                name="b",
                model=model,
                model_version=None,
                hierarchy=HIER,
                drop_rare=True,
            )
            train_s = time.perf_counter() - t0
            P = field_probas(clf, X[te])
            classes = {f: clf.classes(f) for f in FIELDS}
            name = f"{short}-{method}"
            save_probs(out, name, P, classes, clf.paths)
            evaluate(name, P, classes, clf.paths, L, te, {"train_s": round(train_s, 1)})


def finetune(cat, L, tr, te, out: Path, a: argparse.Namespace) -> None:
    import torch

    from catalens.classify.classifier import softmax
    from catalens.classify.finetune.data import load_uint8
    from catalens.classify.finetune.run import (
        FinetuneConfig,
        catalog_images,
        finetune_arrays,
        hierarchy_paths,
    )
    from catalens.models import get_spec, load_torch_model

    model = a.model
    short = "lite0" if model.endswith("lite0") else "lite2" if model.endswith("lite2") else "model"
    spec = get_spec(model)
    tower = load_torch_model(spec)
    t0 = time.perf_counter()
    images = load_uint8(catalog_images(cat, L.shas), spec)
    emit({"stage": "decode", "images": len(images), "seconds": round(time.perf_counter() - t0, 1)})
    cfg = FinetuneConfig(
        unfreeze_blocks=None if a.full else a.unfreeze_blocks,
        epochs=a.epochs,
        views=a.views,
        threads=a.threads,
        device=a.device,
        patience=a.patience,
        lr=a.lr,
        balance=a.balance,
        seed=0,
    )
    labels = {f: [L.labels[f][i] for i in tr] for f in FIELDS}
    groups = [(L.titles[i] or "").strip().lower() or None for i in tr]
    load = os.getloadavg()
    res = finetune_arrays(
        images[tr],
        labels,
        tower,
        spec,
        cfg,
        groups=groups,
        drop_rare=True,
        cache_path=out / f"cache-{short}-u{a.unfreeze_blocks}-v{a.views}.pt",
        progress=lambda row: emit({"progress": row, "load_avg_1m": round(os.getloadavg()[0], 1)}),
    )
    load_end = os.getloadavg()
    net = res.net.eval()
    t0 = time.perf_counter()
    from catalens.classify.finetune.data import normalise, to_input

    embs = []
    with torch.no_grad():
        for s in range(0, len(te), 64):
            x = normalise(to_input(torch.from_numpy(images[te[s : s + 64]])), spec.mean, spec.std)
            embs.append(net.embed(x).float().numpy())
    emb = np.concatenate(embs)
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    embed_s = time.perf_counter() - t0
    P = {f: softmax(h.logits(emb) / h.temperature) for f, h in res.heads.items()}
    paths = hierarchy_paths({f: L.labels[f] for f in HIER}, HIER)
    name = f"{short}-finetune{'-full' if a.full else f'-u{a.unfreeze_blocks}'}{a.tag}"
    save_probs(out, name, P, res.classes, paths)
    epochs = [h for h in res.history if "epoch_s" in h]
    emit(
        {
            "method": name,
            "mode": res.mode,
            "best_epoch": res.best_epoch,
            "epochs_run": len(epochs),
            "epoch_s_median": float(np.median([h["epoch_s"] for h in epochs])) if epochs else None,
            "images_per_s_median": float(np.median([h["images_per_s"] for h in epochs])) if epochs else None,
            "prepare_s": round(res.prepare_s, 1),
            "test_embed_s": round(embed_s, 1),
            "threads": torch.get_num_threads(),
            "load_avg_start": [round(x, 1) for x in load],
            "load_avg_end": [round(x, 1) for x in load_end],
            "cores": len(os.sched_getaffinity(0)),
            "held_out": res.held_out,
        }
    )
    evaluate(name, P, res.classes, paths, L, te)


def ensemble(L, te, out: Path, members: list[str]) -> None:
    for spec in members:
        names = spec.split("+")
        loaded = [load_probs(out, n) for n in names]
        fields = [f for f in loaded[0][0] if all(f in m[0] for m in loaded)]
        classes = {f: loaded[0][1][f] for f in fields}
        P = {}
        for f in fields:
            acc = 0
            for p, cls, _ in loaded:
                idx = [cls[f].index(c) if c in cls[f] else -1 for c in classes[f]]
                q = np.where(np.array(idx) >= 0, p[f][:, np.maximum(idx, 0)], 0.0)
                acc = acc + q / len(loaded)
            P[f] = acc
        evaluate(spec, P, classes, loaded[0][2], L, te)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", default="/work/bench-home-l2")
    ap.add_argument("--what", choices=["backbones", "finetune", "ensemble", "none"], default="none")
    ap.add_argument("--out", type=Path, default=Path("/tmp/ft"))
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--unfreeze-blocks", type=int, default=2)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--views", type=int, default=2)
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--lr", type=float, default=None, help="backbone learning rate (default: FinetuneConfig's)"
    )
    ap.add_argument("--balance", type=float, default=0.5, help="class-balanced sampling power (0: off)")
    ap.add_argument("--tag", default="", help="suffix of the result name")
    ap.add_argument("--members", nargs="*", default=[])
    ap.add_argument("--write-split", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=0, help="smoke test: first N train rows, N/4 test rows")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads or 1)
    from catalens.classify.labels import catalog_labels
    from catalens.core import Catalog

    cat = Catalog.open(a.home)
    L = catalog_labels(cat.db, FIELDS)
    tr, te = load_split(cat, L)
    emit({"split": {"train": len(tr), "test": len(te)}})
    if a.limit:
        tr, te = tr[: a.limit], te[: max(4, a.limit // 4)]
    if a.write_split:
        a.write_split.parent.mkdir(parents=True, exist_ok=True)
        a.write_split.write_text(
            json.dumps(
                {
                    "about": "bench/classify_myntra.py split of myntra-dev (seed 0): product ids",
                    "train_ids": [L.product_ids[i] for i in tr],
                    "test_ids": [L.product_ids[i] for i in te],
                }
            )
        )
    if a.what == "backbones":
        backbones(cat, L, tr, te, a.out)
    elif a.what == "finetune":
        finetune(cat, L, tr, te, a.out, a)
    elif a.what == "ensemble":
        ensemble(L, te, a.out, a.members)


if __name__ == "__main__":
    main()
