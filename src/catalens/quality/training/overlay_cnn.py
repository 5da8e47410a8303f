"""Train the packaged see-through overlay (watermark) detector from folders of clean photos.

Each photo gives three examples, JPEG-encoded at a random quality after an optional downscale: the
photo itself and an opaque print near its middle (negatives: a print hides what is under it), and a
semi-transparent mark (positive; :mod:`catalens.quality.training.synth_marks`). The frozen Lite0 front to
stage 4 turns each into a 112-channel map once; :mod:`catalens.quality.training.cnn_fit` fits the head,
picks the threshold on held-out photos, refits and exports ``overlay.onnx`` + ``overlay.json``:

    python -m catalens.quality.training.overlay_cnn IMAGE_DIR [IMAGE_DIR ...] --out DIR [--exclude STEMS.txt]

``--cache FILE.npz`` keeps the maps so a re-fit does not recompute them. 6,155 photos take about
12.5 minutes to map and 7 to fit (16 epochs, twice: held-out, then all photos) on two cores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from catalens.quality.cnn_models import NETS
from catalens.quality.training.cnn_fit import cli, jpeg_roundtrip
from catalens.quality.training.synth_marks import fonts, opaque_print, see_through_mark

SPEC = NETS["overlay"]
JPEG_QUALITY = (70, 96)
MAX_DECODE = 1400


def examples_from(path: Path, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """("clean" | "mark" | "print", image) for the untouched photo, a marked and a printed copy."""
    from PIL import Image

    faces = fonts()
    with Image.open(path) as im:
        im.draft("RGB", (MAX_DECODE, MAX_DECODE))
        img = im.convert("RGB")
    if rng.random() < 0.5:
        k = rng.uniform(0.5, 1.0)
        img = img.resize((max(40, int(img.width * k)), max(40, int(img.height * k))), Image.BICUBIC)
    marked, _ = see_through_mark(img, rng, faces)
    printed = opaque_print(img, rng, faces)
    return [
        (kind, jpeg_roundtrip(np.asarray(x), int(rng.integers(*JPEG_QUALITY))))
        for kind, x in zip(("clean", "mark", "print"), (img, marked, printed), strict=True)
    ]


def main(argv: Sequence[str] | None = None) -> None:
    cli(
        SPEC,
        examples_from,
        positive="mark",
        task="a semi-transparent overlay (watermark) on the photo vs none or an opaque print",
        doc=__doc__,
        module="catalens.quality.training.overlay_cnn",
        photos="photos without marks",
        epochs=16,
        argv=argv,
    )


if __name__ == "__main__":
    main()
