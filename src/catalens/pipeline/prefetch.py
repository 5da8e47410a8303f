"""Ordered map over a thread pool with a bounded number of items in flight."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _lower_priority() -> None:
    """Run this thread under SCHED_IDLE: it only gets CPU the inference threads leave idle.

    On a machine with few cores the decode threads otherwise pre-empt ONNX Runtime's
    intra-op threads, and every parallel operator then waits for its slowest thread;
    measured on 2 cores, that made the overlapped pipeline slower than decoding and
    inferring one after the other.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0 = the calling thread
    except (AttributeError, OSError):  # not Linux, or not permitted: keep the default policy
        pass


def prefetch_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int = 2,
    ahead: int = 64,
    idle_priority: bool = False,
) -> Iterator[R]:
    """Yield ``fn(item)`` in input order while up to ``ahead`` items are being prepared.

    With ``idle_priority`` the worker threads run under SCHED_IDLE (see ``_lower_priority``).
    Memory stays bounded by ``ahead`` results however long the input is. Closing the
    generator (or an exception in the consumer) cancels what has not started.
    """
    pool = ThreadPoolExecutor(
        max_workers=max(1, workers),
        thread_name_prefix="catalens-prefetch",
        initializer=_lower_priority if idle_priority else None,
    )
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
