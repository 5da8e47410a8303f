"""Service guards that need no catalogue: the rate limiter's bounded table."""

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
