from __future__ import annotations

import http.server
import socket
import threading
import time
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
        "http://100.100.100.200/latest",
        "http://[2002:0a00:0001::]/x",
        "http://[64:ff9b::a00:1]/x",
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


# ---- address guard: every blocked range, IPv4 inside IPv6, DNS rebinding, one deadline ----------

BLOCKED = [
    "127.0.0.1",  # loopback
    "127.8.9.10",
    "10.0.0.1",  # RFC 1918
    "172.16.5.4",
    "192.168.0.5",
    "100.64.0.1",  # carrier-grade NAT (RFC 6598)
    "100.100.100.200",  # a cloud metadata address inside 100.64.0.0/10
    "169.254.169.254",  # link-local / cloud metadata
    "0.0.0.0",
    "0.1.2.3",
    "192.0.0.170",  # IETF protocol assignments
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    "224.0.0.1",  # multicast (is_global is True for it)
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "::",
    "::1",
    "::ffff:10.0.0.1",  # IPv4-mapped
    "::ffff:127.0.0.1",
    "::10.0.0.1",  # IPv4-compatible (is_global is True for it)
    "2002:0a00:0001::",  # 6to4 of 10.0.0.1 (is_global is True for it)
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1 (is_global is True for it)
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::1",  # local-use NAT64
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001:db8::1",  # documentation
    "fc00::1",  # unique local
    "fd12:3456::1",
    "fe80::1",  # link-local
    "fec0::1",  # site-local (is_global is True for it)
    "ff02::1",  # multicast
    "ff0e::1",  # global-scope multicast (is_global is True for it)
]


@pytest.mark.parametrize("address", BLOCKED)
def test_every_non_global_range_is_refused(address: str) -> None:
    def stub(host: str, port: int) -> list[str]:
        return [address]

    with pytest.raises(BlockedAddressError, match="non-public address"):
        check_url("http://images.example/a.jpg", resolver=stub)
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(BlockedAddressError, match="non-public address"):
        check_url(f"http://{literal}/a.jpg")


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "2606:4700::1", "2002:0808:0808::", "64:ff9b::808:808", "::ffff:8.8.8.8"]
)
def test_global_addresses_pass(address: str) -> None:
    check_url("https://images.example/a.jpg", resolver=lambda host, port: [address])


def test_one_private_answer_among_public_ones_is_refused() -> None:
    with pytest.raises(BlockedAddressError, match="10.0.0.1"):
        check_url("http://images.example/a.jpg", resolver=lambda h, p: ["8.8.8.8", "10.0.0.1"])


class _Server:
    """A loopback HTTP server whose handler is a dict path -> callable(handler)."""

    def __init__(self, routes: dict[str, object]) -> None:
        hosts: list[str] = []
        self.hosts = hosts

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                hosts.append(self.headers.get("Host", ""))
                route = routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                route(self)  # type: ignore[operator]

            def log_message(self, *a: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _redirect(location: str):  # type: ignore[no-untyped-def]
    def send(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return send


def _body(data: bytes):  # type: ignore[no-untyped-def]
    def send(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    return send


def _drip(h: http.server.BaseHTTPRequestHandler) -> None:
    """Headers at once, then one byte every 50 ms for 60 s: every read is quick, the whole is not."""
    h.send_response(200)
    h.send_header("Content-Length", "1200")
    h.end_headers()
    try:
        for _ in range(1200):
            h.wfile.write(b"x")
            h.wfile.flush()
            time.sleep(0.05)
    except OSError:
        pass


def _stall(h: http.server.BaseHTTPRequestHandler) -> None:
    """Headers and a few bytes, then silence for 60 s."""
    h.send_response(200)
    h.send_header("Content-Length", "1000")
    h.end_headers()
    h.wfile.write(b"abc")
    h.wfile.flush()
    time.sleep(60)


@pytest.fixture
def guard_server() -> Iterator[_Server]:
    routes: dict[str, object] = {}
    srv = _Server(routes)
    port = srv.port
    routes.update(
        {
            "/ok": _body(b"hello"),
            "/to-ok": _redirect("/ok"),
            "/chain1": _redirect("/chain2"),
            "/chain2": _redirect(f"http://127.0.0.2:{port}/ok"),  # loopback, not in the allowed network
            "/to-metadata": _redirect("http://169.254.169.254/latest/meta-data/"),
            "/to-mapped": _redirect(f"http://[::ffff:127.0.0.1]:{port}/ok"),
            "/to-name": _redirect(f"http://rebind.test:{port}/ok"),
            "/drip": _drip,
            "/stall": _stall,
        }
    )
    yield srv
    srv.close()


# the loopback test server itself is reached through the allow-list: only 127.0.0.1 is allowed,
# so every other private address (127.0.0.2 included) stays blocked
ALLOW = ["127.0.0.1/32"]


def test_redirect_chains_into_private_space_are_refused(guard_server: _Server) -> None:
    base = f"http://127.0.0.1:{guard_server.port}"
    assert fetch_bytes(f"{base}/to-ok", allowed_networks=ALLOW) == b"hello"
    for path, address in [("/to-metadata", "169.254.169.254"), ("/to-mapped", "::ffff:127.0.0.1")]:
        with pytest.raises(BlockedAddressError, match=address.replace(".", r"\.")):
            fetch_bytes(f"{base}{path}", allowed_networks=ALLOW)
    # chain1 -> chain2 -> http://127.0.0.2/ok: the third hop goes to a non-allowed loopback address
    with pytest.raises(BlockedAddressError, match=r"127\.0\.0\.2"):
        fetch_bytes(f"{base}/chain1", allowed_networks=ALLOW)
    assert guard_server.hosts.count(f"127.0.0.2:{guard_server.port}") == 0


def test_dns_rebinding_connects_to_the_checked_address(
    guard_server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host is resolved once per hop, through the stub only: the connection goes to the
    address that was checked (a second lookup by the HTTP client would fail: ``rebind.test``
    exists only in the stub), with the Host header naming the host."""
    answers = iter([["127.0.0.1"], ["127.0.0.1"], ["10.0.0.1"]])
    calls: list[str] = []

    def stub(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    real_getaddrinfo = socket.getaddrinfo

    def no_system_lookup_of_rebind(host, *a, **kw):  # type: ignore[no-untyped-def]
        assert host != "rebind.test", "the HTTP client looked the host up a second time"
        return real_getaddrinfo(host, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", no_system_lookup_of_rebind)
    port = guard_server.port
    assert fetch_bytes(f"http://rebind.test:{port}/ok", allowed_networks=ALLOW, resolver=stub) == b"hello"
    assert calls == ["rebind.test"]
    assert guard_server.hosts[-1] == f"rebind.test:{port}"
    # a redirect to the same name is resolved again and checked again: now it rebinds to 10.0.0.1
    with pytest.raises(BlockedAddressError, match=r"10\.0\.0\.1"):
        fetch_bytes(f"http://rebind.test:{port}/to-name", allowed_networks=ALLOW, resolver=stub)
    assert calls == ["rebind.test"] * 3


@pytest.mark.parametrize("path", ["/drip", "/stall"])
def test_one_deadline_for_the_whole_download(guard_server: _Server, path: str) -> None:
    start = time.monotonic()
    with pytest.raises(FetchError, match="deadline"):
        fetch_bytes(f"http://127.0.0.1:{guard_server.port}{path}", allowed_networks=ALLOW, timeout_s=1.5)
    elapsed = time.monotonic() - start
    assert elapsed < 3.0, f"the download ran {elapsed:.1f} s past a 1.5 s deadline"
