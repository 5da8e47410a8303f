"""Generate corpora of bad and good (odd-mode) image files for tests.

``make_bad_corpus(dir)`` -> {file name: expected error ``kind``} (see :mod:`catalens.errors`).
``make_good_corpus(dir)`` -> [file names] that must decode to RGB; ``GOOD_SIZES`` gives each one's
expected (width, height) after EXIF orientation.
Everything is deterministic (fixed seeds) and small, except big.jpg (2000x3000) for draft tests.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# Expected (width, height) of each good file after EXIF orientation.
GOOD_SIZES: dict[str, tuple[int, int]] = {
    "cmyk.jpg": (64, 48),
    "gray16.png": (80, 60),
    "palette_alpha.png": (40, 30),
    "rgba.png": (50, 40),
    "la.png": (30, 20),
    "exif_rotated.jpg": (60, 100),  # stored 100x60, orientation 6
    "animated.gif": (32, 24),
    "image.webp": (70, 50),
    "image.bmp": (33, 17),
    "image.tiff": (45, 35),
    "tiny.png": (1, 1),
    "big.jpg": (2000, 3000),
    "png_named.jpg": (25, 35),  # a PNG with a .jpg extension: format must be "PNG"
}


def _photo(w: int, h: int, seed: int = 0) -> Image.Image:
    """A smooth gradient with a little noise: compresses like a photo, not like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack(
        [x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 127 // max(w + h - 2, 1)], -1
    )
    arr = arr + rng.integers(-8, 9, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_with_size(width: int, height: int) -> bytes:
    """A tiny real PNG whose IHDR is patched to claim ``width`` x ``height`` (CRC fixed)."""
    data = bytearray(_encode(Image.new("L", (1, 1)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def make_bad_corpus(directory: Path) -> dict[str, str]:
    """Write bad inputs into ``directory``; return {file name: expected error kind}."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    jpeg = _encode(_photo(225, 300), "JPEG", quality=90)
    png = _encode(_photo(120, 90, seed=1), "PNG")
    files: dict[str, tuple[bytes, str]] = {
        "empty.jpg": (b"", "empty"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "truncated.png": (png[: len(png) // 2], "truncated"),
        "header_only.png": (png[:20], "truncated"),
        "text.jpg": (b"This is not a picture.\nJust some plain text in a file.\n" * 4, "not-an-image"),
        "fake.png": (
            b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>"
            b"<body><h1>Not Found</h1></body></html>\n",
            "not-an-image",
        ),
        "doc.jpg": (
            b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
            b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
            "not-an-image",
        ),
        "exe.png": (b"\x7fELF\x02\x01\x01\x00" + bytes(8) + rng.bytes(500), "not-an-image"),
        "random.webp": (rng.bytes(4096), "not-an-image"),
        "archive.jpg": (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + rng.bytes(200), "not-an-image"),
        "bomb.png": (png_with_size(30_000, 30_000), "too-many-pixels"),
        "zero_width.png": (png_with_size(0, 100), "bad-dimensions"),
        "strip.png": (_encode(Image.new("RGB", (1010, 10), "red"), "PNG"), "bad-dimensions"),
    }
    for name, (data, _) in files.items():
        (d / name).write_bytes(data)
    return {name: kind for name, (_, kind) in files.items()}


def make_good_corpus(directory: Path) -> list[str]:
    """Write odd-but-valid images into ``directory``; return their file names (see GOOD_SIZES)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)

    _photo(64, 48).convert("CMYK").save(d / "cmyk.jpg", "JPEG", quality=90)

    # 16-bit grayscale ramp, mostly above 255: clipping would make it all white.
    ramp = np.linspace(1000, 65000, 80 * 60).reshape(60, 80).astype(np.uint16)
    Image.fromarray(ramp).save(d / "gray16.png")

    pal = Image.new("P", (40, 30), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    pal.paste(1, (20, 0, 40, 30))  # right half red, left half index 0 = transparent
    pal.save(d / "palette_alpha.png", transparency=0)

    rgba = Image.new("RGBA", (50, 40), (0, 0, 0, 0))  # transparent black must become white
    rgba.paste((0, 0, 255, 255), (25, 0, 50, 40))
    rgba.save(d / "rgba.png")

    la = Image.new("LA", (30, 20), (0, 0))
    la.paste((0, 255), (15, 0, 30, 20))
    la.save(d / "la.png")

    # Stored 100 wide x 60 high with a red top-left corner; orientation 6 = rotate 90 clockwise.
    rot = Image.new("RGB", (100, 60), (0, 200, 0))
    rot.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    rot.save(d / "exif_rotated.jpg", "JPEG", quality=95, exif=exif)

    frames = [Image.new("RGB", (32, 24), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(d / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)

    _photo(70, 50, seed=2).save(d / "image.webp", "WEBP", quality=90)
    _photo(33, 17, seed=3).save(d / "image.bmp", "BMP")
    _photo(45, 35, seed=4).save(d / "image.tiff", "TIFF", compression="tiff_lzw")
    Image.new("RGB", (1, 1), (10, 20, 30)).save(d / "tiny.png")
    _photo(2000, 3000, seed=5).save(d / "big.jpg", "JPEG", quality=85)
    (d / "png_named.jpg").write_bytes(_encode(_photo(25, 35, seed=6), "PNG"))
    return list(GOOD_SIZES)
