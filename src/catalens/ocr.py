"""The packaged RapidOCR (Apache-2.0, ONNX models inside the wheel, offline), loaded once per setting.

Quality checks and brand tagging read text with different detector sizes; :func:`ocr_engine` keeps
one engine per (limit type, side, threads, runtime) so each configuration loads its models once per
process.

The text *detector* (a DB segmentation net, most of OCR's cost) runs on OpenVINO when it is installed:
on the same ONNX file, at fp32, its probability map matches ONNX Runtime's and it runs several times
faster on the CPU (bench/RESULTS.md "quality: speed of the model checks"). The recogniser stays on
ONNX Runtime (no gain there).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from catalens.errors import ConfigError

_lock = threading.Lock()
_engines: dict[tuple[str, int, int, str, str], Any] = {}

RUNTIMES = ("auto", "openvino", "onnxruntime")
# OpenVINO inference precision of the detector: "f32" (default; matches ONNX Runtime) or "native" (the
# CPU plugin's default: bf16 on CPUs with native bf16 - faster, and the probability map moves by ~4e-3)
PRECISIONS = ("f32", "native")


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class OpenVinoDetSession:
    """A drop-in for RapidOCR's detector session: ``session(x) -> first output`` on OpenVINO's CPU
    plugin, fp32 (``precision`` ``None`` takes OpenVINO's default, bf16 on CPUs with native bf16).

    One compiled model; one infer request per calling thread (an infer request is not thread-safe, and
    the QC runner calls from several worker threads)."""

    def __init__(self, model_path: str | Path, *, threads: int = 1, precision: str | None = "f32") -> None:
        import openvino as ov

        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": max(1, int(threads)), "ENABLE_CPU_PINNING": False}
        if precision:
            config["INFERENCE_PRECISION_HINT"] = precision
        self.model_path = str(model_path)
        self.compiled = ov.Core().compile_model(self.model_path, "CPU", config)
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self._local = threading.local()

    def __call__(self, x: Any) -> Any:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        request.infer({0: x})
        return request.get_output_tensor(0).data.copy()


def _use_openvino_detector(engine: Any, threads: int, precision: str) -> None:
    """Swap the engine's detector session for :class:`OpenVinoDetSession` on the same model file."""
    det = engine._load_det_model()  # RapidOCR loads it lazily; load now to reach its ONNX file
    path = getattr(getattr(det.session, "session", None), "_model_path", None)
    if not path or not Path(str(path)).is_file():
        raise ConfigError(
            "OCR runtime 'openvino': cannot find the text detector's ONNX file in this RapidOCR "
            f"({type(det.session).__name__}); use runtime 'onnxruntime'"
        )
    det.session = OpenVinoDetSession(
        str(path), threads=threads, precision=None if precision == "native" else "f32"
    )


def ocr_engine(
    *, limit_type: str, side: int, threads: int = 1, runtime: str = "auto", precision: str = "auto"
) -> Any:
    """A shared RapidOCR engine without the angle classifier.

    ``limit_type`` "max" caps the detector's longest side at ``side`` px; "min" scales the
    shortest side to at least ``side``. ``threads`` = intra-op threads per call. ``runtime``: the text
    detector's runtime, "openvino", "onnxruntime", or "auto": ``$CATALENS_OCR_RUNTIME`` when set, else
    OpenVINO when installed. ``precision`` (OpenVINO only, :data:`PRECISIONS`): "auto" =
    ``$CATALENS_OCR_PRECISION`` when set, else "f32".
    """
    if runtime == "auto":
        runtime = os.environ.get("CATALENS_OCR_RUNTIME", "auto") or "auto"
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown OCR runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    if runtime == "auto":
        runtime = "openvino" if openvino_available() else "onnxruntime"
    if precision == "auto":
        precision = os.environ.get("CATALENS_OCR_PRECISION", "f32") or "f32"
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown OCR precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if runtime == "onnxruntime":
        precision = "f32"
    key = (limit_type, int(side), int(threads), runtime, precision)
    engine = _engines.get(key)
    if engine is None:
        with _lock:
            engine = _engines.get(key)
            if engine is None:
                from rapidocr import RapidOCR

                engine = RapidOCR(
                    params={
                        "Global.log_level": "error",
                        "Global.use_cls": False,
                        "EngineConfig.onnxruntime.intra_op_num_threads": int(threads),
                        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                        "Det.limit_type": limit_type,
                        "Det.limit_side_len": int(side),
                    }
                )
                if runtime == "openvino":
                    _use_openvino_detector(engine, int(threads), precision)
                _engines[key] = engine
    return engine
