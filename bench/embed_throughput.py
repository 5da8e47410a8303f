"""Embedding throughput: forward-only ONNX Runtime vs end-to-end ingest+embed vs eager torch.

Prints one JSON line per measurement and a final JSON summary with the ratios::

    python bench/embed_throughput.py --images 1024 [--model efficientnet-lite0]
    python bench/embed_throughput.py --rss 10000     # peak RSS while embedding N distinct images

Forward-only = ``encoder.encode`` on batches preprocessed beforehand (the inference limit).
End-to-end = ``Catalog.ingest`` of a manifest into an empty home (read, hash, decode,
preprocess, infer, write vectors and database rows), model already loaded; measured with the
decode threads at the default ``prefetch_nice`` (+3) and at the same priority as inference
(``end_to_end_nice0``; ``--compare-nice`` picks others).
Eager torch = the same model's torch module in inference mode on the same batches.
``--devices cpu openvino`` also measures forward-only and end-to-end on the other runtimes
(``catalens --device``; their ``*_over_cpu`` ratios in the summary).
Rounds are interleaved and medians reported, because this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(
    os.environ.get("CATALENS_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
)


def emit(**kw: object) -> None:
    print(json.dumps(kw), flush=True)


def dev_images(n: int) -> list[Path]:
    rows = list(csv.DictReader(open(DATA / "myntra-dev" / "labels.csv")))
    paths = [DATA / "myntra-dev" / r["image"] for r in rows]
    return (paths * (n // len(paths) + 1))[:n]


def forward_only(encoder, batches: list[np.ndarray]) -> float:
    t = time.perf_counter()
    for b in batches:
        encoder.encode(b)
    return sum(len(b) for b in batches) / (time.perf_counter() - t)


def eager_torch(model, batches: list[np.ndarray]) -> float:
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    with torch.inference_mode():
        model(torch.from_numpy(batches[0][:2]))  # warm-up
        t = time.perf_counter()
        for b in batches:
            model(torch.from_numpy(b))
    return sum(len(b) for b in batches) / (time.perf_counter() - t)


def end_to_end(
    cat_cls, encoder, manifest: Path, batch_size: int, nice: int | None = None, device: str = "cpu"
) -> float:
    """Images/s of ``Catalog.ingest``; ``nice`` None = the library's default ``prefetch_nice``."""
    with tempfile.TemporaryDirectory() as home:
        extra = {} if nice is None else {"prefetch_nice": nice}
        cat = cat_cls.open(home, batch_size=batch_size, device=device, **extra)
        cat._encoders[(encoder.model_id, cat.settings.device)] = encoder
        rep = cat.ingest(manifest, model=encoder.model_id)
        cat.close()
        assert rep.embedded == rep.seen - rep.already_present, rep.to_dict()
        return rep.embedded / rep.elapsed_s


def throughput(args: argparse.Namespace) -> None:
    from catalens import Catalog
    from catalens.imageio import open_image
    from catalens.models import load_image_encoder, load_torch_model

    paths = list(dict.fromkeys(dev_images(args.images)))
    encoder = load_image_encoder(args.model, device="cpu")
    pre = encoder.preprocess
    tensors = [pre(open_image(p, draft_to=pre.target_short_side).image) for p in paths]
    batches = [np.stack(tensors[i : i + args.batch]) for i in range(0, len(tensors), args.batch)]
    tmp = Path(tempfile.mkdtemp())
    manifest = tmp / "m.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "id"])
        for i, p in enumerate(paths):
            w.writerow([str(p), f"p{i}"])
    torch_model = load_torch_model(args.model)
    encoder.encode(batches[0])  # warm-up
    others = {d: load_image_encoder(args.model, device=d) for d in args.devices if d != "cpu"}
    for enc in others.values():
        enc.encode(batches[0])  # warm-up
    results: dict[str, list[float]] = {
        "forward_only": [],
        "end_to_end": [],
        "eager_torch": [],
    }
    for r in range(args.rounds):
        for name, fn in (
            ("forward_only", lambda: forward_only(encoder, batches)),
            ("end_to_end", lambda: end_to_end(Catalog, encoder, manifest, args.batch)),
            *(
                (
                    f"end_to_end_nice{n}",
                    lambda n=n: end_to_end(Catalog, encoder, manifest, args.batch, nice=n),
                )
                for n in args.compare_nice
            ),
            ("eager_torch", lambda: eager_torch(torch_model, batches[: max(1, len(batches) // 4)])),
            *(
                pair
                for d, enc in others.items()
                for pair in (
                    (f"forward_only_{d}", lambda enc=enc: forward_only(enc, batches)),
                    (
                        f"end_to_end_{d}",
                        lambda d=d, enc=enc: end_to_end(Catalog, enc, manifest, args.batch, device=d),
                    ),
                )
            ),
        ):
            v = fn()
            results.setdefault(name, []).append(v)
            emit(
                round=r,
                measure=name,
                images_per_s=round(v, 2),
                images=len(paths),
                model=args.model,
                load_1min=round(os.getloadavg()[0], 2),
            )
    med = {k: statistics.median(v) for k, v in results.items()}
    emit(
        summary=True,
        model=args.model,
        backend=encoder.backend,
        images=len(paths),
        batch=args.batch,
        cores=len(os.sched_getaffinity(0)),
        median_images_per_s={k: round(v, 2) for k, v in med.items()},
        e2e_over_forward=round(med["end_to_end"] / med["forward_only"], 3),
        **{
            f"e2e_nice{n}_over_forward": round(med[f"end_to_end_nice{n}"] / med["forward_only"], 3)
            for n in args.compare_nice
        },
        load_average=[round(x, 2) for x in os.getloadavg()],
        e2e_over_torch=round(med["end_to_end"] / med["eager_torch"], 3),
        onnx_over_torch=round(med["forward_only"] / med["eager_torch"], 3),
        **{
            k: v
            for d, enc in others.items()
            for k, v in (
                (f"{d}_version", enc.version),
                (f"{d}_forward_over_cpu", round(med[f"forward_only_{d}"] / med["forward_only"], 3)),
                (f"{d}_e2e_over_cpu", round(med[f"end_to_end_{d}"] / med["end_to_end"], 3)),
                (f"{d}_e2e_over_its_forward", round(med[f"end_to_end_{d}"] / med[f"forward_only_{d}"], 3)),
            )
        },
    )


def make_distinct(n: int, out: Path) -> Path:
    """n distinct JPEGs (dev images re-saved with a one-pixel mark), and a manifest."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "m.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "id"])
        for i, p in enumerate(dev_images(n)):
            dst = out / f"{i}.jpg"
            if not dst.exists():
                img = Image.open(p).convert("RGB")
                img.putpixel((i % img.width, (i // img.width) % img.height), (i % 256, (i // 256) % 256, 7))
                img.save(dst, quality=90)
            w.writerow([dst.name, f"p{i}"])
    return manifest


def rss(args: argparse.Namespace) -> None:
    manifest = make_distinct(args.rss, Path(tempfile.gettempdir()) / f"catalens-rss-{args.rss}")
    with tempfile.TemporaryDirectory() as home:
        code = (
            "import resource,sys,json;from catalens import Catalog;"
            f"c=Catalog.open({home!r});r=c.ingest({str(manifest)!r},model={args.model!r});"
            "print(json.dumps({'embedded':r.embedded,'failed':r.failed,'elapsed_s':r.elapsed_s,"
            "'peak_rss_mb':resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024}))"
        )
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        emit(
            measure="peak_rss",
            images=args.rss,
            model=args.model,
            wall_s=round(time.perf_counter() - t, 1),
            **res,
        )
    _ = resource


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument(
        "--compare-nice",
        type=int,
        nargs="*",
        default=[0],
        help="also measure end-to-end with the decode threads at these nice increments",
    )
    ap.add_argument(
        "--devices",
        nargs="+",
        default=["cpu"],
        help="runtimes to compare (cpu = ONNX Runtime, the baseline; openvino needs the openvino extra)",
    )
    ap.add_argument("--rss", type=int, default=0, help="measure peak RSS embedding N distinct images instead")
    args = ap.parse_args()
    if not (DATA / "myntra-dev").exists():
        sys.exit(f"{DATA / 'myntra-dev'} not found")
    rss(args) if args.rss else throughput(args)


if __name__ == "__main__":
    main()
