"""Fuzz targets shared by the suite's short Hypothesis runs (tests/test_fuzz.py) and the long budget
(bench/fuzz.py): each feeds untrusted input to one parser and lets only typed catalens errors out.
Anything else (a crash, a bare ValueError, a hang caught by the caller's deadline) is a finding."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from catalens.errors import CatalensError

MAX_PIXELS = 4_000_000
MAX_SIDE = 4_000


def seeds() -> list[bytes]:
    """Small real JPEG, PNG, WebP, GIF and TIFF files (plus a progressive JPEG, a palette PNG with
    transparency, an animated GIF and a 16-bit TIFF) written by Pillow."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    out = []
    for fmt, kw, img in [
        ("JPEG", {"quality": 80}, rgb),
        ("JPEG", {"progressive": True}, rgb),
        ("PNG", {}, rgb),
        ("PNG", {"transparency": 0}, rgb.convert("P")),
        ("WEBP", {"quality": 60}, rgb),
        ("GIF", {}, rgb.convert("P")),
        ("GIF", {"save_all": True, "append_images": [rgb.convert("P")]}, rgb.convert("P")),
        ("TIFF", {}, rgb),
        ("TIFF", {}, Image.fromarray(rng.integers(0, 65535, (16, 16), dtype=np.uint16))),
    ]:
        buf = io.BytesIO()
        img.save(buf, format=fmt, **kw)
        out.append(buf.getvalue())
    return out


def decode(data: bytes) -> None:
    from catalens.imageio import decode_image

    try:
        img = decode_image(data, "fuzz", max_pixels=MAX_PIXELS, max_side=MAX_SIDE, draft_to=16)
    except CatalensError:
        return
    assert img.image.mode == "RGB" and img.image.size[0] > 0 and img.image.size[1] > 0


def where(text: str) -> None:
    from catalens.search.filters import parse_where

    try:
        flt = parse_where(text)
    except CatalensError:
        return
    flt.matches({"id": "1", "title": "t", "colour": "red", "year": 2012, "tags": ["a", "b"]})


def manifest(data: bytes, suffix: str) -> None:
    from catalens.ingest.sources import ManifestColumns, iter_source

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"m{suffix}"
        path.write_bytes(data)
        try:
            for _ in iter_source(path, ManifestColumns()):
                pass
        except CatalensError:
            return


def profile_yaml(text: str) -> None:
    from catalens.quality.profiles import load_profile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "p.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_profile(str(path))
        except CatalensError:
            return


def taxonomy_yaml(text: str) -> None:
    from catalens.classify.taxonomy import load_taxonomy

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_taxonomy(path)
        except CatalensError:
            return
