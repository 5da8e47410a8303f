"""Ordered map over a thread pool with a bounded number of items in flight."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _lower_priority(nice: int) -> Callable[[], None]:
    """A thread initializer that raises the calling thread's nice value by ``nice``.

    Linux gives every thread its own nice value. While a model runs, the decode threads compete
    with the inference threads for the cores; a small nice (the default 3, about half the CPU
    share of a nice-0 thread under contention) lets inference run first while decoding keeps up.
    Measured with bench/embed_throughput.py (bench/RESULTS.md "foundation"): a larger nice cost
    end-to-end rate under background load, and SCHED_IDLE, tried before, starved the decode threads
    whenever any other process was busy.
    """

    def init() -> None:
        if nice <= 0 or not hasattr(os, "setpriority"):
            return
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        except OSError:  # not permitted here: keep the default priority
            pass

    return init


def prefetch_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int = 2,
    ahead: int = 64,
    nice: int = 0,
) -> Iterator[R]:
    """Yield ``fn(item)`` in input order while up to ``ahead`` items are being prepared.

    With ``nice`` > 0 the worker threads run at that much lower priority (see ``_lower_priority``).
    Memory stays bounded by ``ahead`` results however long the input is. Closing the
    generator (or an exception in the consumer) cancels what has not started.
    """
    pool = ThreadPoolExecutor(
        max_workers=max(1, workers),
        thread_name_prefix="catalens-prefetch",
        initializer=_lower_priority(nice) if nice > 0 else None,
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
