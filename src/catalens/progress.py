"""Progress for long steps: Rich bars with rate and ETA on a terminal, plain periodic lines when the
output is piped or logged (``qc ... | tee log``), and a heartbeat for steps without a count.

Counted jobs get a callback factory ``make(label, total) -> advance(n)``; steps without a count
(training, fitting) use :func:`step`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class _Rate(TextColumn):
    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # type: ignore[no-untyped-def]
        speed = task.finished_speed or task.speed
        from rich.text import Text

        return Text(f"{speed:6.1f} img/s" if speed else "   -- img/s", style="cyan")


@contextmanager
def rich_progress(
    console: Console | None = None, enabled: bool = True
) -> Iterator[Callable[[str, int | None], Callable[[int], None]]]:
    """Yield a factory ``make(label, total) -> advance(n)``; shows nothing when disabled. On a
    console that is not a terminal it prints a plain line every ``CATALENS_PROGRESS_EVERY`` seconds
    (default 5) and one when a task ends, instead of a live bar."""
    if not enabled:
        yield lambda label, total: lambda n: None
        return
    console = console or Console(stderr=True)
    if not console.is_terminal:
        plain = PlainProgress(console)
        try:
            yield plain.make
        finally:
            plain.finish()
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _Rate(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )

    def make(label: str, total: int | None) -> Callable[[int], None]:
        task = progress.add_task(label, total=total)
        return lambda n: progress.advance(task, n)

    with progress:
        yield make


def _every() -> float:
    try:
        return max(0.0, float(os.environ.get("CATALENS_PROGRESS_EVERY", "5")))
    except ValueError:
        return 5.0


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class PlainProgress:
    """Counted progress as plain lines (``qc: 120/942 12.7% 8.1 img/s elapsed 0:15 eta 1:41``), at most
    one per task every ``every`` seconds, and a last line per task when the job ends."""

    def __init__(self, console: Console, every: float | None = None) -> None:
        self.console = console
        self.every = _every() if every is None else every
        self.tasks: list[dict[str, object]] = []

    def _line(self, t: dict[str, object], now: float) -> str:
        done, total, label = int(t["done"]), t["total"], t["label"]  # type: ignore[call-overload]
        took = now - float(t["start"])  # type: ignore[arg-type]
        rate = done / took if took > 0 else 0.0
        text = f"{label}: {done}" + (f"/{total} {100 * done / total:.1f}%" if total else "")
        text += f" {rate:.1f} img/s elapsed {_clock(took)}"
        if total and rate > 0 and done < int(total):  # type: ignore[call-overload]
            text += f" eta {_clock((int(total) - done) / rate)}"  # type: ignore[call-overload]
        return text

    def make(self, label: str, total: int | None) -> Callable[[int], None]:
        now = time.monotonic()
        t: dict[str, object] = {"label": label, "total": total, "done": 0, "start": now, "shown": now}
        self.tasks.append(t)
        self.console.print(f"{label}: started" + (f", {total} to do" if total else ""), highlight=False)

        def advance(n: int) -> None:
            t["done"] = int(t["done"]) + n  # type: ignore[call-overload]
            now = time.monotonic()
            if now - float(t["shown"]) >= self.every:  # type: ignore[arg-type]
                t["shown"] = now
                self.console.print(self._line(t, now), highlight=False)

        return advance

    def finish(self) -> None:
        now = time.monotonic()
        for t in self.tasks:
            self.console.print(self._line(t, now) + " - done", highlight=False)


@contextmanager
def step(
    label: str, console: Console | None = None, enabled: bool = True, every: float | None = None
) -> Iterator[None]:
    """A step without a count (training, fitting): ``label: running, 0:05 elapsed`` after ``every``
    seconds (``CATALENS_PROGRESS_EVERY``, default 5), then at doubling intervals up to a minute while
    it runs, and ``label: done in 0:42`` at the end.
    Steps shorter than the interval print only the last line."""
    if not enabled:
        yield
        return
    console = console or Console(stderr=True)
    period = _every() if every is None else every
    start = time.monotonic()
    stop = threading.Event()

    def beat() -> None:
        wait = period
        while not stop.wait(wait):
            console.print(f"{label}: running, {_clock(time.monotonic() - start)} elapsed", highlight=False)
            wait = min(2 * wait, max(period, 60.0))  # 5, 10, 20, 40, 60, 60 ... s: few lines on long steps

    thread = threading.Thread(target=beat, name=f"progress-{label}", daemon=True) if period > 0 else None
    if thread:
        thread.start()
    ok = False
    try:
        yield
        ok = True
    finally:
        stop.set()
        if thread:
            thread.join()
        took = _clock(time.monotonic() - start)
        console.print(f"{label}: {'done in' if ok else 'stopped after'} {took}", highlight=False)
