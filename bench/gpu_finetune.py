"""Full fine-tuning of EfficientNet-Lite0 on myntra-dev on a GPU (AMP, automatic batch size).

Self-contained for a bare GPU machine: needs torch (+ torchvision, which timm imports), numpy and
Pillow; timm is imported from ``--deps`` (a folder holding the timm wheel) when it is not installed.
No sklearn, no catalog: images are read straight from ``--data`` (``labels.csv`` + ``images/``) and the
split is the fixed one of ``bench/classify_myntra.py`` (``bench/data/myntra_dev_split.json``, product ids).

Prints JSON lines: the environment, one line per epoch (epoch time, images/s, validation accuracy),
then per field the test accuracy / weighted-F1 / macro-F1 (joint hierarchy decoding, as the other
benchmarks) and a summary line.

    python bench/gpu_finetune.py --weights bench/out/gpu_deps/efficientnet-lite0-57934424.pth \
        --data bench/out/myntra-dev --deps bench/out/gpu_deps --epochs 30 --time-budget 150
    # CPU smoke test of the same code path:
    python bench/gpu_finetune.py --weights ... --data /work/shared/data/myntra-dev --limit 64 --epochs 1 --device cpu
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ["masterCategory", "subCategory", "articleType", "gender", "baseColour"]
HIER = FIELDS[:3]


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def setup_imports(deps: str | None) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    try:
        import timm  # noqa: F401
    except ImportError:
        wheels = sorted(glob.glob(os.path.join(deps or "", "timm-*.whl")))
        if not wheels:
            raise SystemExit(
                json.dumps({"error": "timm is not installed and no timm wheel in --deps"})
            ) from None
        sys.path.insert(0, wheels[-1])
        import timm  # noqa: F401


def f1_scores(y_true: list[str], y_pred: list[str]) -> dict[str, float]:
    """accuracy, macro-F1 and weighted-F1 over the true classes (as sklearn's f1_score(labels=...))."""
    labels = sorted(set(y_true))
    yt, yp = np.array(y_true), np.array(y_pred)
    f1s, support = [], []
    for c in labels:
        tp = float(((yt == c) & (yp == c)).sum())
        fp = float(((yt != c) & (yp == c)).sum())
        fn = float(((yt == c) & (yp != c)).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp > 0 else 0.0)
        support.append(float((yt == c).sum()))
    f1 = np.array(f1s)
    w = np.array(support)
    return {
        "accuracy": float((yt == yp).mean()),
        "macro_f1": float(f1.mean()),
        "weighted_f1": float((f1 * w).sum() / w.sum()),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True, help="EfficientNet-Lite0 .pth (the packaged file)")
    ap.add_argument("--data", required=True, help="myntra-dev folder: labels.csv + images/")
    ap.add_argument("--split", default=str(ROOT / "bench" / "data" / "myntra_dev_split.json"))
    ap.add_argument("--deps", default=str(ROOT / "bench" / "out" / "gpu_deps"))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--unfreeze-blocks", type=int, default=None, help="default: full fine-tuning")
    ap.add_argument("--max-batch", type=int, default=128, help="cap for the automatic batch size")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--time-budget", type=float, default=150.0, help="seconds of training epochs")
    ap.add_argument("--limit", type=int, default=0, help="smoke test: first N train and N/4 test rows")
    a = ap.parse_args()
    t_all = time.perf_counter()
    setup_imports(a.deps)
    import torch
    from PIL import Image

    from catalens.classify.classifier import softmax
    from catalens.classify.finetune.data import load_uint8, normalise, to_input
    from catalens.classify.finetune.run import FinetuneConfig, finetune_arrays, hierarchy_paths
    from catalens.classify.predict import decode
    from catalens.models import get_spec, load_torch_model

    dev = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    emit(
        {
            "env": {
                "torch": torch.__version__,
                "device": dev,
                "gpu": torch.cuda.get_device_name(0) if dev.startswith("cuda") else None,
                "cpu_threads": torch.get_num_threads(),
            }
        }
    )
    spec = get_spec(f"file:{Path(a.weights).resolve()}?arch=tf_efficientnet_lite0&map=position")
    tower = load_torch_model(spec)
    split = json.loads(Path(a.split).read_text())
    data = Path(a.data)
    with open(data / "labels.csv", newline="", encoding="utf-8") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    tr_ids = [i for i in split["train_ids"] if i in rows]
    te_ids = [i for i in split["test_ids"] if i in rows]
    if a.limit:
        tr_ids, te_ids = tr_ids[: a.limit], te_ids[: max(8, a.limit // 4)]
    t0 = time.perf_counter()

    def load(ids: list[str]) -> np.ndarray:
        ims = []
        for i in ids:
            with Image.open(data / rows[i]["image"]) as im:
                ims.append(im.convert("RGB"))
        return load_uint8(ims, spec)

    X_tr, X_te = load(tr_ids), load(te_ids)
    emit(
        {
            "stage": "decode",
            "train": len(tr_ids),
            "test": len(te_ids),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    )
    lab = {f: [rows[i][f].strip() or None for i in tr_ids] for f in FIELDS}
    groups = [rows[i].get("productDisplayName", "").strip().lower() or None for i in tr_ids]
    cfg = FinetuneConfig(
        unfreeze_blocks=a.unfreeze_blocks,
        epochs=a.epochs,
        device=dev,
        batch_size=a.batch_size,
        max_batch=a.max_batch,
        lr=a.lr,
        patience=a.patience,
        time_budget_s=a.time_budget,
    )
    res = finetune_arrays(
        X_tr,
        lab,
        tower,
        spec,
        cfg,
        groups=groups,
        drop_rare=True,
        progress=lambda row: emit({"progress": row}),
    )
    net = res.net.to(dev).eval()
    t0 = time.perf_counter()
    embs = []
    with torch.no_grad():
        for s in range(0, len(X_te), 256):
            x = normalise(to_input(torch.from_numpy(X_te[s : s + 256]).to(dev)), spec.mean, spec.std)
            with torch.autocast("cuda", enabled=dev.startswith("cuda")):
                embs.append(net.embed(x).float().cpu().numpy())
    emb = np.concatenate(embs)
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    test_embed_s = time.perf_counter() - t0
    P = {f: softmax(h.logits(emb) / h.temperature) for f, h in res.heads.items()}
    all_lab = {f: [rows[i][f].strip() or None for i in tr_ids + te_ids] for f in HIER}
    chosen = decode(P, res.classes, HIER, hierarchy_paths(all_lab, HIER), "joint")
    out = {}
    for f in FIELDS:
        idx = [k for k, i in enumerate(te_ids) if rows[i][f].strip()]
        sc = f1_scores(
            [rows[te_ids[k]][f].strip() for k in idx], [res.classes[f][int(chosen[f][k])] for k in idx]
        )
        out[f] = sc["weighted_f1"]
        emit(
            {
                "method": "lite0-finetune-full-gpu",
                "field": f,
                "n": len(idx),
                **{k: round(v, 4) for k, v in sc.items()},
            }
        )
    epochs = [h for h in res.history if "epoch_s" in h]
    emit(
        {
            "summary": "lite0 full fine-tune",
            "device": res.device,
            "mode": res.mode,
            "batch_size": res.batch_size,
            "epochs_run": len(epochs),
            "best_epoch": res.best_epoch,
            "epoch_s_median": float(np.median([h["epoch_s"] for h in epochs])) if epochs else None,
            "images_per_s_median": float(np.median([h["images_per_s"] for h in epochs])) if epochs else None,
            "prepare_s": round(res.prepare_s, 1),
            "test_embed_s": round(test_embed_s, 2),
            "test_weighted_f1": {k: round(v, 4) for k, v in out.items()},
            "total_s": round(time.perf_counter() - t_all, 1),
            "peak_gpu_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)
            if dev.startswith("cuda")
            else None,
        }
    )


if __name__ == "__main__":
    main()
