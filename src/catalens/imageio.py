"""The one place catalens opens images: read, sniff, check, decode and normalise to RGB.

Accepted (identified by magic bytes, never by file extension):
    JPEG (incl. MPO camera files, reported as "JPEG"), PNG (APNG: first frame), GIF (first
    frame), WebP (animated: first frame), BMP, TIFF (first page); AVIF when Pillow has AVIF
    support (Pillow >= 11.3 wheels) or pillow-heif provides it; HEIC/HEIF when ``pillow-heif``
    is installed (its opener is registered lazily, once, on the first HEIF file).

Refused with a typed :mod:`catalens.errors` error whose message names the source:
    * ``EmptyFileError``          0 bytes.
    * ``TooLargeError``           file over ``max_bytes`` (:func:`read_bytes`).
    * ``UnreadableError``         missing, a directory / device / FIFO, permission denied.
    * ``NotAnImageError``         text, HTML, JSON, XML, PDF, executables (ELF, PE, Mach-O),
                                  archives, audio/video, random bytes - whatever the extension.
                                  The message says what the bytes look like.
    * ``UnsupportedFormatError``  real image formats we do not accept: ICO/CUR, PSD, SVG,
                                  JPEG 2000, JPEG XL, DDS, QOI, EXR, netpbm, ...; HEIC/AVIF
                                  without a plugin (the message says ``pip install pillow-heif``);
                                  exotic colour modes Pillow cannot convert to RGB.
    * ``TruncatedImageError``     truncated or otherwise damaged image data (header or pixels).
    * ``DecompressionBombError``  ``width * height > max_pixels``, checked from the header
                                  before any pixel is decoded (Pillow's own bomb errors and
                                  warnings are mapped to it too).
    * ``BadDimensionsError``      a side < 1 or > ``max_side``, or an aspect ratio over 100:1.

Normalisation (:func:`decode_image`): EXIF orientation applied; CMYK -> sRGB (through the
embedded ICC profile when there is one, else Pillow's conversion); 16/32-bit integer and float
grayscale rescaled to 8 bit (not clipped); alpha (RGBA, LA, PA, palette/L/RGB with a
transparency key) composited onto white. The result is always mode "RGB".

JPEG draft: with ``draft_to=N`` a JPEG whose shorter side is >= 2N is DCT-scaled by the largest
power of two (<= 8) that keeps the shorter side >= N; ``DecodedImage.scale`` says which, while
``width``/``height`` still give the full-resolution size after orientation.

Thread safety: no per-call global state is touched (``ImageFile.LOAD_TRUNCATED_IMAGES`` and
``Image.MAX_IMAGE_PIXELS`` are left alone); the only global change is the one-time, locked
registration of the pillow-heif opener. Note that Pillow still applies its own global bomb
check on open, so ``max_pixels`` above ``2 * Image.MAX_IMAGE_PIXELS`` is effectively capped there.
"""

from __future__ import annotations

import hashlib
import io
import stat
import struct
import threading
import zlib
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, JpegImagePlugin, UnidentifiedImageError, features

from catalens.config import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS
from catalens.errors import (
    BadDimensionsError,
    DecompressionBombError,
    EmptyFileError,
    NotAnImageError,
    TooLargeError,
    TruncatedImageError,
    UnreadableError,
    UnsupportedFormatError,
)

__all__ = [
    "ACCEPTED_FORMATS",
    "DEFAULT_MAX_SIDE",
    "MAX_ASPECT",
    "DecodedImage",
    "decode_image",
    "open_image",
    "pixel_hash",
    "probe",
    "read_bytes",
    "sha256_bytes",
    "sniff_format",
]

ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "HEIF", "AVIF")
DEFAULT_MAX_SIDE = 50_000
MAX_ASPECT = 100
WHITE = (255, 255, 255)

# Everything Pillow may raise while parsing a header or decoding damaged data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error, zlib.error)


@dataclass
class DecodedImage:
    """A decoded, normalised image plus facts about the original file."""

    image: Image.Image  # always mode "RGB", EXIF orientation applied, alpha composited onto white
    width: int  # original full-resolution width after orientation (not the draft size)
    height: int
    format: str  # Pillow format name: "JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF"
    mode: str  # original Pillow mode before conversion, e.g. "CMYK", "I;16", "P", "RGBA"
    scale: int = 1  # JPEG draft reduction factor actually used (1 = full decode)


# ---------------------------------------------------------------------------------------------- hashing


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of raw bytes (the file-identity hash)."""
    return hashlib.sha256(data).hexdigest()


def pixel_hash(img: Image.Image) -> str:
    """Hex SHA-256 of the RGB pixels and size: the same pixels give the same hash in any format."""
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    h = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    # bands of rows, not one tobytes() copy of the whole image (50 MB more at 16 MP per ingest
    # thread); the bytes hashed, in order, are the same
    band = max(1, (4 << 20) // max(1, 3 * rgb.width))
    for top in range(0, rgb.height, band):
        h.update(rgb.crop((0, top, rgb.width, min(rgb.height, top + band))).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- reading


def _human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def read_bytes(path: str | Path, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
    """Read a whole image file, refusing missing / special / empty / oversized files."""
    p = Path(path)
    src = str(path)
    try:
        st = p.stat()
        if stat.S_ISDIR(st.st_mode):
            raise UnreadableError(src, "is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableError(src, "is not a regular file (device, FIFO or socket)")
        if st.st_size == 0:
            raise EmptyFileError(src, "file is empty (0 bytes)")
        if st.st_size > max_bytes:
            raise TooLargeError(src, f"file is {_human(st.st_size)}, over the {_human(max_bytes)} limit")
        with p.open("rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise UnreadableError(src, "file does not exist") from None
    except PermissionError:
        raise UnreadableError(src, "permission denied") from None
    except IsADirectoryError:
        raise UnreadableError(src, "is a directory, not a file") from None
    except OSError as exc:
        raise UnreadableError(src, f"cannot read file ({exc.strerror or exc})") from exc
    if not data:
        raise EmptyFileError(src, "file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise TooLargeError(src, f"file is over the {_human(max_bytes)} limit")
    return data


# ---------------------------------------------------------------------------------------------- sniffing

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_AVIF_BRANDS = {b"avif", b"avis"}
_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}


def _ftyp_brands(data: bytes) -> list[bytes]:
    """Major + compatible brands of an ISO-BMFF ``ftyp`` box, [] if there is none."""
    if len(data) < 12 or data[4:8] != b"ftyp":
        return []
    size = min(int.from_bytes(data[:4], "big"), len(data), 256)
    brands = [data[8:12]]
    brands += [data[i : i + 4] for i in range(16, size - 3, 4)]
    return brands


def sniff_format(data: bytes) -> str | None:
    """Accepted image format from the magic bytes ("JPEG", "PNG", ... "AVIF"), else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:2] == b"BM" and len(data) >= 18 and int.from_bytes(data[14:18], "little") in _BMP_HEADER_SIZES:
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    brands = _ftyp_brands(data)
    if brands:
        if brands[0] in _AVIF_BRANDS:
            return "AVIF"
        if brands[0] in _HEIF_BRANDS:
            return "HEIF"
        if brands[0] in (b"mif1", b"msf1"):
            rest = set(brands[1:])
            if rest & _HEIF_BRANDS:
                return "HEIF"
            if rest & _AVIF_BRANDS:
                return "AVIF"
            return "HEIF"
    return None


# Real image formats we do not accept -> UnsupportedFormatError.
_OTHER_IMAGES: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\x01\x00", "an ICO icon"),
    (b"\x00\x00\x02\x00", "a CUR cursor"),
    (b"8BPS", "a Photoshop PSD document"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "a JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream"),
    (b"\xff\x0a", "a JPEG XL image"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "a JPEG XL image"),
    (b"DDS ", "a DirectDraw DDS texture"),
    (b"qoif", "a QOI image"),
    (b"v/1\x01", "an OpenEXR image"),
    (b"icns", "an Apple ICNS icon"),
    (b"gimp xcf", "a GIMP XCF document"),
    (b"#?RADIANCE", "a Radiance HDR image"),
    (b"farbfeld", "a farbfeld image"),
)

# Things that are not images at all -> NotAnImageError.
_NOT_IMAGES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"%!PS", "a PostScript document"),
    (b"\x7fELF", "an ELF executable"),
    (b"MZ", "a Windows executable (EXE/DLL)"),
    (b"\xca\xfe\xba\xbe", "a Mach-O executable or Java class"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable"),
    (b"\x00asm", "a WebAssembly module"),
    (b"PK\x03\x04", "a ZIP archive (or an Office/EPUB document)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"(\xb5/\xfd", "a zstd archive"),
    (b"7z\xbc\xaf'\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Microsoft Office document"),
    (b"OggS", "an Ogg audio/video file"),
    (b"fLaC", "a FLAC audio file"),
    (b"ID3", "an MP3 audio file"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM video"),
    (b"FLV", "a Flash video"),
    (b"\x93NUMPY", "a NumPy array file"),
    (b"PAR1", "a Parquet file"),
    (b"ARROW1", "an Arrow file"),
)


def _looks_like_text(head: bytes) -> bool:
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return True
    if b"\x00" in head:
        return False
    for cut in range(4):  # the sample may end in the middle of a UTF-8 character
        try:
            head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        break
    else:
        return False
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return controls <= len(head) // 100


def _describe_text(head: bytes) -> tuple[str, bool]:
    """(what the text looks like, whether it is an image format we merely do not accept)."""
    text = head.decode("utf-8", "ignore").lstrip("\ufeff \t\r\n").lower()
    if text.startswith("data:image/"):
        return "a base64 data: URL (text); decode it to image bytes first", False
    if "<svg" in text[:2048]:
        return "an SVG vector image; rasterise it (e.g. to PNG) first", True
    if text.startswith(("<!doctype html", "<html", "<head", "<body")) or "<html" in text[:1024]:
        return "an HTML page", False
    if text.startswith("<?xml") or text.startswith("<"):
        return "an XML document", False
    if text.startswith(("{", "[")):
        return "JSON text", False
    if text.startswith("#!"):
        return "a script", False
    return "plain text", False


def _refuse_unknown(data: bytes, source: str) -> None:
    """Raise the right error for bytes that are not an accepted image format."""
    head = data[:4096]
    for magic, what in _OTHER_IMAGES:
        if head.startswith(magic):
            raise UnsupportedFormatError(source, f"is {what}, which catalens does not accept")
    if head[:1] == b"P" and head[1:2] in b"1234567" and head[2:3] in (b" ", b"\n", b"\r", b"\t"):
        raise UnsupportedFormatError(
            source, "is a netpbm (PNM/PPM/PGM) image, which catalens does not accept"
        )
    for magic, what in _NOT_IMAGES:
        if head.startswith(magic):
            raise NotAnImageError(source, f"looks like {what}, not an image")
    brands = _ftyp_brands(head)
    if brands:
        raise NotAnImageError(
            source, f"looks like an MP4/QuickTime video (brand {brands[0]!r}), not an image"
        )
    if head[:4] == b"RIFF":
        raise NotAnImageError(source, f"looks like a RIFF {head[8:12]!r} audio/video file, not an image")
    if _looks_like_text(head):
        what, is_image = _describe_text(head)
        if is_image:
            raise UnsupportedFormatError(source, f"is {what}")
        raise NotAnImageError(source, f"looks like {what}, not an image")
    raise NotAnImageError(source, "is not a recognised image format (unrecognised binary data)")


# ---------------------------------------------------------------------------------------------- plugins

_heif_lock = threading.Lock()
_heif_state: list[bool] = []  # [] = not tried yet, [True]/[False] = registered or not


def _heif_registered() -> bool:
    """Register pillow-heif's opener once (thread-safe); False when it is not installed."""
    if not _heif_state:
        with _heif_lock:
            if not _heif_state:
                try:
                    import pillow_heif  # type: ignore[import-not-found]

                    pillow_heif.register_heif_opener()
                    ok = True
                except Exception:  # not installed or broken: HEIC is then unsupported
                    ok = False
                _heif_state.append(ok)
    return _heif_state[0]


@cache
def _pillow_has(feature: str) -> bool:
    try:
        return bool(features.check(feature))
    except Exception:
        return False


def _ensure_plugin(fmt: str, source: str) -> None:
    if fmt == "WEBP" and not _pillow_has("webp"):
        raise UnsupportedFormatError(source, "is a WebP image but this Pillow build lacks WebP support")
    if fmt == "HEIF" and not _heif_registered():
        raise UnsupportedFormatError(
            source, "is a HEIC/HEIF image; install the optional plugin to read it: pip install pillow-heif"
        )
    if fmt == "AVIF" and not _pillow_has("avif"):
        if not (_heif_registered() and "AVIF" in Image.OPEN):
            raise UnsupportedFormatError(
                source,
                "is an AVIF image but this Pillow lacks AVIF support; upgrade Pillow (>= 11.3) "
                "or pip install pillow-heif",
            )


# ---------------------------------------------------------------------------------------------- opening


def _header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(width, height) parsed straight from a PNG/GIF/BMP/JPEG header, None if unknown.

    Lets us refuse bombs and 0-pixel sides with our own limits and words before Pillow (whose
    global bomb check and header validation would otherwise answer first) sees the file."""
    try:
        if fmt == "PNG" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if fmt == "GIF":
            return struct.unpack("<HH", data[6:10])
        if fmt == "BMP":
            if int.from_bytes(data[14:18], "little") == 12:
                return struct.unpack("<HH", data[18:22])
            w, h = struct.unpack("<ii", data[18:26])
            return w, abs(h)
        if fmt == "JPEG":
            i = 2
            while i + 9 <= len(data) and data[i] == 0xFF:
                marker = data[i + 1]
                if marker == 0xFF:  # fill byte
                    i += 1
                elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
                    i += 2
                elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn
                    h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                    return w, h
                else:
                    i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    except struct.error:
        pass
    return None


def _open(data: bytes, source: str, max_pixels: int, max_side: int) -> tuple[Image.Image, str]:
    """Open the header only: identify, refuse non-images and bad sizes, return the lazy image."""
    if not data:
        raise EmptyFileError(source, "file is empty (0 bytes)")
    fmt = sniff_format(data)
    if fmt is None:
        _refuse_unknown(data, source)
        raise AssertionError("unreachable")
    _ensure_plugin(fmt, source)
    dims = _header_size(data, fmt)
    if dims is not None:
        _check_dims(source, dims[0], dims[1], max_pixels, max_side)
    try:
        img = Image.open(io.BytesIO(data), formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The Warning is only raised when warnings are turned into errors.
        raise DecompressionBombError(
            source, f"too many pixels, possible decompression bomb ({exc})"
        ) from None
    except UnidentifiedImageError:
        raise TruncatedImageError(
            source, f"starts like a {fmt} image but its header is truncated or damaged"
        ) from None
    except _DECODE_ERRORS as exc:
        raise TruncatedImageError(source, f"{fmt} header is truncated or damaged ({exc})") from None
    _check_dims(source, img.width, img.height, max_pixels, max_side)
    return img, fmt


def _check_dims(source: str, w: int, h: int, max_pixels: int, max_side: int) -> None:
    if w < 1 or h < 1:
        raise BadDimensionsError(source, f"image is {w}x{h}; a side of 0 pixels is not an image")
    if w * h > max_pixels:
        raise DecompressionBombError(
            source,
            f"image is {w}x{h} = {w * h:,} pixels, over the {max_pixels:,} pixel limit "
            "(possible decompression bomb)",
        )
    if max(w, h) > max_side:
        raise BadDimensionsError(source, f"image is {w}x{h}; a side is over the {max_side:,} pixel limit")
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise BadDimensionsError(
            source, f"image is {w}x{h}; its aspect ratio is over {MAX_ASPECT}:1 (a strip, not a photo)"
        )


def _orientation(img: Image.Image, fmt: str, *, header_only: bool) -> int:
    """EXIF orientation 1..8 (1 = as stored). ``header_only`` never triggers a pixel load."""
    if fmt in ("JPEG", "WEBP", "PNG") and "exif" not in img.info:
        if fmt != "PNG" or header_only:  # PNG may keep eXIf after the pixels; it is read on load
            return 1
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # malformed EXIF is not worth refusing the image for
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def probe(
    data: bytes,
    source: str,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int = DEFAULT_MAX_SIDE,
) -> tuple[str, int, int]:
    """(format, width, height) from the header only - no pixel decoding - with the same refusals
    as :func:`decode_image` for non-images, bombs and bad dimensions. Width/height are after EXIF
    orientation (for PNG only when its EXIF precedes the pixel data). Truncated pixel data is
    not detected here."""
    img, fmt = _open(data, source, max_pixels, max_side)
    w, h = img.size
    if _orientation(img, fmt, header_only=True) >= 5:
        w, h = h, w
    return _format_name(img, fmt), w, h


def _format_name(img: Image.Image, fmt: str) -> str:
    name = img.format or fmt
    return "JPEG" if name == "MPO" else name


# ---------------------------------------------------------------------------------------------- converting


def _to_8bit(arr: np.ndarray, sixteen_bit: bool) -> Image.Image:
    """Rescale a 16/32-bit integer or float grayscale array to an 8-bit "L" image."""
    a = np.nan_to_num(arr.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if sixteen_bit or (lo >= 0 and 255 < hi <= 65535 and arr.dtype.kind in "iu"):
        a = a / 257.0
    elif arr.dtype.kind == "f" and lo >= 0 and hi <= 1.0:
        a = a * 255.0
    elif lo < 0 or hi > 255:
        a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


@lru_cache(maxsize=16)
def _cmyk_transform(icc: bytes) -> ImageCms.ImageCmsTransform:
    return ImageCms.buildTransform(
        ImageCms.ImageCmsProfile(io.BytesIO(icc)),
        ImageCms.createProfile("sRGB"),
        "CMYK",
        "RGB",
        flags=ImageCms.Flags.NOCACHE,  # safe to share between threads
    )


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    icc = img.info.get("icc_profile")
    if icc and _pillow_has("littlecms2"):
        try:
            out = ImageCms.applyTransform(img, _cmyk_transform(bytes(icc)))
            if out is not None and out.mode == "RGB":
                return out
        except Exception:  # a broken or non-CMYK profile: fall back to the plain conversion
            pass
    return img.convert("RGB")


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def _to_rgb(img: Image.Image, source: str) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    try:
        if mode.startswith("I;16") or mode in ("I", "F"):
            return _to_8bit(np.asarray(img), sixteen_bit=mode.startswith("I;16")).convert("RGB")
        if mode == "CMYK":
            return _cmyk_to_rgb(img)
        if _has_alpha(img):
            rgba = img.convert("RGBA")
            alpha = rgba.getchannel("A")
            if alpha.getextrema()[0] == 255:  # fully opaque after all
                return rgba.convert("RGB")
            out = Image.new("RGB", rgba.size, WHITE)
            out.paste(rgba, (0, 0), alpha)
            return out
        return img.convert("RGB")
    except ValueError as exc:
        raise UnsupportedFormatError(
            source, f"colour mode {mode} cannot be converted to RGB ({exc})"
        ) from None


# ---------------------------------------------------------------------------------------------- decoding


def decode_image(
    data: bytes,
    source: str,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int = DEFAULT_MAX_SIDE,
    draft_to: int | None = None,
) -> DecodedImage:
    """Decode image bytes into a normalised RGB :class:`DecodedImage` (see the module docstring).

    ``source`` names the file or URL in error messages. Dimensions are checked from the header
    before any pixels are decoded. ``draft_to`` enables JPEG DCT scaling (see module docstring).
    """
    source = str(source)
    img, fmt = _open(data, source, max_pixels, max_side)
    w, h = img.size
    mode = img.mode
    scale = 1
    if draft_to and isinstance(img, JpegImagePlugin.JpegImageFile) and min(w, h) >= 2 * draft_to:
        img.draft(mode, (draft_to, draft_to))
        config = getattr(img, "decoderconfig", ())
        scale = int(config[0]) if config and config[0] else 1
    try:
        img.load()
    except Image.DecompressionBombError as exc:
        raise DecompressionBombError(
            source, f"too many pixels, possible decompression bomb ({exc})"
        ) from None
    except _DECODE_ERRORS + (RuntimeError,) as exc:
        msg = str(exc)
        if "truncated" in msg or isinstance(exc, EOFError):
            reason = f"{fmt} image data is truncated (the file was cut short)"
        else:
            reason = f"{fmt} image data is damaged ({msg or type(exc).__name__})"
        raise TruncatedImageError(source, reason) from None
    orientation = _orientation(img, fmt, header_only=False)
    out = _to_rgb(img, source)
    if orientation != 1:
        out = out.transpose(_TRANSPOSE[orientation])
        if orientation >= 5:
            w, h = h, w
    if out.mode != "RGB":  # defensive: every branch above yields RGB
        out = out.convert("RGB")
    return DecodedImage(image=out, width=w, height=h, format=_format_name(img, fmt), mode=mode, scale=scale)


def open_image(
    path: str | Path,
    *,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int = DEFAULT_MAX_SIDE,
    draft_to: int | None = None,
) -> DecodedImage:
    """:func:`read_bytes` + :func:`decode_image`; errors name ``path``."""
    data = read_bytes(path, max_bytes=max_bytes)
    return decode_image(data, str(path), max_pixels=max_pixels, max_side=max_side, draft_to=draft_to)
