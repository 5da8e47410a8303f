"""Micro-batching of concurrent image encodes (catalens.api.batching)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from catalens.api.batching import BatchingEncoder


class _Slow:
    """Encodes (N, 1, 2, 2) -> (N, 3): row sums times (1, 2, 3); records the batch sizes."""

    model_id, dim = "slow", 3

    def __init__(self, delay: float = 0.02) -> None:
        self.delay, self.sizes = delay, []
        self.lock = threading.Lock()

    def encode(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[1:] != (1, 2, 2):
            raise ValueError(f"bad shape {batch.shape}")
        with self.lock:
            self.sizes.append(len(batch))
        time.sleep(self.delay)
        return batch.reshape(len(batch), -1).sum(axis=1, keepdims=True) * np.array([[1.0, 2.0, 3.0]])


def _x(i: int, n: int = 1) -> np.ndarray:
    return np.full((n, 1, 2, 2), float(i), np.float32)


def test_concurrent_calls_are_merged_and_answered_with_their_own_rows() -> None:
    inner = _Slow()
    enc = BatchingEncoder(inner, max_rows=8)
    assert enc.model_id == "slow" and enc.dim == 3  # the wrapped encoder's attributes
    with ThreadPoolExecutor(16) as pool:
        outs = list(pool.map(lambda i: enc.encode(_x(i, 1 + i % 2)), range(32)))
    for i, out in enumerate(outs):
        assert out.shape == (1 + i % 2, 3)
        np.testing.assert_allclose(out, np.tile([[4.0 * i, 8.0 * i, 12.0 * i]], (1 + i % 2, 1)))
    assert sum(inner.sizes) == 48 and max(inner.sizes) <= 8
    assert len(inner.sizes) < 32  # some calls shared a batch
    assert enc.batches == len(inner.sizes) and enc.rows == 48


def test_large_batches_bypass_and_errors_reach_the_caller() -> None:
    inner = _Slow(0.0)
    enc = BatchingEncoder(inner, max_rows=4)
    assert enc.encode(_x(1, 4)).shape == (4, 3) and enc.batches == 0  # straight through
    with pytest.raises(ValueError, match="bad shape"):
        enc.encode(np.zeros((1, 3, 2, 2), np.float32))
    assert enc.encode(_x(2)).shape == (1, 3)  # the worker survives an error
    with pytest.raises(ValueError):
        BatchingEncoder(inner, max_rows=1)


@pytest.mark.usefixtures("catalog_backend")  # on SQLite and on PostgreSQL
def test_service_wraps_its_encoder_once(home, fake_encoder) -> None:
    pytest.importorskip("fastapi")
    from catalens.api.service_catalog import ServiceCatalog
    from catalens.api.settings import ApiSettings
    from catalens.config import load_settings

    cat = ServiceCatalog(load_settings(home, default_model="fake-encoder"), ApiSettings(encode_batch=4))
    try:
        enc = cat.encoder()
        assert isinstance(enc, BatchingEncoder) and cat.encoder() is enc and enc.max_rows == 4
    finally:
        cat.close()
    off = ServiceCatalog(load_settings(home, default_model="fake-encoder"), ApiSettings(encode_batch=1))
    try:
        assert not isinstance(off.encoder(), BatchingEncoder)
    finally:
        off.close()
