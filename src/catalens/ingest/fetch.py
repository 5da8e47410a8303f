"""Fetch images over http(s) with one deadline, a size cap and an address guard (SSRF).

Only globally routable addresses are fetched (``ipaddress.ip_address(...).is_global``, not
multicast, not site-local) unless ``allow_private`` is set or the address lies in one of the
caller's ``allowed_networks``. IPv6 forms that carry an IPv4 address (IPv4-mapped ``::ffff:0:0/96``,
IPv4-compatible ``::/96``, 6to4 ``2002::/16``, Teredo ``2001::/32`` and NAT64 ``64:ff9b::/96``)
are unwrapped and the IPv4 address inside must pass too; local-use NAT64 ``64:ff9b:1::/48`` is
refused.

Each hop (the URL and every redirect) is resolved exactly once; every address it resolves to is
checked, and the connection goes to the checked address (the request URL names the IP, the
``Host`` header and the TLS SNI / certificate check name the host), so a DNS answer that changes
between check and connect (rebinding) cannot redirect the download. Environment proxies are not
used (a proxy would resolve the host itself).

``timeout_s`` is one deadline for the whole download, redirects included: connects and header
reads get what is left of it, and a watchdog shuts the socket when it passes, so a server that
drips a byte at a time cannot hold the worker past it.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from catalens.errors import BlockedAddressError, FetchError, TooLargeError

MAX_REDIRECTS = 5

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses it resolves to (as strings); swapped in tests for a DNS stub.
Resolver = Callable[[str, int], list[str]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPAT = ipaddress.IPv6Network("::/96")


def system_resolver(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to through the system resolver (one lookup)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]).split("%")[0] for info in infos]


def embedded_ipv4(addr: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, 6to4, Teredo, NAT64)."""
    if addr.ipv4_mapped is not None:
        return [addr.ipv4_mapped]
    if addr.sixtofour is not None:
        return [addr.sixtofour]
    if addr.teredo is not None:
        server, client = addr.teredo
        return [server, client]
    if addr in _NAT64 or (addr in _IPV4_COMPAT and int(addr) > 1):
        return [ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)]
    return []


def blocked_reason(addr: IPAddress) -> str | None:
    """Why ``addr`` may not be fetched from, or None when it is a globally routable unicast address."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr in _NAT64_LOCAL:
            return "a local-use NAT64 address"
        if addr.is_site_local:
            return "a site-local address"
        for inner in embedded_ipv4(addr):
            reason = blocked_reason(inner)
            if reason is not None:
                return f"carries IPv4 address {inner}, {reason}"
    if addr.is_multicast:
        return "a multicast address"
    if not addr.is_global:
        return "not a globally routable address"
    return None


def parse_networks(networks: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``allowed_networks`` entries as networks (``"10.1.0.0/16"``, ``"127.0.0.1"``)."""
    return tuple(ipaddress.ip_network(n, strict=False) for n in networks)


@dataclass(frozen=True)
class ResolvedURL:
    """A URL whose host was resolved once and whose addresses all passed the guard."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]

    def target(self) -> str:
        """The URL to connect to: the same path on the first checked address."""
        parts = urlsplit(self.url)
        addr = self.addresses[0]
        ip = f"[{addr}]" if isinstance(addr, ipaddress.IPv6Address) else str(addr)
        path = parts.path or "/"
        query = f"?{parts.query}" if parts.query else ""
        return f"{self.scheme}://{ip}:{self.port}{path}{query}"

    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def resolve_url(
    url: str,
    *,
    allow_private: bool = False,
    allowed_networks: Sequence[str] = (),
    resolver: Resolver | None = None,
) -> ResolvedURL:
    """Check the scheme, resolve the host once and check every address; raise FetchError subclasses."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise FetchError(url, f"unsupported URL scheme {parts.scheme!r}; only http and https are fetched")
    host = parts.hostname
    if not host:
        raise FetchError(url, "URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise FetchError(url, f"bad port: {exc}") from exc
    try:
        raw = (resolver or system_resolver)(host, port)
        addresses = tuple(ipaddress.ip_address(a) for a in raw)
    except (OSError, UnicodeError, ValueError) as exc:
        raise FetchError(url, f"cannot resolve host {host!r}: {exc}") from exc
    if not addresses:
        raise FetchError(url, f"cannot resolve host {host!r}: no addresses")
    if not allow_private:
        allowed = parse_networks(allowed_networks)
        for addr in addresses:
            if any(addr.version == net.version and addr in net for net in allowed):
                continue
            reason = blocked_reason(addr)
            if reason is not None:
                raise BlockedAddressError(
                    url,
                    f"host {host!r} resolves to non-public address {addr} ({reason}); refused "
                    "(pass --allow-private-urls / CATALENS_ALLOW_PRIVATE_URLS=1 to allow)",
                )
    return ResolvedURL(url, parts.scheme, host, port, addresses)


def check_url(
    url: str,
    *,
    allow_private: bool = False,
    allowed_networks: Sequence[str] = (),
    resolver: Resolver | None = None,
) -> None:
    """Raise unless ``url`` is http(s) and (unless allowed) resolves only to public addresses."""
    resolve_url(url, allow_private=allow_private, allowed_networks=allowed_networks, resolver=resolver)


class _Watchdog:
    """Shuts a response's socket down when the deadline passes (wakes a blocked read)."""

    def __init__(self, resp: Any, remaining_s: float) -> None:
        self.fired = False
        self._sock: socket.socket | None = None
        stream = resp.extensions.get("network_stream")
        if stream is not None:
            sock = stream.get_extra_info("socket")
            if isinstance(sock, socket.socket):
                self._sock = sock
        self._timer = threading.Timer(max(remaining_s, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self._timer.cancel()


def fetch_bytes(
    url: str,
    *,
    timeout_s: float = 20.0,
    max_bytes: int = 50 * 1024 * 1024,
    allow_private: bool = False,
    allowed_networks: Sequence[str] = (),
    resolver: Resolver | None = None,
) -> bytes:
    """Download ``url`` following up to 5 checked redirects within one ``timeout_s`` deadline."""
    import httpx

    deadline = time.monotonic() + timeout_s

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchError(url, f"timed out: the download took over its {timeout_s:g} s deadline")
        return left

    current = url
    with httpx.Client(
        follow_redirects=False, trust_env=False, headers={"User-Agent": "catalens/0.1"}
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            hop = resolve_url(
                current, allow_private=allow_private, allowed_networks=allowed_networks, resolver=resolver
            )
            left = remaining()
            timeout = httpx.Timeout(left, connect=min(left, 10.0))
            extensions = {"sni_hostname": hop.host} if hop.scheme == "https" else {}
            request = client.build_request(
                "GET",
                hop.target(),
                headers={"Host": hop.host_header()},
                timeout=timeout,
                extensions=extensions,
            )
            watchdog: _Watchdog | None = None
            try:
                resp = client.send(request, stream=True)
                try:
                    watchdog = _Watchdog(resp, remaining())
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
                        remaining()
                    if watchdog.fired:
                        remaining()
                    return b"".join(chunks)
                finally:
                    resp.close()
            except httpx.TimeoutException as exc:
                raise FetchError(
                    url, f"timed out: the download took over its {timeout_s:g} s deadline"
                ) from exc
            except httpx.HTTPError as exc:
                if watchdog is not None and watchdog.fired:
                    raise FetchError(
                        url, f"timed out: the download took over its {timeout_s:g} s deadline"
                    ) from exc
                raise FetchError(url, f"download failed: {exc}") from exc
            finally:
                if watchdog is not None:
                    watchdog.cancel()
    raise FetchError(url, f"more than {MAX_REDIRECTS} redirects")
