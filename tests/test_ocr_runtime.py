"""The shared OCR engine: the text detector on OpenVINO reads what it reads on ONNX Runtime."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from catalens.errors import ConfigError

pytest.importorskip("rapidocr")
pytest.importorskip("openvino")

from catalens import ocr  # noqa: E402

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def _text_photo(words: str, size: tuple[int, int] = (480, 360)) -> np.ndarray:
    img = Image.new("RGB", size, (236, 230, 222))
    draw = ImageDraw.Draw(img)
    draw.ellipse((120, 60, 380, 320), fill=(60, 90, 150))  # a "product" under part of the text
    try:
        font = ImageFont.truetype(FONT, 44)
    except OSError:
        font = ImageFont.load_default()
    draw.text((30, 140), words, fill=(250, 250, 250), font=font, stroke_width=2, stroke_fill=(20, 20, 20))
    return np.ascontiguousarray(np.asarray(img)[:, :, ::-1])  # BGR, as RapidOCR takes it


def _read(engine: object, bgr: np.ndarray) -> tuple[list[list[list[float]]], tuple[str, ...]]:
    out = engine(bgr)  # type: ignore[operator]
    boxes = [] if out.boxes is None else np.round(np.asarray(out.boxes), 1).tolist()
    return boxes, tuple(out.txts or ())


def test_openvino_detector_reads_what_onnxruntime_reads() -> None:
    ort_engine = ocr.ocr_engine(limit_type="max", side=480, runtime="onnxruntime")
    ov_engine = ocr.ocr_engine(limit_type="max", side=480, runtime="openvino")
    for words in ("BIG SALE 40%", "visit myshop"):
        bgr = _text_photo(words)
        got = _read(ov_engine, bgr)
        assert got == _read(ort_engine, bgr)
        assert got[0], "the detector found no text in a photo with large text"
    assert isinstance(ov_engine.text_det.session, ocr.OpenVinoDetSession)
    assert ov_engine.text_det.session.precision == "f32"
    assert not isinstance(ort_engine.text_det.session, ocr.OpenVinoDetSession)


def test_openvino_detector_from_many_threads() -> None:
    """One infer request per thread: concurrent calls (the QC runner's workers) do not mix results."""
    engine = ocr.ocr_engine(limit_type="max", side=480, runtime="openvino")
    photos = [_text_photo(w) for w in ("FLAT 50% OFF", "NEW", "ab", "FREE SHIPPING")]
    alone = [_read(engine, p) for p in photos]
    got: dict[int, list[object]] = {}

    def work(k: int) -> None:
        got[k] = [_read(engine, photos[(k + i) % 4]) for i in range(8)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, reads in got.items():
        assert reads == [alone[(k + i) % 4] for i in range(8)]


def test_runtime_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALENS_OCR_RUNTIME", "onnxruntime")
    engine = ocr.ocr_engine(limit_type="max", side=480)
    assert not isinstance(engine._load_det_model().session, ocr.OpenVinoDetSession)
    monkeypatch.delenv("CATALENS_OCR_RUNTIME")
    assert isinstance(ocr.ocr_engine(limit_type="max", side=480).text_det.session, ocr.OpenVinoDetSession)


@pytest.mark.parametrize(
    ("kwargs", "env", "message"),
    [
        ({"runtime": "tensorrt"}, {}, "unknown OCR runtime 'tensorrt'; known: auto, openvino, onnxruntime"),
        ({}, {"CATALENS_OCR_RUNTIME": "cuda"}, "unknown OCR runtime 'cuda'"),
        ({"precision": "int4"}, {}, "unknown OCR precision 'int4'; known: f32, native"),
        ({}, {"CATALENS_OCR_PRECISION": "fp8"}, "unknown OCR precision 'fp8'"),
    ],
)
def test_bad_runtime_or_precision(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, str], env: dict[str, str], message: str
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match=message):
        ocr.ocr_engine(limit_type="max", side=480, **kwargs)


def test_detector_file_not_found_names_the_way_out() -> None:
    class Session:  # a RapidOCR build whose detector session keeps no model path
        session = object()

    class Det:
        session = Session()

    class Engine:
        def _load_det_model(self) -> Det:
            return Det()

    with pytest.raises(ConfigError, match="use runtime 'onnxruntime'"):
        ocr._use_openvino_detector(Engine(), 1, "f32")
