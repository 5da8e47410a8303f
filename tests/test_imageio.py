"""Tests for catalens.imageio: the bad-input corpus, odd-but-valid images, draft mode, hashing."""

from __future__ import annotations

import io
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalens import errors, imageio
from catalens.imageio import (
    decode_image,
    open_image,
    pixel_hash,
    probe,
    read_bytes,
    sha256_bytes,
    sniff_format,
)

sys.path.insert(0, str(Path(__file__).parent))
from badcorpus import GOOD_SIZES, make_bad_corpus, make_good_corpus, png_with_size  # noqa: E402

KINDS = {
    cls.kind: cls
    for cls in (
        errors.EmptyFileError,
        errors.TruncatedImageError,
        errors.NotAnImageError,
        errors.DecompressionBombError,
        errors.BadDimensionsError,
        errors.UnsupportedFormatError,
    )
}


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    d = tmp_path_factory.mktemp("bad")
    return d, make_bad_corpus(d)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    d = tmp_path_factory.mktemp("good")
    return d, make_good_corpus(d)


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------- refusals


def test_bad_corpus_raises_typed_errors_naming_the_file(bad: tuple[Path, dict[str, str]]) -> None:
    d, expected = bad
    assert {"empty", "truncated", "not-an-image", "too-many-pixels", "bad-dimensions"} <= set(
        expected.values()
    )
    for name, kind in expected.items():
        with pytest.raises(KINDS[kind]) as info:
            open_image(d / name)
        assert info.value.kind == kind, name
        assert name in str(info.value), str(info.value)


def test_bad_corpus_probe_agrees_on_non_images_and_sizes(bad: tuple[Path, dict[str, str]]) -> None:
    d, expected = bad
    for name, kind in expected.items():
        if kind in ("not-an-image", "too-many-pixels", "bad-dimensions"):
            with pytest.raises(KINDS[kind]):
                probe((d / name).read_bytes(), name)


def test_messages_say_what_the_bytes_look_like(bad: tuple[Path, dict[str, str]]) -> None:
    d, _ = bad
    looks = {
        "doc.jpg": "PDF document",
        "fake.png": "HTML",
        "text.jpg": "text",
        "exe.png": "executable",
        "archive.jpg": "ZIP",
    }
    for name, words in looks.items():
        with pytest.raises(errors.NotAnImageError, match=words):
            open_image(d / name)


def test_truncated_jpeg_raises_without_global_flag() -> None:
    from PIL import ImageFile

    data = _encode(Image.new("RGB", (200, 150), "blue"), "JPEG")
    with pytest.raises(errors.TruncatedImageError, match="cut.jpg"):
        decode_image(data[: len(data) // 2], "cut.jpg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_bomb_is_refused_from_header_with_own_limit() -> None:
    data = _encode(Image.new("L", (300, 200)), "PNG")
    assert decode_image(data, "ok.png", max_pixels=60_000).width == 300
    with pytest.raises(errors.DecompressionBombError, match="small.png"):
        decode_image(data, "small.png", max_pixels=59_999)
    with pytest.raises(errors.DecompressionBombError, match="59,999"):
        probe(data, "small.png", max_pixels=59_999)
    # A huge JPEG header is caught before Pillow's own global check answers.
    big = bytearray(_encode(Image.new("RGB", (16, 16)), "JPEG"))
    i = big.index(b"\xff\xc0")
    big[i + 5 : i + 9] = (60000).to_bytes(2, "big") + (60000).to_bytes(2, "big")
    with pytest.raises(errors.DecompressionBombError, match="60000x60000"):
        decode_image(bytes(big), "huge.jpg")


def test_dimension_rules() -> None:
    with pytest.raises(errors.BadDimensionsError):
        decode_image(png_with_size(100, 0), "z.png")
    with pytest.raises(errors.BadDimensionsError, match="aspect"):
        decode_image(_encode(Image.new("RGB", (1, 101)), "PNG"), "thin.png")
    assert decode_image(_encode(Image.new("RGB", (1, 100)), "PNG"), "ok.png").height == 100
    with pytest.raises(errors.BadDimensionsError, match="side"):
        decode_image(_encode(Image.new("RGB", (300, 200)), "PNG"), "wide.png", max_side=299)


def test_read_bytes_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(errors.UnreadableError, match="does not exist"):
        read_bytes(tmp_path / "missing.jpg")
    with pytest.raises(errors.UnreadableError, match="directory"):
        read_bytes(tmp_path)
    (tmp_path / "e.jpg").write_bytes(b"")
    with pytest.raises(errors.EmptyFileError, match="e.jpg"):
        read_bytes(tmp_path / "e.jpg")
    (tmp_path / "big.bin").write_bytes(b"x" * 2000)
    with pytest.raises(errors.TooLargeError, match="big.bin"):
        read_bytes(tmp_path / "big.bin", max_bytes=1000)
    assert read_bytes(tmp_path / "big.bin", max_bytes=2000) == b"x" * 2000
    locked = tmp_path / "locked.jpg"
    locked.write_bytes(b"\xff\xd8\xff")
    locked.chmod(0)
    if not hasattr(os, "getuid") or os.getuid() == 0:  # root (CI) reads any file: deny it as for a user
        real_open = Path.open

        def denying_open(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
            if self == locked:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(Path, "open", denying_open)
    with pytest.raises(errors.UnreadableError, match="permission"):
        read_bytes(locked)


def test_unsupported_formats() -> None:
    ico = _encode(Image.new("RGB", (16, 16)), "ICO")
    with pytest.raises(errors.UnsupportedFormatError, match="ICO"):
        decode_image(ico, "favicon.png")
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
    with pytest.raises(errors.UnsupportedFormatError, match="SVG"):
        decode_image(svg, "logo.svg")
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    assert sniff_format(heic) == "HEIF"
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        with pytest.raises(errors.UnsupportedFormatError, match="pip install pillow-heif"):
            decode_image(heic, "photo.heic")


def test_sniff_format() -> None:
    assert sniff_format(_encode(Image.new("RGB", (4, 4)), "JPEG")) == "JPEG"
    assert sniff_format(_encode(Image.new("RGB", (4, 4)), "PNG")) == "PNG"
    assert sniff_format(_encode(Image.new("RGB", (4, 4)), "GIF")) == "GIF"
    assert sniff_format(_encode(Image.new("RGB", (4, 4)), "WEBP")) == "WEBP"
    assert sniff_format(_encode(Image.new("RGB", (4, 4)), "BMP")) == "BMP"
    assert sniff_format(_encode(Image.new("RGB", (4, 4)), "TIFF")) == "TIFF"
    assert sniff_format(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf") == "AVIF"
    assert sniff_format(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00isommp42") is None
    assert sniff_format(b"BM is not a bitmap, just text") is None
    assert sniff_format(b"") is None


# ------------------------------------------------------------------------------------------- good files


def test_good_corpus_decodes_to_rgb_with_right_size(good: tuple[Path, list[str]]) -> None:
    d, names = good
    assert {"cmyk.jpg", "gray16.png", "rgba.png", "exif_rotated.jpg", "big.jpg"} <= set(names)
    for name in names:
        dec = open_image(d / name)
        assert dec.image.mode == "RGB", name
        assert (dec.width, dec.height) == GOOD_SIZES[name], name
        assert dec.image.size == GOOD_SIZES[name], name
        assert dec.scale == 1
        assert probe((d / name).read_bytes(), name) == (dec.format, dec.width, dec.height)


def test_formats_and_modes_reported(good: tuple[Path, list[str]]) -> None:
    d, _ = good
    expect = {
        "cmyk.jpg": ("JPEG", "CMYK"),
        "gray16.png": ("PNG", "I;16"),
        "palette_alpha.png": ("PNG", "P"),
        "rgba.png": ("PNG", "RGBA"),
        "la.png": ("PNG", "LA"),
        "animated.gif": ("GIF", "P"),
        "image.webp": ("WEBP", "RGB"),
        "image.bmp": ("BMP", "RGB"),
        "image.tiff": ("TIFF", "RGB"),
        "png_named.jpg": ("PNG", "RGB"),
    }
    for name, (fmt, mode) in expect.items():
        dec = open_image(d / name)
        assert (dec.format, dec.mode) == (fmt, mode), name


def test_alpha_becomes_white(good: tuple[Path, list[str]]) -> None:
    d, _ = good
    rgba = np.asarray(open_image(d / "rgba.png").image)
    assert (rgba[:, :25] == 255).all()  # transparent black -> white
    assert tuple(rgba[0, 30]) == (0, 0, 255)
    pal = np.asarray(open_image(d / "palette_alpha.png").image)
    assert (pal[:, :20] == 255).all()
    assert tuple(pal[0, 30]) == (255, 0, 0)
    la = np.asarray(open_image(d / "la.png").image)
    assert (la[:, :15] == 255).all()
    assert (la[:, 15:] == 0).all()


def test_16bit_gray_is_scaled_not_clipped(good: tuple[Path, list[str]]) -> None:
    d, _ = good
    arr = np.asarray(open_image(d / "gray16.png").image).astype(int)
    assert arr.min() < 20 and arr.max() > 240
    assert 100 < arr.mean() < 160  # the ramp 1000..65000 maps to ~4..253
    assert (np.diff(arr[:, :, 0].ravel()) >= 0).all()  # still a ramp


def test_float_and_int32_modes() -> None:
    f = Image.fromarray(np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10))
    out = np.asarray(decode_image(_encode(f, "TIFF"), "f.tiff").image)
    assert out.min() == 0 and out.max() == 255
    i = Image.fromarray(np.arange(100, dtype=np.int32).reshape(10, 10) * 600)
    out = np.asarray(decode_image(_encode(i, "TIFF"), "i.tiff").image)
    assert out.max() > 200 and out.min() == 0


def test_exif_rotation_applied(good: tuple[Path, list[str]]) -> None:
    d, _ = good
    dec = open_image(d / "exif_rotated.jpg")
    assert (dec.width, dec.height) == (60, 100)
    arr = np.asarray(dec.image).astype(int)
    # Rotating 90 degrees clockwise moves the stored top-left red block to the top-right.
    assert arr[5, 55, 0] > 200 and arr[5, 55, 1] < 60
    assert arr[5, 5, 0] < 60 and arr[5, 5, 1] > 150


def test_cmyk_colours_survive(good: tuple[Path, list[str]]) -> None:
    d, _ = good
    ref = np.asarray(Image.open(d / "cmyk.jpg").convert("RGB")).astype(int)
    out = np.asarray(open_image(d / "cmyk.jpg").image).astype(int)
    assert np.abs(out - ref).mean() < 3  # no ICC profile: plain conversion


def test_animated_gif_first_frame(good: tuple[Path, list[str]]) -> None:
    d, _ = good
    arr = np.asarray(open_image(d / "animated.gif").image)
    assert (arr == (255, 0, 0)).all()


def test_draft_mode_on_big_jpeg(good: tuple[Path, list[str]]) -> None:
    d, _ = good
    data = (d / "big.jpg").read_bytes()
    full = decode_image(data, "big.jpg")
    small = decode_image(data, "big.jpg", draft_to=224)
    assert small.scale == 8 and small.image.size == (250, 375)
    assert (small.width, small.height) == (2000, 3000) == full.image.size
    assert min(decode_image(data, "big.jpg", draft_to=600).image.size) >= 600
    assert decode_image(data, "big.jpg", draft_to=600).scale == 2
    assert decode_image(data, "big.jpg", draft_to=1001).scale == 1  # shorter side < 2 * 1001

    def best(**kw: object) -> float:
        times = []
        for _ in range(5):
            t = time.perf_counter()
            decode_image(data, "big.jpg", **kw)  # type: ignore[arg-type]
            times.append(time.perf_counter() - t)
        return min(times)

    # 1/64 of the pixels: typically ~10x faster; a loose bound so that a busy machine cannot fail it.
    assert best(draft_to=224) < best() / 1.5
    # Non-JPEG images are never drafted.
    png = _encode(Image.new("RGB", (1000, 1000)), "PNG")
    assert decode_image(png, "p.png", draft_to=100).scale == 1


def test_pixel_hash_is_format_independent(good: tuple[Path, list[str]]) -> None:
    d, _ = good
    img = open_image(d / "image.bmp").image
    as_png = decode_image(_encode(img, "PNG"), "a.png").image
    as_bmp = decode_image(_encode(img, "BMP"), "a.bmp").image
    assert pixel_hash(as_png) == pixel_hash(as_bmp) == pixel_hash(img)
    assert pixel_hash(img) != pixel_hash(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    assert pixel_hash(Image.new("RGB", (2, 3))) != pixel_hash(Image.new("RGB", (3, 2)))
    assert sha256_bytes(b"abc").startswith("ba7816bf")


def test_thread_pool_decoding(good: tuple[Path, list[str]]) -> None:
    d, names = good
    paths = [d / n for n in names if n != "big.jpg"] * 8
    with ThreadPoolExecutor(8) as pool:
        hashes = list(pool.map(lambda p: (p.name, pixel_hash(open_image(p).image)), paths))
    by_name: dict[str, set[str]] = {}
    for name, h in hashes:
        by_name.setdefault(name, set()).add(h)
    assert all(len(v) == 1 for v in by_name.values())


def test_small_jpeg_is_fast() -> None:
    data = _encode(Image.new("RGB", (225, 300), "green"), "JPEG", quality=90)
    decode_image(data, "warm.jpg")
    t = time.perf_counter()
    for _ in range(50):
        decode_image(data, "x.jpg")
    assert (time.perf_counter() - t) / 50 < 0.01  # ~1 ms typically; generous for slow CI


def test_module_names() -> None:
    assert imageio.DecodedImage.__dataclass_fields__.keys() >= {
        "image",
        "width",
        "height",
        "format",
        "mode",
        "scale",
    }


def test_pixel_hash_of_bands_equals_the_whole_image_hash() -> None:
    """pixel_hash hashes bands of rows (bounded memory): the same digest as hashing tobytes() at once."""
    import hashlib

    import numpy as np
    from PIL import Image

    from catalens.imageio import pixel_hash

    rng = np.random.default_rng(0)
    for w, h, mode in ((1, 1, "RGB"), (5000, 700, "RGB"), (2100, 1999, "RGBA"), (333, 4099, "L")):
        shape = (h, w) if mode == "L" else (h, w, len(mode))
        img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
        rgb = img.convert("RGB")
        want = hashlib.sha256(f"{w}x{h}:".encode())
        want.update(rgb.tobytes())
        assert pixel_hash(img) == want.hexdigest()
