"""Micro-batching of image encodes across concurrent requests.

A service answers one image per request (classify an upload, search by an upload), while a
model encodes a batch of images faster per image than the same images one at a time. A
:class:`BatchingEncoder` wraps an image encoder: concurrent ``encode`` calls of small batches
are queued, and one worker thread encodes whatever is waiting as one batch (up to ``max_rows``
rows), then hands every caller its own rows. Nothing waits on purpose: a lone request is
encoded at once; requests that arrive while a batch runs form the next batch. Large batches
(an ingest job's) bypass the queue.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np


class _Pending:
    __slots__ = ("batch", "done", "result", "error")

    def __init__(self, batch: np.ndarray) -> None:
        self.batch = batch
        self.done = threading.Event()
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None


class BatchingEncoder:
    """An image encoder whose small concurrent ``encode`` calls are merged into batches.

    Every other attribute (``model_id``, ``version``, ``dim``, ``spec``, ``preprocess``,
    ``backend``...) is the wrapped encoder's."""

    def __init__(self, inner: Any, max_rows: int = 16) -> None:
        if max_rows < 2:
            raise ValueError("max_rows must be at least 2 (1 means: do not wrap)")
        self.inner, self.max_rows = inner, int(max_rows)
        self._queue: deque[_Pending] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None
        self.batches = 0  # encodes run by the worker, and the rows they held (for metrics, tests)
        self.rows = 0

    def __getattr__(self, name: str) -> Any:  # only called for attributes not set on self
        return getattr(self.inner, name)

    def encode(self, batch: np.ndarray) -> np.ndarray:
        arr = np.asarray(batch)
        if arr.ndim != 4 or len(arr) == 0 or len(arr) >= self.max_rows:
            return self.inner.encode(arr)  # checks and errors as usual; big batches go straight through
        item = _Pending(arr)
        with self._lock:
            self._queue.append(item)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="catalens-encode-batcher", daemon=True)
                self._worker.start()
            self._wake.notify()
        item.done.wait()
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _take(self) -> list[_Pending]:
        """The waiting calls that fit one batch (at least one; blocks until there is one)."""
        with self._lock:
            while not self._queue:
                self._wake.wait()
            taken = [self._queue.popleft()]
            rows = len(taken[0].batch)
            shape = taken[0].batch.shape[1:]
            while (
                self._queue
                and rows + len(self._queue[0].batch) <= self.max_rows
                and self._queue[0].batch.shape[1:] == shape
            ):
                taken.append(self._queue.popleft())
                rows += len(taken[-1].batch)
            return taken

    def _run(self) -> None:
        while True:
            taken = self._take()
            try:
                if len(taken) == 1:
                    outs = [self.inner.encode(taken[0].batch)]
                else:
                    enc = np.asarray(self.inner.encode(np.concatenate([t.batch for t in taken])))
                    bounds = np.cumsum([len(t.batch) for t in taken])[:-1]
                    outs = np.split(enc, bounds)
                self.batches += 1
                self.rows += sum(len(t.batch) for t in taken)
                for t, out in zip(taken, outs, strict=True):
                    t.result = out
            except BaseException as exc:  # every caller of this batch gets the error
                for t in taken:
                    t.error = exc
            finally:
                for t in taken:
                    t.done.set()

    def __repr__(self) -> str:
        return f"BatchingEncoder({self.inner!r}, max_rows={self.max_rows})"


__all__ = ["BatchingEncoder"]
