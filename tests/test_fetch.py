from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_product_image

from catalens.errors import BlockedAddressError, FetchError, TooLargeError
from catalens.ingest.fetch import check_url, fetch_bytes


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.jpg",
        "http://localhost/a.jpg",
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest",
        "http://[::1]/x",
        "http://192.168.0.5/x",
    ],
)
def test_private_addresses_are_refused(url: str) -> None:
    with pytest.raises(BlockedAddressError, match="non-public address"):
        check_url(url)


def test_bad_schemes() -> None:
    with pytest.raises(FetchError, match="scheme"):
        check_url("ftp://example.com/a.jpg")
    with pytest.raises(FetchError, match="scheme"):
        check_url("file:///etc/passwd")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    make_product_image(tmp_path / "a.jpg", seed=1)
    (tmp_path / "big.bin").write_bytes(b"\0" * 200_000)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(tmp_path), **kw)  # type: ignore[arg-type]

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/a.jpg")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *a: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_fetch_with_guard_limits_and_redirects(server: str) -> None:
    with pytest.raises(BlockedAddressError):
        fetch_bytes(f"{server}/a.jpg")
    data = fetch_bytes(f"{server}/redirect", allow_private=True)
    assert data[:3] == b"\xff\xd8\xff"
    with pytest.raises(TooLargeError):
        fetch_bytes(f"{server}/big.bin", allow_private=True, max_bytes=1000)
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_bytes(f"{server}/nope.jpg", allow_private=True)


def test_url_ingest_stores_blob(server: str, tmp_path: Path, fake_encoder: object) -> None:
    from catalens import Catalog

    with Catalog.open(tmp_path / "home", allow_private_urls=True) as cat:
        rep = cat.ingest([f"{server}/a.jpg", f"{server}/missing.jpg"])
        assert rep.new_images == 1 and rep.failed == 1
        img = cat.db.ok_images()[0]
        assert img.stored_path and Path(img.stored_path).exists()
    with Catalog.open(tmp_path / "home2") as cat:
        rep = cat.ingest([f"{server}/a.jpg"])
        assert rep.failed == 1 and rep.failures[0].kind == "blocked-address"
