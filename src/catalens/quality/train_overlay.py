"""Train the packaged see-through overlay (watermark) detector from folders of clean photos.

Each photo gives three examples, each JPEG-encoded at a random quality after an optional downscale:
the photo itself and an opaque print near its middle (negatives), and a semi-transparent mark
(positive; :mod:`catalens.quality.synth_marks`). The frozen front of the packaged EfficientNet-Lite0
(:func:`~catalens.quality.overlay_net.build_front`) turns each into a 112-channel map once; the small
head (:func:`~catalens.quality.overlay_net.build_head`) is trained on the maps of 80% of the photos,
the threshold is the score that flags at most ``--target-fpr`` of the held-out untouched photos, and
the head is then refitted on all photos. Front and head are exported as one ONNX graph with
``overlay.json`` (held-out figures, command, settings):

    python -m catalens.quality.train_overlay IMAGE_DIR [IMAGE_DIR ...] --out DIR [--exclude STEMS.txt]

``--cache FILE.npz`` keeps the maps so a re-fit does not recompute them. 6,155 photos take about
12 minutes to map and 3 to fit on two cores.
"""

from __future__ import annotations

import argparse
import io
import json
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from catalens.quality.overlay_net import MODEL_NAME, VERSION, build_front, build_head, prepare
from catalens.quality.synth_marks import fonts, opaque_print, see_through_mark
from catalens.quality.train_exposure import choose_threshold, collect

KINDS = ("clean", "mark", "print")  # label 1 for "mark" only
JPEG_QUALITY = (70, 96)
MAX_DECODE = 1400


def _jpeg(img: Any, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(rng.integers(*JPEG_QUALITY)))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def examples_from(path: Path, faces: list[str]) -> list[tuple[str, np.ndarray]]:
    """(kind, detector input) for the untouched photo, a marked copy and a printed copy."""
    from PIL import Image

    rng = np.random.default_rng(zlib.crc32(str(path.name).encode()))
    with Image.open(path) as im:
        im.draft("RGB", (MAX_DECODE, MAX_DECODE))
        img = im.convert("RGB")
    if rng.random() < 0.5:
        k = rng.uniform(0.5, 1.0)
        img = img.resize((max(40, int(img.width * k)), max(40, int(img.height * k))), Image.BICUBIC)
    marked, _ = see_through_mark(img, rng, faces)
    printed = opaque_print(img, rng, faces)
    return [(kind, prepare(_jpeg(x, rng))) for kind, x in zip(KINDS, (img, marked, printed), strict=True)]


def build_maps(paths: Sequence[Path]) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Frozen-front maps (float16, grouped by orientation) and one record per example."""
    import torch

    torch.set_num_threads(2)
    front, faces = build_front(), fonts()
    maps: dict[str, list[np.ndarray]] = {"P": [], "L": []}
    rows: list[dict[str, Any]] = []
    with torch.inference_mode():
        for i, path in enumerate(paths):
            try:
                examples = examples_from(path, faces)
            except (OSError, ValueError) as exc:
                print(f"skipped {path}: {exc}")
                continue
            for kind, x in examples:
                m = front(torch.from_numpy(x))[0].half().numpy()
                key = "L" if m.shape[2] > m.shape[1] else "P"
                maps[key].append(m)
                rows.append({"src": i, "kind": kind, "o": key, "k": len(maps[key]) - 1})
            if i % 500 == 0:
                print(f"{i}/{len(paths)} photos", flush=True)
    stacked = {k: np.stack(v) if v else np.zeros((0, 112, 1, 1), np.float16) for k, v in maps.items()}
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
    maps: dict[str, np.ndarray], rows: list[dict[str, Any]], idx: np.ndarray, *, epochs: int, seed: int
) -> Any:
    """Train a fresh head on the examples ``idx`` (AdamW, one-cycle schedule, mirrored maps)."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    y = torch.tensor([1.0 if r["kind"] == "mark" else 0.0 for r in rows])
    head = build_head(channels=int(next(iter(m for m in maps.values() if len(m))).shape[1]))
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
                x = x.flip(3)  # a mirrored photo: text is still text
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
                p = torch.sigmoid(head(x)).numpy()
                out[[pos[j] for j in b]] = p
    return out


def export(head: Any, path: Path) -> float:
    """Front + head as one ONNX graph with a free input height and width; returns the largest
    difference to torch over both orientations (raises when above 1e-3)."""
    import warnings

    import onnxruntime as ort
    import torch

    from catalens.models.export import freeze_same_padding
    from catalens.quality.overlay_net import LANDSCAPE, PORTRAIT

    class Detector(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.front, self.head = build_front(), head

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.front(x))

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            return self.forward(x)

    # both input sizes are multiples of 32, so "same" padding is the same constant for either
    model = freeze_same_padding(Detector().eval(), (3, PORTRAIT[1], PORTRAIT[0]))
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
    reference = Detector().eval()
    for w, h in (PORTRAIT, LANDSCAPE):
        x = np.random.default_rng(0).uniform(-1, 1, (2, 3, h, w)).astype(np.float32)
        with torch.inference_mode():
            ref = reference(torch.from_numpy(x)).numpy()
        got = session.run(None, {"pixels": x})[0]
        err = max(err, float(np.abs(got - ref).max()))
    if err > 1e-3:
        raise RuntimeError(f"exported overlay detector differs from torch by {err:.3g}")
    return err


def train(
    paths: Sequence[Path],
    out: Path,
    *,
    epochs: int = 8,
    seed: int = 0,
    target_fpr: float = 0.01,
    command: str = "",
    cache: Path | None = None,
) -> dict[str, Any]:
    import torch

    t0 = time.perf_counter()
    names = [str(p) for p in paths]
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if list(z["paths"]) != names or str(z["version"]) != VERSION:
                raise SystemExit(f"{cache} was built from other photos or another version: delete it")
            maps = {"P": z["P"], "L": z["L"]}
            rows = json.loads(str(z["rows"]))
    else:
        maps, rows = build_maps(paths)
        if cache is not None:
            np.savez(cache, P=maps["P"], L=maps["L"], rows=json.dumps(rows), paths=names, version=VERSION)
    mapped = time.perf_counter() - t0
    held_photos = np.random.default_rng(seed).random(len(paths)) < 0.2
    held = np.array([held_photos[r["src"]] for r in rows])
    train_idx, test_idx = np.flatnonzero(~held), np.flatnonzero(held)
    head = fit_head(maps, rows, train_idx, epochs=epochs, seed=seed)
    s = score(head, maps, rows, test_idx)
    kinds = np.array([rows[j]["kind"] for j in test_idx])
    thr = choose_threshold(s, np.where(kinds == "clean", 0.0, 1.0), target_fpr)
    from sklearn.metrics import roc_auc_score

    def share(rows: np.ndarray) -> float | None:
        return round(float((s[rows] >= thr).mean()), 4) if rows.any() else None

    marked = kinds == "mark"
    metrics = {
        "held_out_photos": int(held_photos.sum()),
        "auc_mark_vs_clean_and_print": round(float(roc_auc_score(marked, s)), 4)
        if 0 < marked.sum() < len(marked)
        else None,
        "fpr_untouched": share(kinds == "clean"),
        "fpr_opaque_print": share(kinds == "print"),
        "recall_mark": share(marked),
    }
    final = fit_head(maps, rows, np.arange(len(rows)), epochs=epochs, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    err = export(final, out / f"{MODEL_NAME}.onnx")
    meta = {
        "name": MODEL_NAME,
        "version": VERSION,
        "task": "a semi-transparent overlay (watermark) on the photo vs none or an opaque print",
        "threshold": round(thr, 4),
        "threshold_rule": f"flags <= {target_fpr:.0%} of held-out untouched photos",
        "architecture": "EfficientNet-Lite0 stem + blocks[0:5] (packaged ImageNet weights, frozen) + "
        "conv1x1(64)-BN-ReLU-conv3x3(64)-BN-ReLU, mean and max pooling, linear",
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
    (out / f"{MODEL_NAME}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "dirs", nargs="+", type=Path, help="folders of photos without marks (searched recursively)"
    )
    ap.add_argument("--out", type=Path, required=True, help="where to write overlay.onnx and overlay.json")
    ap.add_argument("--exclude", type=Path, help="text file of file stems to leave out (one per line)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target-fpr", type=float, default=0.01)
    ap.add_argument("--cache", type=Path, help="npz file keeping the computed maps between runs")
    args = ap.parse_args(argv)
    exclude = set(args.exclude.read_text().split()) if args.exclude else set()
    paths = collect(args.dirs, exclude)
    if not paths:
        raise SystemExit("no photos found")
    command = "python -m catalens.quality.train_overlay " + " ".join(
        [*(d.name for d in args.dirs), "--out", str(args.out)]
        + (["--exclude", args.exclude.name] if args.exclude else [])
        + [f"--epochs={args.epochs}", f"--seed={args.seed}", f"--target-fpr={args.target_fpr}"]
    )
    meta = train(
        paths,
        args.out,
        epochs=args.epochs,
        seed=args.seed,
        target_fpr=args.target_fpr,
        command=command,
        cache=args.cache,
    )
    print(json.dumps({k: meta[k] for k in ("threshold", "held_out", "seconds")}))


if __name__ == "__main__":
    main()
