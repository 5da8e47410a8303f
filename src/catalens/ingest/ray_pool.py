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
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

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
        st: _MapState[K] = _MapState(
            source=iter(batches), lost_kinds=(RayActorError, ObjectLostError), spawns_left=2 * self.size + 2
        )
        timeout = float(os.environ.get("CATALENS_RAY_START_TIMEOUT", START_TIMEOUT_S))
        for _ in range(self.size):
            self._spawn(st)
        try:
            while True:
                self._dispatch(st)
                if st.exhausted and not st.todo and not st.in_flight:
                    return
                if not st.in_flight and not st.starting:
                    raise ClusterError(
                        f"every {self.what} was lost and none could be restarted"
                        + (f" (last error: {st.last_error})" if st.last_error else "")
                        + "; batches written so far are kept: run the same command again to resume"
                    )
                waiting = list(st.in_flight) + list(st.starting)
                done, _ = ray.wait(waiting, num_returns=1, timeout=None if st.in_flight else timeout)
                if not done:
                    raise ClusterError(
                        f"no {self.what} started within {timeout:.0f} s: does the cluster have a free CPU "
                        "and catalens installed on its nodes?"
                    )
                ref = done[0]
                if ref in st.starting:
                    self._on_started(st, ref, started)
                    continue
                finished = self._on_result(st, ref)
                if finished is not None:
                    yield finished
        finally:
            self._kill_all(st)

    def _spawn(self, st: _MapState[K]) -> None:
        """Start one more actor, unless the restarts allowed are spent."""
        if st.spawns_left <= 0:
            return
        st.spawns_left -= 1
        actor = self.make()
        st.starting[actor.ready.remote()] = actor

    def _drop(self, st: _MapState[K], actor: Any) -> None:
        """Forget a lost actor, kill what is left of it and start a replacement."""
        import ray

        if actor in st.load:
            del st.load[actor]
            self.lost += 1
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
            self._spawn(st)

    def _next_job(self, st: _MapState[K]) -> tuple[K, Any] | None:
        """The next batch to run: a retried one first, then the source's next (None: nothing now)."""
        if st.todo:
            return st.todo.popleft()
        if not st.exhausted:
            nxt = next(st.source, None)
            if nxt is None:
                st.exhausted = True
                return None
            return nxt
        return None

    def _dispatch(self, st: _MapState[K]) -> None:
        """Give each ready actor, least loaded first, batches up to ``per_actor`` in flight."""
        for actor in sorted(st.load, key=st.load.__getitem__):
            while st.load[actor] < self.per_actor:
                job = self._next_job(st)
                if job is None:
                    break
                st.in_flight[getattr(actor, self.method).remote(job[1])] = (actor, job)
                st.load[actor] += 1

    def _on_started(self, st: _MapState[K], ref: Any, started: float) -> None:
        """An actor's ready() answered: it takes work, or it failed to start (then maybe try another)."""
        import ray

        actor = st.starting.pop(ref)
        try:
            ray.get(ref)
        except st.lost_kinds as exc:
            st.last_error = exc
            if not st.load and not st.starting:  # the first workers cannot start: a real error
                self._spawn(st)
            return
        st.load[actor] = 0
        if self.first_ready_s is None:
            self.first_ready_s = time.perf_counter() - started

    def _on_result(self, st: _MapState[K], ref: Any) -> tuple[K, Any] | None:
        """A batch finished: ``(key, result)``, or None when its actor was lost (the batch is queued again)."""
        import ray

        actor, job = st.in_flight.pop(ref)
        try:
            result = ray.get(ref)
        except st.lost_kinds as exc:
            st.last_error = exc
            self.retried += 1
            st.todo.appendleft(job)
            if actor in st.load:
                st.load[actor] -= 1
                self._drop(st, actor)
            return None
        if actor in st.load:
            st.load[actor] -= 1
        return job[0], result

    def _kill_all(self, st: _MapState[K]) -> None:
        """Kill every actor of the pool, ready or starting."""
        import ray

        for actor in [*st.load, *st.starting.values()]:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass


@dataclass
class _MapState(Generic[K]):
    """The bookkeeping of one ``map`` call: queued, starting, ready and in-flight work."""

    source: Iterator[tuple[K, Any]]
    lost_kinds: tuple[type[BaseException], ...]  # errors meaning an actor (or its result) was lost
    spawns_left: int
    todo: deque[tuple[K, Any]] = field(default_factory=deque)  # batches to run again
    exhausted: bool = False
    starting: dict[Any, Any] = field(default_factory=dict)  # ready() ref -> actor
    load: dict[Any, int] = field(default_factory=dict)  # ready actor -> batches in flight
    in_flight: dict[Any, tuple[Any, tuple[K, Any]]] = field(default_factory=dict)
    last_error: BaseException | None = None


def remote_class(cls: type, *, num_cpus: float = 1, max_concurrency: int = 2) -> Any:
    """``cls`` as a Ray actor class that is not restarted by Ray (the pool replaces lost actors)."""
    import ray

    return ray.remote(num_cpus=num_cpus, max_concurrency=max_concurrency, max_restarts=0)(cls)
