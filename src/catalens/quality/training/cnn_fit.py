"""Training and export of the packaged pixel CNNs (:mod:`catalens.quality.cnn_models`).

A trainer supplies ``examples(path, rng) -> [(kind, uint8 RGB array), ...]`` for each clean photo
and names its positive kind. The frozen front turns every example into a map once (float16, kept by
``--cache``); the head is trained on the maps of 80% of the photos (AdamW, one-cycle schedule,
mirrored maps), the threshold is the score that flags at most ``target_fpr`` of the held-out
``clean`` examples, the head is refitted on all photos, and front + head are exported as one ONNX
graph (free input height and width; checked against torch for both orientations) with a JSON file
of held-out figures and the command.
"""

from __future__ import annotations

import argparse
import io
import json
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from catalens.quality.cnn_models import (
    HEAD_WIDTH,
    LANDSCAPE,
    PORTRAIT,
    NetSpec,
    build_front,
    build_head,
    prepare,
)
from catalens.quality.training.exposure_trees import choose_threshold, collect

Examples = Callable[[Path, np.random.Generator], list[tuple[str, np.ndarray]]]


def jpeg_roundtrip(arr: np.ndarray, quality: int) -> np.ndarray:
    """``arr`` (uint8 RGB) after a JPEG encode and decode."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def build_maps(
    spec: NetSpec, paths: Sequence[Path], examples: Examples
) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Frozen-front maps (float16, grouped by orientation) and one record per example."""
    import torch

    torch.set_num_threads(2)
    front = build_front(spec)
    maps: dict[str, list[np.ndarray]] = {"P": [], "L": []}
    rows: list[dict[str, Any]] = []
    with torch.inference_mode():
        for i, path in enumerate(paths):
            try:
                made = examples(path, np.random.default_rng(zlib.crc32(path.name.encode())))
            except (OSError, ValueError) as exc:
                print(f"skipped {path}: {exc}")
                continue
            for kind, arr in made:
                m = front(torch.from_numpy(prepare(arr)))[0].half().numpy()
                key = "L" if m.shape[2] > m.shape[1] else "P"
                maps[key].append(m)
                rows.append({"src": i, "kind": kind, "o": key, "k": len(maps[key]) - 1})
            if i % 500 == 0:
                print(f"{i}/{len(paths)} photos", flush=True)
    channels = next((m.shape[0] for part in maps.values() for m in part[:1]), 1)
    stacked = {k: np.stack(v) if v else np.zeros((0, channels, 1, 1), np.float16) for k, v in maps.items()}
    return stacked, rows


def _batches(rows: list[dict[str, Any]], idx: np.ndarray, size: int, rng: np.random.Generator) -> list:
    out = []
    for key in ("P", "L"):
        part = np.array([j for j in idx if rows[j]["o"] == key])
        rng.shuffle(part)
        out += [part[s : s + size] for s in range(0, len(part), size)]
    rng.shuffle(out)  # type: ignore[arg-type]
    return out


def fit_head(
    spec: NetSpec,
    maps: dict[str, np.ndarray],
    rows: list[dict[str, Any]],
    idx: np.ndarray,
    positive: str,
    *,
    epochs: int,
    seed: int,
) -> Any:
    """Train a fresh head on the examples ``idx``; label 1 for kind ``positive``."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    y = torch.tensor([1.0 if r["kind"] == positive else 0.0 for r in rows])
    head = build_head(spec, channels=int(next(m for m in maps.values() if len(m)).shape[1]))
    opt = torch.optim.AdamW(head.parameters(), lr=2e-3, weight_decay=1e-3)
    steps = epochs * (len(idx) // 64 + 2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(epochs):
        head.train()
        for b in _batches(rows, idx, 64, rng):
            arr = maps[rows[b[0]]["o"]]
            x = torch.from_numpy(arr[[rows[j]["k"] for j in b]].astype(np.float32))
            if rng.random() < 0.5:
                x = x.flip(3)  # a mirrored photo
            loss = loss_fn(head(x), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return head.eval()


def score(head: Any, maps: dict[str, np.ndarray], rows: list[dict[str, Any]], idx: np.ndarray) -> np.ndarray:
    import torch

    out = np.zeros(len(idx), np.float32)
    pos = {int(j): n for n, j in enumerate(idx)}
    with torch.inference_mode():
        for key in ("P", "L"):
            part = [int(j) for j in idx if rows[j]["o"] == key]
            for s in range(0, len(part), 256):
                b = part[s : s + 256]
                x = torch.from_numpy(maps[key][[rows[j]["k"] for j in b]].astype(np.float32))
                out[[pos[j] for j in b]] = torch.sigmoid(head(x)).numpy()
    return out


def export(spec: NetSpec, head: Any, path: Path) -> float:
    """Front + head as one ONNX graph with a free input height and width; returns the largest
    difference to torch over both orientations (raises when above 1e-3)."""
    import warnings

    import onnxruntime as ort
    import torch

    from catalens.models.export import freeze_same_padding

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.front, self.head = build_front(spec), head

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.front(x))

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            return self.forward(x)

    # both input sizes are multiples of 32, so "same" padding is the same constant for either
    model = freeze_same_padding(Net().eval(), (3, PORTRAIT[1], PORTRAIT[0]))
    example = torch.zeros(1, 3, PORTRAIT[1], PORTRAIT[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["pixels"],
            output_names=["logit"],
            dynamic_axes={"pixels": {0: "batch", 2: "height", 3: "width"}, "logit": {0: "batch"}},
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    err = 0.0
    reference = Net().eval()
    for w, h in (PORTRAIT, LANDSCAPE):
        x = np.random.default_rng(0).uniform(-1, 1, (2, 3, h, w)).astype(np.float32)
        with torch.inference_mode():
            ref = reference(torch.from_numpy(x)).numpy()
        got = session.run(None, {"pixels": x})[0]
        err = max(err, float(np.abs(got - ref).max()))
    if err > 1e-3:
        raise RuntimeError(f"exported {spec.name} model differs from torch by {err:.3g}")
    return err


def train(
    spec: NetSpec,
    paths: Sequence[Path],
    out: Path,
    examples: Examples,
    *,
    positive: str,
    task: str,
    epochs: int = 8,
    seed: int = 0,
    target_fpr: float = 0.01,
    command: str = "",
    cache: Path | None = None,
) -> dict[str, Any]:
    """Map, fit, pick the threshold, refit on all and write ``out/NAME.onnx`` + ``.json``."""
    import torch
    from sklearn.metrics import roc_auc_score

    t0 = time.perf_counter()
    names = [str(p) for p in paths]
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if list(z["paths"]) != names or str(z["version"]) != spec.version:
                raise SystemExit(f"{cache} was built from other photos or another version: delete it")
            maps = {"P": z["P"], "L": z["L"]}
            rows = json.loads(str(z["rows"]))
    else:
        maps, rows = build_maps(spec, paths, examples)
        if cache is not None:
            np.savez(
                cache, P=maps["P"], L=maps["L"], rows=json.dumps(rows), paths=names, version=spec.version
            )
    if not rows:
        raise SystemExit("no readable photos")
    mapped = time.perf_counter() - t0
    held_photos = np.random.default_rng(seed).random(len(paths)) < 0.2
    held = np.array([held_photos[r["src"]] for r in rows])
    train_idx, test_idx = np.flatnonzero(~held), np.flatnonzero(held)
    head = fit_head(spec, maps, rows, train_idx, positive, epochs=epochs, seed=seed)
    s = score(head, maps, rows, test_idx)
    kinds = np.array([rows[j]["kind"] for j in test_idx])
    thr = choose_threshold(s, np.where(kinds == "clean", 0.0, 1.0), target_fpr)
    is_pos = kinds == positive

    def share(sel: np.ndarray) -> float | None:
        return round(float((s[sel] >= thr).mean()), 4) if sel.any() else None

    metrics: dict[str, Any] = {
        "held_out_photos": int(held_photos.sum()),
        f"auc_{positive}_vs_rest": round(float(roc_auc_score(is_pos, s)), 4)
        if 0 < is_pos.sum() < len(s)
        else None,
        **{f"flagged_{k}": share(kinds == k) for k in sorted(set(kinds))},
    }
    final = fit_head(spec, maps, rows, np.arange(len(rows)), positive, epochs=epochs, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    err = export(spec, final, out / f"{spec.name}.onnx")
    meta = {
        "name": spec.name,
        "version": spec.version,
        "task": task,
        "threshold": round(thr, 4),
        "threshold_rule": f"flags <= {target_fpr:.0%} of held-out untouched photos",
        "architecture": f"EfficientNet-Lite0 stem + blocks[0:{spec.frozen_stages}] (packaged ImageNet weights, "
        f"frozen) + head ({'stride-2 conv, ' if spec.head_stride == 2 else ''}conv1x1/conv3x3 x{HEAD_WIDTH}, "
        "BN, ReLU; mean and max pooling; linear)",
        "input": "288x384 (portrait/square) or 384x288 (landscape), RGB scaled to [-1, 1]",
        "training": {
            "photos": len(paths),
            "examples": len(rows),
            "epochs": epochs,
            "seed": seed,
            "torch": torch.__version__,
            "command": command,
        },
        "held_out": metrics,
        "onnx_max_abs_error": err,
        "seconds": {"maps": round(mapped, 1), "total": round(time.perf_counter() - t0, 1)},
    }
    (out / f"{spec.name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def cli(
    spec: NetSpec,
    examples: Examples,
    *,
    positive: str,
    task: str,
    doc: str | None,
    module: str,
    photos: str,
    epochs: int,
    argv: Sequence[str] | None = None,
) -> None:
    """The command line of a pixel-net trainer: ``python -m MODULE DIR... --out DIR [options]``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", type=Path, help=f"folders of {photos} (searched recursively)")
    ap.add_argument(
        "--out", type=Path, required=True, help=f"where to write {spec.name}.onnx and {spec.name}.json"
    )
    ap.add_argument("--exclude", type=Path, help="text file of file stems to leave out (one per line)")
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target-fpr", type=float, default=0.01)
    ap.add_argument("--cache", type=Path, help="npz file keeping the computed maps between runs")
    args = ap.parse_args(argv)
    exclude = set(args.exclude.read_text().split()) if args.exclude else set()
    paths = collect(args.dirs, exclude)
    if not paths:
        raise SystemExit("no photos found")
    command = f"python -m {module} " + " ".join(
        [*(d.name for d in args.dirs), "--out", str(args.out)]
        + (["--exclude", args.exclude.name] if args.exclude else [])
        + [f"--epochs={args.epochs}", f"--seed={args.seed}", f"--target-fpr={args.target_fpr}"]
    )
    meta = train(
        spec,
        paths,
        args.out,
        examples,
        positive=positive,
        task=task,
        epochs=args.epochs,
        seed=args.seed,
        target_fpr=args.target_fpr,
        command=command,
        cache=args.cache,
    )
    print(json.dumps({k: meta[k] for k in ("threshold", "held_out", "seconds")}))
