"""Connect to a Ray cluster and map batches over a pool of actors that survives lost workers.

Every actor is built once (it loads its model once) and takes up to ``per_actor`` batches at a time.
A batch whose actor dies (its node killed, its process gone, its result lost with the node) goes
back to the queue and runs on another actor; a replacement actor is started for each one lost and
gets work once it is up. Results come back in completion order. Ray is imported only here and in
the modules that use this one: the embedded default never needs it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from catalens.errors import ClusterError, ConfigError

K = TypeVar("K")

# how long a job waits for its first worker to come up before giving up (env CATALENS_RAY_START_TIMEOUT)
START_TIMEOUT_S = 300.0


def connect(address: str | None) -> str:
    """Connect this process to the cluster at ``address`` (None, "" or "auto": the running local
    cluster, or $RAY_ADDRESS; else ``host:port`` or ``ray://host:port``). Returns the address used."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--ray needs Ray, an optional extra: pip install 'catalens[ray]'") from exc
    addr = address or "auto"
    if ray.is_initialized():
        return addr
    try:
        ray.init(address=addr, logging_level=logging.WARNING, log_to_driver=False)
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError: no cluster there
        raise ClusterError(
            f"cannot connect to the Ray cluster at {addr!r}: {exc} "
            "(start one with `ray start --head`, or give its address: --ray HOST:6379)"
        ) from exc
    return addr


def cluster_cpus() -> int:
    """CPUs of the live nodes of the connected cluster (at least 1)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


class ActorPool:
    """Actors made by ``make()`` (a Ray actor handle with methods ``ready`` and ``method``)."""

    def __init__(
        self,
        make: Callable[[], Any],
        size: int,
        *,
        method: str = "run",
        per_actor: int = 2,
        what: str = "Ray worker",
    ) -> None:
        self.make, self.size, self.method, self.per_actor, self.what = make, size, method, per_actor, what
        self.lost = 0  # actors lost while the job ran (restarted elsewhere)
        self.retried = 0  # batches that ran again after their actor was lost
        self.first_ready_s: float | None = None  # seconds from map() to the first actor up (model loaded)

    def map(self, batches: Iterable[tuple[K, Any]]) -> Iterator[tuple[K, Any]]:
        """Yield ``(key, actor.method(payload))`` for every ``(key, payload)``, in completion order."""
        import ray
        from ray.exceptions import ObjectLostError, RayActorError

        started = time.perf_counter()
        lost_kinds = (RayActorError, ObjectLostError)
        source = iter(batches)
        todo: deque[tuple[K, Any]] = deque()
        exhausted = False
        starting: dict[Any, Any] = {}  # ready() ref -> actor
        load: dict[Any, int] = {}  # ready actor -> batches in flight
        in_flight: dict[Any, tuple[Any, tuple[K, Any]]] = {}
        spawns_left = 2 * self.size + 2
        last_error: BaseException | None = None
        timeout = float(os.environ.get("CATALENS_RAY_START_TIMEOUT", START_TIMEOUT_S))

        def spawn() -> None:
            nonlocal spawns_left
            if spawns_left <= 0:
                return
            spawns_left -= 1
            actor = self.make()
            starting[actor.ready.remote()] = actor

        def drop(actor: Any) -> None:
            if actor in load:
                del load[actor]
                self.lost += 1
                try:
                    ray.kill(actor, no_restart=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass
                spawn()

        for _ in range(self.size):
            spawn()
        try:
            while True:
                for actor in sorted(load, key=load.__getitem__):
                    while load[actor] < self.per_actor:
                        if todo:
                            job = todo.popleft()
                        elif not exhausted:
                            nxt = next(source, None)
                            if nxt is None:
                                exhausted = True
                                break
                            job = nxt
                        else:
                            break
                        in_flight[getattr(actor, self.method).remote(job[1])] = (actor, job)
                        load[actor] += 1
                if exhausted and not todo and not in_flight:
                    return
                if not in_flight and not starting:
                    raise ClusterError(
                        f"every {self.what} was lost and none could be restarted"
                        + (f" (last error: {last_error})" if last_error else "")
                        + "; batches written so far are kept: run the same command again to resume"
                    )
                waiting = list(in_flight) + list(starting)
                done, _ = ray.wait(waiting, num_returns=1, timeout=None if in_flight else timeout)
                if not done:
                    raise ClusterError(
                        f"no {self.what} started within {timeout:.0f} s: does the cluster have a free CPU "
                        "and catalens installed on its nodes?"
                    )
                ref = done[0]
                if ref in starting:
                    actor = starting.pop(ref)
                    try:
                        ray.get(ref)
                    except lost_kinds as exc:
                        last_error = exc
                        if not load and not starting:  # the first workers cannot start: a real error
                            spawn()
                        continue
                    load[actor] = 0
                    if self.first_ready_s is None:
                        self.first_ready_s = time.perf_counter() - started
                    continue
                actor, job = in_flight.pop(ref)
                try:
                    result = ray.get(ref)
                except lost_kinds as exc:
                    last_error = exc
                    self.retried += 1
                    todo.appendleft(job)
                    if actor in load:
                        load[actor] -= 1
                        drop(actor)
                    continue
                if actor in load:
                    load[actor] -= 1
                yield job[0], result
        finally:
            for actor in [*load, *starting.values()]:
                try:
                    ray.kill(actor, no_restart=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass


def remote_class(cls: type, *, num_cpus: float = 1, max_concurrency: int = 2) -> Any:
    """``cls`` as a Ray actor class that is not restarted by Ray (the pool replaces lost actors)."""
    import ray

    return ray.remote(num_cpus=num_cpus, max_concurrency=max_concurrency, max_restarts=0)(cls)
