"""The packaged RapidOCR (Apache-2.0, ONNX models inside the wheel, offline), loaded once per setting.

Quality checks and brand tagging read text with different detector sizes; :func:`ocr_engine` keeps
one engine per (limit type, side, threads) so each configuration loads its models once per process.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_engines: dict[tuple[str, int, int], Any] = {}


def ocr_engine(*, limit_type: str, side: int, threads: int = 1) -> Any:
    """A shared RapidOCR engine without the angle classifier.

    ``limit_type`` "max" caps the detector's longest side at ``side`` px; "min" scales the
    shortest side to at least ``side``. ``threads`` = ONNX Runtime intra-op threads.
    """
    key = (limit_type, int(side), int(threads))
    engine = _engines.get(key)
    if engine is None:
        with _lock:
            engine = _engines.get(key)
            if engine is None:
                from rapidocr import RapidOCR

                engine = _engines[key] = RapidOCR(
                    params={
                        "Global.log_level": "error",
                        "Global.use_cls": False,
                        "EngineConfig.onnxruntime.intra_op_num_threads": int(threads),
                        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                        "Det.limit_type": limit_type,
                        "Det.limit_side_len": int(side),
                    }
                )
    return engine
