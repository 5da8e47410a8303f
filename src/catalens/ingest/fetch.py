"""Fetch images over http(s) with timeouts, a size cap and an address guard.

Loopback, private (RFC 1918 / ULA), link-local, multicast, reserved and unspecified
addresses are refused unless ``allow_private`` is set, and every redirect hop is checked
again. The host is resolved once per hop and the check applies to every address it
resolves to.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urljoin, urlsplit

from catalens.errors import BlockedAddressError, FetchError, TooLargeError

MAX_REDIRECTS = 5


def check_url(url: str, *, allow_private: bool = False) -> None:
    """Raise unless ``url`` is http(s) and (unless allowed) resolves only to public addresses."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise FetchError(url, f"unsupported URL scheme {parts.scheme!r}; only http and https are fetched")
    host = parts.hostname
    if not host:
        raise FetchError(url, "URL has no host")
    try:
        infos = socket.getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(url, f"cannot resolve host {host!r}: {exc}") from exc
    if allow_private:
        return
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if (
            addr.is_loopback
            or addr.is_private
            or addr.is_link_local
            or addr.is_multicast
            or addr.is_reserved
            or addr.is_unspecified
        ):
            raise BlockedAddressError(
                url,
                f"host {host!r} resolves to non-public address {addr}; refused "
                "(pass --allow-private-urls / CATALENS_ALLOW_PRIVATE_URLS=1 to allow)",
            )


def fetch_bytes(
    url: str, *, timeout_s: float = 20.0, max_bytes: int = 50 * 1024 * 1024, allow_private: bool = False
) -> bytes:
    """Download ``url`` following up to 5 checked redirects; raise FetchError subclasses on failure."""
    import httpx

    current = url
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
    with httpx.Client(
        follow_redirects=False, timeout=timeout, headers={"User-Agent": "catalens/0.1"}
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            check_url(current, allow_private=allow_private)
            try:
                with client.stream("GET", current) as resp:
                    if resp.is_redirect:
                        location = resp.headers.get("location")
                        if not location:
                            raise FetchError(url, f"redirect {resp.status_code} without a Location header")
                        current = urljoin(current, location)
                        continue
                    if resp.status_code >= 400:
                        raise FetchError(url, f"HTTP {resp.status_code}")
                    declared = resp.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > max_bytes:
                        raise TooLargeError(url, f"{int(declared)} bytes is over the {max_bytes}-byte limit")
                    chunks: list[bytes] = []
                    total = 0
                    for chunk in resp.iter_bytes():
                        total += len(chunk)
                        if total > max_bytes:
                            raise TooLargeError(url, f"more than the {max_bytes}-byte limit")
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.TimeoutException as exc:
                raise FetchError(url, f"timed out after {timeout_s:g} s") from exc
            except httpx.HTTPError as exc:
                raise FetchError(url, f"download failed: {exc}") from exc
    raise FetchError(url, f"more than {MAX_REDIRECTS} redirects")
