"""Embedding runtimes side by side: ONNX Runtime fp32 (the baseline) against static int8
(ONNX Runtime QDQ / QOperator, calibrated on catalog photos) and OpenVINO (f32, bf16, int8).

    python bench/embed_runtime.py [--model efficientnet-lite0] [--threads 2] [--rounds 3] [--wait-load 1.5]

Needs the ``openvino`` extra and, for the NNCF variant, ``pip install nncf`` (both Apache-2.0).
The OpenVINO variants run the library's ``OpenVinoImageEncoder`` (``device="openvino"``).

One run does, for the baseline and each variant:

* **forward images/s**: ``encode`` on ``--speed-images`` preprocessed eval photos in batches of
  ``--batch``, ``--threads`` threads, after a warm-up; ``--rounds`` rounds, the variants
  interleaved (the order rotates each round), each timed right after an fp32 pass; the speed-up
  is the median of those paired ratios (the load of a shared machine drifts within a round),
  images/s the median of a variant's passes; load average printed;
* **cosine** of each eval photo's embedding to the fp32 one (median, p1, min);
* **dedup**: ``Catalog.dedup`` (the library's pipeline: kNN candidates on these embeddings +
  copy verification) on a planted set built from eval photos only
  (``bench/search_dedup_planted.py``: resize / JPEG / crop / overlay / border copies), pair
  precision / recall / F1; plus an embedding-only figure, the average precision of the true
  pairs when all pairs of the planted set are ranked by cosine;
* **search mAP@10**: every eval photo queries the others (leave-one-out), relevant = same
  articleType;
* **linear probe**: articleType, ``LogisticRegression`` on L2-normalised embeddings, fixed 80/20
  split of the eval photos by title group (classes with < 2 training photos dropped), weighted F1.

Data split: myntra-dev photos (distinct files) whose SHA-256 falls in bucket 0 of 10 are the
calibration split (int8 calibration only); the rest is the eval split (everything measured).
Identical files are on one side.

Keep rule (issue 21): forward >= 1.5x fp32 in the same run, cosine median >= 0.99, and dedup F1,
mAP@10 and probe weighted-F1 each within 0.005 of fp32. Prints one JSON line per variant and a
summary line.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

DATA = Path(
    os.environ.get("CATALENS_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
)
KEEP_SPEEDUP, KEEP_COSINE, KEEP_DELTA = 1.5, 0.99, 0.005


def emit(**kw: object) -> None:
    print(json.dumps(kw), flush=True)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_flags() -> list[str]:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return sorted(
        f
        for f in flags
        if f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    )


def cpu_name() -> str:
    try:
        return (
            next(line for line in open("/proc/cpuinfo") if line.startswith("model name"))
            .split(":", 1)[1]
            .strip()
        )
    except (OSError, StopIteration):
        return platform.processor()


# --- data ------------------------------------------------------------------------------------


def split_rows(root: Path, calib_buckets: int = 1, n_buckets: int = 10) -> tuple[list[dict], list[dict]]:
    """(calibration rows, eval rows): one row per distinct file, split by the file's SHA-256."""
    seen: set[str] = set()
    calib, evals = [], []
    for row in csv.DictReader(open(root / "labels.csv")):
        sha = hashlib.sha256((root / row["image"]).read_bytes()).hexdigest()
        if sha in seen:
            continue
        seen.add(sha)
        row = dict(row, path=str(root / row["image"]), sha=sha)
        (calib if int(sha[:8], 16) % n_buckets < calib_buckets else evals).append(row)
    return calib, evals


def preprocess(pre: Any, paths: list[str], dtype: Any = np.float32) -> np.ndarray:
    from catalens.imageio import open_image

    out = np.empty((len(paths), *pre.output_shape), dtype)
    for i, p in enumerate(paths):
        out[i] = pre(open_image(p, draft_to=pre.target_short_side).image)
    return out


def encode_all(encoder: Any, x: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate(
        [encoder.encode(np.ascontiguousarray(x[i : i + batch], np.float32)) for i in range(0, len(x), batch)]
    )


def normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


# --- variants --------------------------------------------------------------------------------


class Calib:
    """ONNX Runtime calibration reader over the calibration split."""

    def __init__(self, x: np.ndarray, name: str, batch: int = 16) -> None:
        self.items = iter([{name: x[i : i + batch]} for i in range(0, len(x), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.items, None)


def ort_int8(fmt: str, per_channel: bool, method: str = "minmax", ends_fp32: bool = False) -> Callable:
    def build(ctx: dict) -> tuple[Any, dict]:
        import onnx
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        from catalens.models.runtime import OnnxImageEncoder

        base = ctx["base"]
        convs = [n.name for n in onnx.load(ctx["pre_path"]).graph.node if n.op_type == "Conv"]
        out = (
            ctx["work"]
            / f"int8-{fmt}-{'pc' if per_channel else 'pt'}-{method}{'-ends' if ends_fp32 else ''}.onnx"
        )
        kwargs: dict[str, Any] = {}
        if method == "percentile":
            kwargs = {
                "calibrate_method": CalibrationMethod.Percentile,
                "extra_options": {"CalibPercentile": 99.999},
            }
        quantize_static(
            ctx["pre_path"],
            str(out),
            Calib(ctx["calib"], base.input_name),
            quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=[convs[0], convs[-1]] if ends_fp32 else None,
            **kwargs,
        )
        ctx.setdefault("paths", {})[(fmt, per_channel, method, ends_fp32)] = out
        enc = OnnxImageEncoder(out, base.spec, base.version, threads=ctx["threads"])
        return enc, {"runtime": f"onnxruntime {fmt} int8", "file_mb": round(out.stat().st_size / 2**20, 2)}

    return build


def ort_fp32(ctx: dict) -> tuple[Any, dict]:
    return ctx["base"], {
        "runtime": "onnxruntime fp32",
        "file_mb": round(Path(ctx["base"].path).stat().st_size / 2**20, 2),
    }


def openvino(path: Path | str, ctx: dict, precision: str | None) -> Any:
    """The library's OpenVINO encoder (``device="openvino"``) on ``path`` (ONNX or OpenVINO IR)."""
    from catalens.models.runtime import OpenVinoImageEncoder

    base = ctx["base"]
    return OpenVinoImageEncoder(path, base.spec, base.version, threads=ctx["threads"], precision=precision)


def ov_plain(precision: str) -> Callable:
    def build(ctx: dict) -> tuple[Any, dict]:
        import openvino as ov

        enc = openvino(ctx["base"].path, ctx, precision)
        return enc, {"runtime": f"openvino {ov.get_version().split('-')[0]}", "precision": enc.precision}

    return build


def ov_nncf(ctx: dict) -> tuple[Any, dict]:
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(ctx["base"].path))
    calib = ctx["calib"]
    q = nncf.quantize(
        model, nncf.Dataset([calib[i : i + 1] for i in range(len(calib))]), subset_size=len(calib)
    )
    path = ctx["work"] / "nncf-int8.xml"
    ov.save_model(q, str(path))
    enc = openvino(path, ctx, "f32")
    return enc, {"runtime": f"openvino + nncf {nncf.__version__} int8", "precision": enc.precision}


def ov_ort_qdq(ctx: dict) -> tuple[Any, dict]:
    path = ctx.get("paths", {}).get(("qdq", True, "minmax", False))
    if path is None:
        ort_int8("qdq", True)(ctx)
        path = ctx["paths"][("qdq", True, "minmax", False)]
    enc = openvino(path, ctx, "f32")
    return enc, {
        "runtime": "openvino running the onnxruntime per-channel QDQ model",
        "precision": enc.precision,
    }


VARIANTS: dict[str, Callable] = {
    "ort-fp32": ort_fp32,
    "ort-int8-qdq": ort_int8("qdq", False),
    "ort-int8-qop": ort_int8("qop", False),
    "ort-int8-qdq-pc": ort_int8("qdq", True),
    "ort-int8-qop-pc": ort_int8("qop", True),
    "ort-int8-qdq-pc-pct": ort_int8("qdq", True, "percentile"),
    "ort-int8-qdq-pc-ends-fp32": ort_int8("qdq", True, ends_fp32=True),
    "ov-f32": ov_plain("f32"),
    "ov-bf16": ov_plain("bf16"),
    "ov-int8-nncf": ov_nncf,
    "ov-int8-ort-qdq-pc": ov_ort_qdq,
}


# --- downstream metrics ----------------------------------------------------------------------


def map_at_10(emb: np.ndarray, labels: list[str]) -> float:
    from search_quality import ap_at_k

    x = normalize(emb)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    lab = np.asarray(labels)
    counts = {t: int((lab == t).sum()) for t in set(labels)}
    top = np.argsort(-sims, axis=1, kind="stable")[:, :10]
    return float(np.mean([ap_at_k(list(lab[top[i]] == lab[i]), counts[lab[i]] - 1) for i in range(len(lab))]))


def probe_split(rows: list[dict], seed: int = 0, test_frac: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r.get("productDisplayName") or r["sha"]).strip().lower(), []).append(i)
    keys = sorted(groups)
    np.random.default_rng(seed).shuffle(keys)
    test: list[int] = []
    for k in keys:
        if len(test) >= test_frac * len(rows):
            break
        test.extend(groups[k])
    is_test = np.zeros(len(rows), bool)
    is_test[test] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def probe_f1(emb: np.ndarray, labels: list[str], train: np.ndarray, test: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    x, y = normalize(emb), np.asarray(labels)
    counts = {t: int((y[train] == t).sum()) for t in set(y[train])}
    tr = train[[counts[t] >= 2 for t in y[train]]]
    te = test[[counts.get(t, 0) >= 2 for t in y[test]]]
    clf = LogisticRegression(C=10.0, max_iter=3000)
    clf.fit(x[tr], y[tr])
    return float(f1_score(y[te], clf.predict(x[te]), average="weighted"))


def pair_ap(emb: np.ndarray, names: list[str], truth: set[frozenset[str]]) -> float:
    x = normalize(emb)
    iu = np.triu_indices(len(names), 1)
    sims = (x @ x.T)[iu]
    order = np.argsort(-sims, kind="stable")
    rel = np.array(
        [frozenset((names[a], names[b])) in truth for a, b in zip(iu[0][order], iu[1][order], strict=True)]
    )
    hits = np.cumsum(rel)
    return float((hits[rel] / (np.flatnonzero(rel) + 1)).sum() / max(1, len(truth)))


def catalog_dedup(encoder: Any, folder: Path, truth: set[frozenset[str]]) -> dict:
    from search_dedup import pairs_of, score

    from catalens import Catalog

    with tempfile.TemporaryDirectory() as home:
        cat = Catalog.open(home)
        cat._encoders[(encoder.model_id, cat.settings.device)] = encoder
        t = time.perf_counter()
        cat.ingest(folder / "labels.csv", id_col="id", model=encoder.model_id)
        rep = cat.dedup()
        groups = [[Path(im["source"]).name for im in g["images"]] for g in rep.to_dict()["groups"]]
        cat.close()
    return score(pairs_of(groups), truth) | {"seconds": round(time.perf_counter() - t, 1)}


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--data", default="myntra-dev")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--speed-images", type=int, default=512)
    ap.add_argument("--calib-images", type=int, default=256)
    ap.add_argument("--dedup-orig", type=int, default=300)
    ap.add_argument("--dedup-other", type=int, default=600)
    ap.add_argument("--dedup-seed", type=int, default=1)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), help=f"from {list(VARIANTS)}")
    ap.add_argument(
        "--wait-load", type=float, default=0.0, help="before timing, wait until the 1-min load is below this"
    )
    ap.add_argument("--wait-max", type=float, default=600.0, help="seconds to wait for --wait-load at most")
    ap.add_argument(
        "--speed-only",
        action="store_true",
        help="only the timed rounds (no planted set, no accuracy figures)",
    )
    args = ap.parse_args()
    root = DATA / args.data
    if not root.exists():
        sys.exit(f"{root} not found")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    import onnxruntime

    from catalens.models import load_image_encoder
    from catalens.models.runtime import OnnxImageEncoder

    t_start = time.perf_counter()
    base = load_image_encoder(args.model, device="cpu")
    if not isinstance(base, OnnxImageEncoder):
        sys.exit(f"{args.model}: no ONNX export ({type(base).__name__})")
    base = OnnxImageEncoder(base.path, base.spec, base.version, threads=args.threads)
    pre = base.preprocess
    calib_rows, eval_rows = split_rows(root)
    calib = preprocess(pre, [r["path"] for r in calib_rows[: args.calib_images]])
    evals = preprocess(pre, [r["path"] for r in eval_rows], np.float16)
    speed = [
        np.ascontiguousarray(evals[i : i + args.batch], np.float32)
        for i in range(0, min(args.speed_images, len(evals)), args.batch)
    ]
    labels = [r["articleType"] for r in eval_rows]
    train, test = probe_split(eval_rows)

    # planted copies of eval photos only
    from search_dedup import pairs_of
    from search_dedup_planted import make_planted

    work = Path(tempfile.mkdtemp(prefix="embed-runtime-"))
    planted = work / "planted"
    truth: set[frozenset[str]] = set()
    planted_names: list[str] = []
    if not args.speed_only:
        src = work / "eval-src"
        src.mkdir()
        with open(src / "labels.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["image", "id"])
            for r in eval_rows:
                w.writerow([r["path"], r["id"]])
        truth_doc = make_planted(src, planted, args.dedup_orig, args.dedup_other, seed=args.dedup_seed)
        truth = pairs_of(truth_doc["groups"])
        planted_names = [r["image"] for r in csv.DictReader(open(planted / "labels.csv"))]
        planted_x = preprocess(pre, [str(planted / n) for n in planted_names])

    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre_path = work / "fp32-pre.onnx"
    quant_pre_process(str(base.path), str(pre_path))
    ctx = {"base": base, "calib": calib, "threads": args.threads, "work": work, "pre_path": str(pre_path)}
    emit(
        setup=True,
        model=args.model,
        version=base.version,
        calib_images=len(calib),
        eval_images=len(evals),
        planted_files=len(planted_names),
        planted_pairs=len(truth),
        probe_train=len(train),
        probe_test=len(test),
        cpu=cpu_name(),
        cpu_flags=cpu_flags(),
        cores=len(os.sched_getaffinity(0)),
        onnxruntime=onnxruntime.__version__,
        load_average=load(),
    )

    names = ["ort-fp32", *[v for v in args.variants if v != "ort-fp32"]]
    encoders: dict[str, Any] = {}
    info: dict[str, dict] = {}
    for name in names:
        t = time.perf_counter()
        try:
            encoders[name], info[name] = VARIANTS[name](ctx)
        except Exception as exc:  # a variant that cannot be built is reported, not fatal
            emit(variant=name, error=f"{type(exc).__name__}: {str(exc)[:300]}")
            continue
        info[name]["build_s"] = round(time.perf_counter() - t, 1)

    # accuracy first (a single pass each), then the timed rounds
    quality: dict[str, dict] = {}
    ref_eval = ref_planted = None
    for name, enc in [] if args.speed_only else encoders.items():
        t = time.perf_counter()
        e = encode_all(enc, evals, args.batch)
        p = encode_all(enc, planted_x, args.batch)
        if ref_eval is None:
            ref_eval, ref_planted = e, p
        cos = np.sum(normalize(e) * normalize(ref_eval), axis=1)
        cos_p = np.sum(normalize(p) * normalize(ref_planted), axis=1)
        quality[name] = {
            "cosine_median": round(float(np.median(cos)), 5),
            "cosine_p1": round(float(np.percentile(cos, 1)), 5),
            "cosine_min": round(float(cos.min()), 5),
            "cosine_planted_median": round(float(np.median(cos_p)), 5),
            "map_at_10": round(map_at_10(e, labels), 4),
            "probe_weighted_f1": round(probe_f1(e, labels, train, test), 4),
            "pair_ap": round(pair_ap(p, planted_names, truth), 4),
            "dedup": catalog_dedup(enc, planted, truth),
            "quality_s": round(time.perf_counter() - t, 1),
        }
        emit(variant=name, stage="quality", **quality[name], load_average=load())

    waited = time.time()
    if args.wait_load:
        while os.getloadavg()[0] >= args.wait_load and time.time() < waited + args.wait_max:
            time.sleep(20)
    waited = round(time.time() - waited)
    for enc in encoders.values():  # warm-up
        for b in speed[:2]:
            enc.encode(b)
    # Each variant is timed right after an fp32 pass (pairs in a rotating order): the load of a
    # shared machine drifts within a round, so the figure is the median of the paired ratios.
    speeds: dict[str, list[float]] = {n: [] for n in encoders}
    ratios: dict[str, list[float]] = {n: [] for n in encoders}
    loads = [load()]
    order = [n for n in encoders if n != "ort-fp32"]
    n_images = sum(len(b) for b in speed)

    def timed(name: str) -> float:
        t = time.perf_counter()
        for b in speed:
            encoders[name].encode(b)
        v = round(n_images / (time.perf_counter() - t), 1)
        speeds[name].append(v)
        return v

    for r in range(args.rounds):
        for name in order[r % len(order) :] + order[: r % len(order)]:
            ref = timed("ort-fp32")
            ratios[name].append(round(timed(name) / ref, 3))
        ratios["ort-fp32"].append(1.0)
        loads.append(load())
        emit(round=r, images_per_s=speeds, ratio_vs_fp32=ratios, load_average=loads[-1])

    ref_speed = statistics.median(speeds["ort-fp32"])
    kept = []
    for name in encoders:
        med, ratio = statistics.median(speeds[name]), statistics.median(ratios[name])
        timing = {
            "variant": name,
            **info[name],
            "images_per_s": med,
            "runs": speeds[name],
            "speed_vs_fp32": ratio,
            "paired_ratios": ratios[name],
        }
        if args.speed_only:
            emit(**timing, checks={"speed": ratio >= KEEP_SPEEDUP})
            continue
        q, ref_q = quality[name], quality["ort-fp32"]
        deltas = {
            "dedup_f1": round(q["dedup"]["f1"] - ref_q["dedup"]["f1"], 4),
            "map_at_10": round(q["map_at_10"] - ref_q["map_at_10"], 4),
            "probe_weighted_f1": round(q["probe_weighted_f1"] - ref_q["probe_weighted_f1"], 4),
            "pair_ap": round(q["pair_ap"] - ref_q["pair_ap"], 4),
        }
        checks = {
            "speed": ratio >= KEEP_SPEEDUP,
            "cosine": q["cosine_median"] >= KEEP_COSINE,
            "dedup_f1": abs(deltas["dedup_f1"]) <= KEEP_DELTA,
            "map_at_10": abs(deltas["map_at_10"]) <= KEEP_DELTA,
            "probe_weighted_f1": abs(deltas["probe_weighted_f1"]) <= KEEP_DELTA,
        }
        keep = name != "ort-fp32" and all(checks.values())
        if keep:
            kept.append(name)
        emit(
            **timing,
            **{k: v for k, v in q.items() if k != "quality_s"},
            delta_vs_fp32=deltas,
            checks=checks,
            keep=keep,
        )
    emit(
        summary=True,
        model=args.model,
        threads=args.threads,
        batch=args.batch,
        speed_images=n_images,
        rounds=args.rounds,
        variants_tried=len(encoders) - 1,
        kept=None if args.speed_only else kept,
        fp32_images_per_s=ref_speed,
        load_average_during_timing=loads,
        waited_for_load_s=waited,
        wall_s=round(time.perf_counter() - t_start, 1),
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
