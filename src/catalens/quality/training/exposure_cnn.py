"""Train the packaged over-exposure CNN (``quality/data/exposure.onnx``) from folders of correctly
exposed photos. It sees the same examples as the tonal tree model (:mod:`exposure_trees`): each
photo gives itself and a -1/+0.5/+1 EV change (negatives) and a +1.5..+3.5 EV copy (positive),
changed in linear light with clipping, rescaled, JPEG-encoded and decoded as the quality checks
decode a photo; the frozen Lite0 front to stage 2 still sees absolute tones, and the head learns
where the highlights are blown and what a lifted black looks like
(:mod:`catalens.quality.training.cnn_fit` does the rest).

    python -m catalens.quality.training.exposure_cnn IMAGE_DIR [IMAGE_DIR ...] --out DIR [--exclude STEMS.txt]
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from catalens.quality.cnn_models import NETS
from catalens.quality.context import QCImage
from catalens.quality.training.cnn_fit import cli
from catalens.quality.training.exposure_trees import (
    JPEG_QUALITY,
    MAX_LONG_SIDE,
    MILD_EV,
    MIN_LONG_SIDE,
    POSITIVE_EV,
    SCALES,
    change_exposure,
)

SPEC = NETS["exposure"]


def examples_from(path: Path, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """("clean" | "mild" | "over", the QC working copy) for one photo."""
    from PIL import Image

    with Image.open(path) as im:
        img = im.convert("RGB")
    scale = float(rng.choice(SCALES))
    scale = min(max(scale, MIN_LONG_SIDE / max(img.size)), MAX_LONG_SIDE / max(img.size))
    if abs(scale - 1.0) > 0.01:
        img = img.resize(
            (max(16, round(img.width * scale)), max(16, round(img.height * scale))), Image.LANCZOS
        )
    arr = np.asarray(img)
    out = []
    for kind, ev in (
        ("clean", 0.0),
        ("mild", float(rng.choice(MILD_EV))),
        ("over", float(rng.choice(POSITIVE_EV))),
    ):
        changed = arr if ev == 0.0 else change_exposure(arr, ev)
        buf = io.BytesIO()
        Image.fromarray(changed).save(buf, "JPEG", quality=int(rng.choice(JPEG_QUALITY)))
        qc = QCImage.from_bytes(buf.getvalue(), str(path))
        if qc.decoded is None:
            raise ValueError(f"could not decode a copy of {path}")
        out.append((kind, np.asarray(qc.decoded.image.convert("RGB"))))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    cli(
        SPEC,
        examples_from,
        positive="over",
        task="over-exposed (>= +1.5 EV) vs correctly exposed photo",
        doc=__doc__,
        module="catalens.quality.training.exposure_cnn",
        photos="correctly exposed photos",
        epochs=8,
        argv=argv,
    )


if __name__ == "__main__":
    main()
