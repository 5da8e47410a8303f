"""Long-budget fuzzing of the decoder (and the other untrusted-input parsers) with a plain mutation loop.

    python bench/fuzz.py --target decode --seconds 600      # iterations/s and findings printed
    python bench/fuzz.py --target where --iterations 100000
    python bench/fuzz.py --engine atheris --target decode --seconds 300   # coverage-guided (libFuzzer)

Seeds are the real JPEG/PNG/WebP/GIF/TIFF files of ``tests/fuzz_targets.seeds``; each iteration applies
1-8 random byte mutations (bit flip, cut, insert, zero a word) and calls the target, which lets only
typed catalens errors through. Every other exception is a finding: its input is saved under
``--findings`` (default bench/data/fuzz-findings/) to become a regression test.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fuzz_targets as ft  # noqa: E402


def mutate(rnd: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 8)):
        op, pos = rnd.randrange(4), rnd.randrange(max(1, len(buf)))
        if op == 0 and buf:
            buf[pos] ^= 1 << rnd.randrange(8)
        elif op == 1:
            del buf[pos : pos + rnd.randint(1, 64)]
        elif op == 2:
            buf[pos:pos] = rnd.randbytes(rnd.randint(1, 16))
        elif buf:
            buf[pos : pos + 4] = b"\0\0\0\0"
    return bytes(buf)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", choices=["decode", "where"], default="decode")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--iterations", type=int, default=0, help="stop after this many (0: time budget only)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--findings", type=Path, default=Path(__file__).parent / "data" / "fuzz-findings")
    ap.add_argument(
        "--engine",
        choices=["mutate", "atheris"],
        default="mutate",
        help="plain mutation loop, or atheris (coverage-guided libFuzzer over instrumented code)",
    )
    args = ap.parse_args()
    if args.engine == "atheris":
        return run_atheris(args)
    warnings.simplefilter("ignore")  # Pillow warns on every damaged TIFF tag; findings are exceptions
    rnd = random.Random(args.seed)
    if args.target == "decode":
        corpus, call = ft.seeds(), ft.decode
    else:
        corpus = [b"colour = 'red' and year >= 2012", b"id in ('1','2') or not title like '%x%'"]
        call = lambda data: ft.where(data.decode("utf-8", "replace"))  # noqa: E731
    t0, n, findings, slowest = time.perf_counter(), 0, 0, 0.0
    while time.perf_counter() - t0 < args.seconds and (not args.iterations or n < args.iterations):
        data = mutate(rnd, rnd.choice(corpus))
        t = time.perf_counter()
        try:
            call(data)
        except Exception:  # noqa: BLE001 - a finding
            findings += 1
            args.findings.mkdir(parents=True, exist_ok=True)
            (args.findings / f"{args.target}-{n}.bin").write_bytes(data)
            print(f"finding at iteration {n}:\n{traceback.format_exc()}", file=sys.stderr)
        slowest = max(slowest, time.perf_counter() - t)
        n += 1
    took = time.perf_counter() - t0
    print(
        f"{args.target}: {n} iterations in {took:.0f} s ({n / took:.0f}/s), {findings} findings, "
        f"slowest input {slowest * 1000:.0f} ms, seed {args.seed}"
    )


def run_atheris(args: argparse.Namespace) -> None:
    """Coverage-guided: catalens' decoder and Pillow's Python plugins instrumented, the seed files as
    the starting corpus, libFuzzer's mutations. A finding is any exception other than the typed
    errors the target lets through: libFuzzer saves the input (crash-*) under --findings and stops."""
    import atheris

    with atheris.instrument_imports():
        import PIL.Image  # noqa: F401

        import catalens.imageio  # noqa: F401
    corpus = args.findings / f"atheris-corpus-{args.target}"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(ft.seeds()):
        (corpus / f"seed-{i}").write_bytes(data)
    warnings.simplefilter("ignore")

    def one(data: bytes) -> None:
        if args.target == "decode":
            ft.decode(data)
        else:
            ft.where(data.decode("utf-8", "replace"))

    flags = [
        sys.argv[0],
        f"-max_total_time={int(args.seconds)}",
        f"-seed={args.seed + 1}",
        f"-artifact_prefix={args.findings}/",
        "-print_final_stats=1",
        "-rss_limit_mb=4096",
        "-timeout=10",
        str(corpus),
    ]
    if args.iterations:
        flags.insert(1, f"-runs={args.iterations}")
    atheris.Setup(flags, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
