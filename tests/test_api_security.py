"""Service guards that need no catalog: the rate limiter's bounded table."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from catalens.api import security  # noqa: E402
from catalens.api.security import RateLimiter  # noqa: E402


def test_rate_limit_table_is_bounded_by_lru() -> None:
    rl = RateLimiter(per_minute=60, burst=3, max_buckets=100)
    for _ in range(3):
        assert rl.take("key:1") == 0.0
    assert rl.take("key:1") > 0  # limited
    for i in range(10_000):  # a flood of client addresses
        rl.take(f"ip:10.0.{i // 256}.{i % 256}")
        if i % 50 == 0:
            assert rl.take("key:1") > 0  # a recently used bucket is kept, and stays limited
    assert len(rl) <= 100


def test_idle_buckets_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(security.time, "monotonic", lambda: now[0])
    rl = RateLimiter(per_minute=60, burst=5)  # full again after 5 s idle
    for i in range(50):
        rl.take(f"ip:{i}")
    assert len(rl) == 50
    now[0] += 4.0
    rl.take("ip:new")
    assert len(rl) == 51
    now[0] += 1.5  # the first 50 have been idle 5.5 s: full again, dropped
    rl.take("ip:new")
    assert len(rl) == 1


def _upload(tmp_path, name: str, data: bytes):  # type: ignore[no-untyped-def]
    from catalens.api.uploads import Upload

    path = tmp_path / name
    path.write_bytes(data)
    return Upload(filename=name, path=path)


def _jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format="JPEG")
    return buf.getvalue()


def test_upload_check_reads_only_the_header_of_a_large_file(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Concurrent uploads must not each hold a whole file in RAM: a large image whose header is in
    the first MiB is checked without reading the rest."""
    import io

    import numpy as np
    from PIL import Image

    from catalens.api import uploads
    from catalens.config import load_settings

    arr = np.random.default_rng(0).integers(0, 256, (1200, 1200, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=0)
    assert len(buf.getvalue()) > 3 * uploads.PROBE_BYTES
    up = _upload(tmp_path, "big.png", buf.getvalue())

    def whole(_self):  # type: ignore[no-untyped-def]
        raise AssertionError("the whole upload was read into memory")

    monkeypatch.setattr(uploads.Upload, "data", property(whole))
    assert uploads.check_upload(up, load_settings(tmp_path / "home"), 50 << 20) == "PNG"


def test_upload_check_reads_the_whole_file_when_the_header_is_beyond_the_prefix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from catalens.api import uploads
    from catalens.config import load_settings
    from catalens.errors import DecompressionBombError, NotAnImageError

    settings = load_settings(tmp_path / "home")
    jpeg = _jpeg()
    app15 = b"\xff\xef" + (0xFFF0).to_bytes(2, "big") + b"\0" * (0xFFF0 - 2)  # one 64 KiB metadata segment
    padded = jpeg[:2] + app15 * 20 + jpeg[2:]  # 1.3 MB of metadata before the frame header
    assert len(padded) > uploads.PROBE_BYTES
    assert uploads.check_upload(_upload(tmp_path, "meta.jpg", padded), settings, 50 << 20) == "JPEG"
    # refusals stay refusals, large or not
    junk = b"not an image at all " * 100_000
    with pytest.raises(NotAnImageError):
        uploads.check_upload(_upload(tmp_path, "junk.jpg", junk), settings, 50 << 20)
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    bomb = b"\x89PNG\r\n\x1a\n" + chunk + b"\0" * (2 * uploads.PROBE_BYTES)
    with pytest.raises(DecompressionBombError):
        uploads.check_upload(_upload(tmp_path, "bomb.png", bomb), settings, 50 << 20)
