"""Ordered map over a thread pool with a bounded number of items in flight."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prefetch_map(
    fn: Callable[[T], R], items: Iterable[T], *, workers: int = 2, ahead: int = 64
) -> Iterator[R]:
    """Yield ``fn(item)`` in input order while up to ``ahead`` items are being prepared.

    Memory stays bounded by ``ahead`` results however long the input is. Closing the
    generator (or an exception in the consumer) cancels what has not started.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="catalens-prefetch")
    pending: deque[Future[R]] = deque()
    iterator = iter(items)
    try:
        for item in iterator:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
