"""Background jobs with progress and cancellation (one worker: ingest jobs append to shared vector
files, so they run one after another; queries never wait for them).

A job runs a callable ``fn(progress)`` where ``progress`` is a :data:`catalens.core.ProgressFactory`.
Cancelling sets a flag that the next progress tick turns into :class:`JobCancelled`; ticks come
after each committed batch, so a cancelled job keeps every whole batch it wrote.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from catalens.errors import CatalensError, ConfigError, NotFoundError

TERMINAL = ("done", "failed", "cancelled")


class JobCancelled(Exception):
    """Raised inside a job's progress callback once the job was cancelled."""


@dataclass
class ApiJob:
    id: str
    kind: str
    source: str
    status: str = "queued"
    total: int | None = None
    done: int = 0
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    report: dict[str, Any] | None = None
    error: str | None = None
    products: list[str] | None = None  # an upload job: the product ids its files were given
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_dict(self) -> dict[str, Any]:
        frac = None
        if self.total:
            frac = round(min(1.0, self.done / self.total), 4)
        elif self.status == "done":
            frac = 1.0
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "total": self.total,
            "done": self.done,
            "progress": frac,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "report": self.report,
            "error": self.error,
            "products": self.products,
        }


ProgressFactory = Callable[[str, int | None], Callable[[int], None]]


class JobManager:
    def __init__(self, keep: int = 200, on_finish: Callable[[ApiJob], None] | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalens-job")
        self._jobs: OrderedDict[str, ApiJob] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep
        self._on_finish = on_finish

    def submit(
        self, kind: str, source: str, fn: Callable[[ProgressFactory], Any], products: list[str] | None = None
    ) -> ApiJob:
        job = ApiJob(id=uuid.uuid4().hex[:16], kind=kind, source=source, products=products)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self._keep:
                oldest = next(iter(self._jobs.values()))
                if oldest.status not in TERMINAL:
                    break
                self._jobs.popitem(last=False)
        self._pool.submit(self._run, job, fn)
        return job

    def _run(self, job: ApiJob, fn: Callable[[ProgressFactory], Any]) -> None:
        if job.cancel_event.is_set():
            job.status, job.finished_at = "cancelled", time.time()
            self._finished(job)
            return
        job.status, job.started_at = "running", time.time()

        def progress(_name: str, total: int | None) -> Callable[[int], None]:
            job.total = total

            def tick(n: int) -> None:
                job.done += n
                if job.cancel_event.is_set():
                    raise JobCancelled(job.id)

            return tick

        try:
            result = fn(progress)
            job.report = result.to_dict() if hasattr(result, "to_dict") else result
            job.status = "done"
        except JobCancelled:
            job.status = "cancelled"
        except CatalensError as exc:
            job.status, job.error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a job's bug must not kill the worker
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            job.finished_at = time.time()
            self._finished(job)

    def _finished(self, job: ApiJob) -> None:
        if self._on_finish is not None:
            try:
                self._on_finish(job)
            except Exception:  # noqa: BLE001
                pass

    def get(self, job_id: str) -> ApiJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id!r}")
        return job

    def list(self) -> list[ApiJob]:
        with self._lock:
            return list(reversed(self._jobs.values()))

    def cancel(self, job_id: str) -> ApiJob:
        job = self.get(job_id)
        if job.status in TERMINAL:
            raise ConfigError(f"job {job_id} already {job.status}")
        job.cancel_event.set()
        if job.status == "queued":
            job.status, job.finished_at = "cancelled", time.time()
        return job

    def active(self) -> int:
        return sum(1 for j in self._jobs.values() if j.status not in TERMINAL)

    def shutdown(self) -> None:
        for job in self._jobs.values():
            job.cancel_event.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
