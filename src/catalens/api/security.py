"""Authentication (API keys with roles) and a per-key token-bucket rate limit, as dependencies.

A key is sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Reads may be open
(``open_reads``); writes always need a key; a wrong key is refused even where none is needed.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from catalens.api.errors import ApiError
from catalens.api.keys import role_allows


@dataclass(frozen=True)
class Principal:
    role: str
    key_id: int | None = None
    key_prefix: str | None = None

    @property
    def bucket(self) -> str:
        return f"key:{self.key_id}" if self.key_id is not None else "anon"


class RateLimiter:
    """Token buckets: ``burst`` tokens, refilled at ``per_minute / 60`` per second.

    The table is bounded: at most ``max_buckets`` (least recently used dropped first), and a
    bucket idle long enough to be full again is dropped (it would start full anyway), so a flood of
    client addresses or keys cannot grow it without end."""

    def __init__(self, per_minute: float, burst: int, max_buckets: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_buckets = max_buckets
        self.idle_s = self.burst / self.rate  # after this long a bucket is full again
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, bucket: str) -> float:
        """0.0 when allowed, else the seconds to wait before the next token."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.pop(bucket, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[bucket] = (tokens, now)  # most recently used last
            self._evict(now)
            return wait

    def _evict(self, now: float) -> None:
        while self._buckets:
            _key, (_tokens, last) = next(iter(self._buckets.items()))
            if len(self._buckets) > self.max_buckets or now - last >= self.idle_s:
                self._buckets.popitem(last=False)
            else:
                break


def _presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(401, "unauthorized", "Authorization header must be 'Bearer <api key>'")
        return value.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key else None


def require(role: str) -> Callable[[Request], Awaitable[Principal]]:
    """Dependency: the caller's principal, at least ``role``, within its rate limit.

    Async, so that an open read costs no thread hop; a presented key is checked against the
    database in the thread pool (a revoked key stops working at once)."""

    async def dependency(request: Request) -> Principal:
        state = request.app.state
        key = _presented_key(request)
        if key is None:
            if role == "read" and state.api_settings.open_reads:
                principal = Principal("read")
            else:
                raise ApiError(
                    401,
                    "unauthorized",
                    f"this needs an API key with role {role!r} "
                    "(send 'Authorization: Bearer <key>'; create one with `catalens keys create`)",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        else:
            info = await run_in_threadpool(state.catalog.verify_key, key)
            if info is None:
                raise ApiError(
                    401, "unauthorized", "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
                )
            principal = Principal(info.role, info.id, info.prefix)
            if not role_allows(info.role, role):
                raise ApiError(403, "forbidden", f"this needs role {role!r}; the key has role {info.role!r}")
        bucket = principal.bucket
        if principal.key_id is None:
            bucket = f"ip:{request.client.host if request.client else 'unknown'}"
        wait = state.rate_limiter.take(bucket)
        if wait > 0:
            raise ApiError(
                429,
                "rate-limited",
                f"rate limit exceeded; retry in {wait:.1f} s",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        request.state.principal = principal
        return principal

    return dependency


read = require("read")
write = require("write")
admin = require("admin")
