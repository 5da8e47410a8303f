"""Train the packaged over-exposure model from a folder of correctly exposed photos.

Each photo gives three examples: the photo itself, a mild change (-1, +0.5 or +1 EV: still
acceptable) and an over-exposed copy (+1.5..+3.5 EV), each exposure change applied in linear light with clipping
like a camera would, then JPEG-encoded at a random quality and, for variety, rescaled. A
gradient-boosted tree model (scikit-learn) learns over-exposed vs not from
:func:`~catalens.quality.exposure_features.exposure_features`; its trees are stored as flat arrays
(``overexposure.npz``, evaluated with NumPy by :mod:`catalens.quality.tree_models`) with a JSON file of
metadata. The decision threshold is the score that flags at most
``target_fpr`` of held-out untouched photos (a 20% split by source photo).

    python -m catalens.quality.training.exposure_trees IMAGE_DIR [IMAGE_DIR ...] --out DIR [--exclude STEMS.txt]

The packaged model was made with the command recorded in its JSON file. ``--cache FILE.npz`` keeps
the computed feature set, so a re-fit (other model settings) does not recompute it.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from catalens.quality.context import QCImage
from catalens.quality.exposure_features import FEATURE_NAMES, FEATURE_VERSION, exposure_features
from catalens.quality.tree_models import save_learned, trees_from_sklearn

MODEL_NAME = "overexposure"
POSITIVE_EV = (1.5, 2.0, 2.5, 3.0, 3.5)  # over-exposed copies: one of these, in stops
MILD_EV = (-1.0, 0.5, 1.0)  # acceptable changes (the negatives beside the untouched photo)
SCALES = (0.5, 1.0, 1.0, 2.0, 3.0)  # resize factor, then kept within the long-side limits below
MIN_LONG_SIDE, MAX_LONG_SIDE = 120, 1200
JPEG_QUALITY = (85, 90, 95)
EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp"}


def change_exposure(arr: np.ndarray, ev: float) -> np.ndarray:
    """``arr`` (uint8 sRGB) with its exposure changed by ``ev`` stops in linear light, clipped."""
    a = arr.astype(np.float32) / 255.0
    lin = np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4) * (2.0**ev)
    lin = np.clip(lin, 0.0, 1.0)
    srgb = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.round(np.clip(srgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def _jpeg(arr: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def examples_from(path: Path, seed: int) -> list[tuple[np.ndarray, float]]:
    """(features, ev) for the untouched photo, a mild change and an over-exposed copy."""
    from PIL import Image

    rng = random.Random(seed)
    with Image.open(path) as im:
        img = im.convert("RGB")
    scale = rng.choice(SCALES)
    long_side = max(img.size)
    scale = min(max(scale, MIN_LONG_SIDE / long_side), MAX_LONG_SIDE / long_side)
    if abs(scale - 1.0) > 0.01:
        size = (max(16, round(img.width * scale)), max(16, round(img.height * scale)))
        img = img.resize(size, Image.LANCZOS)
    arr = np.asarray(img)
    out = []
    for ev in (0.0, rng.choice(MILD_EV), rng.choice(POSITIVE_EV)):
        changed = arr if ev == 0.0 else change_exposure(arr, ev)
        qc = QCImage.from_bytes(_jpeg(changed, rng.choice(JPEG_QUALITY)), str(path))
        out.append((exposure_features(qc), ev))
    return out


def build_set(
    paths: Sequence[Path], seed: int = 0, workers: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, EV and source index for every example of ``paths`` (unreadable files skipped)."""

    def one(i: int) -> list[tuple[np.ndarray, float, int]]:
        try:
            return [(x, ev, i) for x, ev in examples_from(paths[i], seed * 1_000_003 + i)]
        except (OSError, ValueError) as exc:
            print(f"skipped {paths[i]}: {exc}")
            return []

    with ThreadPoolExecutor(max_workers=workers) as pool:
        rows = [r for part in pool.map(one, range(len(paths))) for r in part]
    x = np.stack([r[0] for r in rows]).astype(np.float32)
    return x, np.array([r[1] for r in rows], np.float32), np.array([r[2] for r in rows])


def fit(x: np.ndarray, ev: np.ndarray, seed: int = 0) -> Any:
    """A gradient-boosted classifier: over-exposed (EV >= 1.5) vs not."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    y = (ev >= min(POSITIVE_EV)).astype(int)
    return HistGradientBoostingClassifier(
        max_iter=300, learning_rate=0.05, max_leaf_nodes=31, random_state=seed
    ).fit(x, y)


def choose_threshold(scores: np.ndarray, ev: np.ndarray, target_fpr: float) -> float:
    """The lowest score threshold that flags at most ``target_fpr`` of the untouched (EV 0) rows."""
    clean = np.sort(scores[ev == 0.0])
    if clean.size == 0:
        return 0.5
    k = int(np.floor(target_fpr * clean.size))
    return float(np.nextafter(clean[::-1][k], 1.0)) if k < clean.size else float(clean[0])


def collect(dirs: Sequence[Path], exclude: set[str]) -> list[Path]:
    """Image files under ``dirs`` (recursively), minus those whose stem is in ``exclude``."""
    return [
        p
        for d in dirs
        for p in sorted(Path(d).rglob("*"))
        if p.suffix.lower() in EXTENSIONS and p.stem not in exclude
    ]


def train(
    paths: Sequence[Path],
    out: Path,
    *,
    seed: int = 0,
    target_fpr: float = 0.01,
    command: str = "",
    cache: Path | None = None,
) -> dict[str, Any]:
    """Build the set, fit on 80% of the source photos, pick the threshold on the other 20%, refit on
    all and write ``out/overexposure.npz`` + ``.json``. Returns the metadata."""
    t0 = time.perf_counter()
    names = np.array([str(p) for p in paths])
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            if list(z["paths"]) != list(names) or str(z["version"]) != f"{FEATURE_VERSION}:{seed}":
                raise SystemExit(f"{cache} was built from other photos, seed or features: delete it")
            x, ev, src = z["x"], z["ev"], z["src"]
    else:
        x, ev, src = build_set(paths, seed)
        if cache is not None:
            np.savez(cache, x=x, ev=ev, src=src, paths=names, version=f"{FEATURE_VERSION}:{seed}")
    rng = np.random.default_rng(seed)
    held = rng.random(len(paths)) < 0.2
    test = held[src]
    model = fit(x[~test], ev[~test], seed)
    scores = model.predict_proba(x[test])[:, 1]
    thr = choose_threshold(scores, ev[test], target_fpr)
    flagged = scores >= thr

    def share(rows: np.ndarray) -> float | None:
        return round(float(flagged[rows].mean()), 4) if rows.any() else None

    et = ev[test]
    metrics = {
        "held_out_photos": int(held.sum()),
        "fpr_untouched": share(et == 0.0),
        "flagged_mild": share((et != 0.0) & (et < min(POSITIVE_EV))),
        "recall": {f"ev>={lo:g}": share(et >= lo) for lo in (1.5, 2.0, 2.5, 3.0)},
    }
    final = fit(x, ev, seed)
    import sklearn

    meta = {
        "name": MODEL_NAME,
        "task": "over-exposed (>= +1.5 EV) vs correctly exposed photo",
        "feature_version": FEATURE_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "threshold": round(thr, 4),
        "threshold_rule": f"flags <= {target_fpr:.0%} of held-out untouched photos",
        "model": "sklearn HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=31)",
        "sklearn": sklearn.__version__,
        "training": {
            "photos": len(paths),
            "examples": int(len(x)),
            "degradations": {
                "mild_ev": MILD_EV,
                "positive_ev": POSITIVE_EV,
                "jpeg_quality": JPEG_QUALITY,
                "scales": SCALES,
                "long_side": [MIN_LONG_SIDE, MAX_LONG_SIDE],
            },
            "seed": seed,
            "command": command,
        },
        "held_out": metrics,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    save_learned(out, MODEL_NAME, trees_from_sklearn(final), meta)
    return meta


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "dirs", nargs="+", type=Path, help="folders of correctly exposed photos (searched recursively)"
    )
    ap.add_argument("--out", type=Path, required=True, help="where to write overexposure.npz and .json")
    ap.add_argument("--exclude", type=Path, help="text file of file stems to leave out (one per line)")
    ap.add_argument("--limit", type=int, default=0, help="use at most this many photos (random sample)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target-fpr", type=float, default=0.01)
    ap.add_argument("--cache", type=Path, help="npz file keeping the computed features between runs")
    args = ap.parse_args(argv)
    exclude = set(args.exclude.read_text().split()) if args.exclude else set()
    paths = collect(args.dirs, exclude)
    if args.limit and len(paths) > args.limit:
        paths = sorted(random.Random(args.seed).sample(paths, args.limit))
    if not paths:
        raise SystemExit("no photos found")
    command = "python -m catalens.quality.training.exposure_trees " + " ".join(
        [*(d.name for d in args.dirs), "--out", str(args.out)]
        + (["--exclude", args.exclude.name] if args.exclude else [])
        + ([f"--limit={args.limit}"] if args.limit else [])
        + [f"--seed={args.seed}", f"--target-fpr={args.target_fpr}"]
    )
    meta = train(
        paths, args.out, seed=args.seed, target_fpr=args.target_fpr, command=command, cache=args.cache
    )
    print(json.dumps({k: meta[k] for k in ("threshold", "held_out", "seconds")}))


if __name__ == "__main__":
    main()
