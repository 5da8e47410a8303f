"""Rich progress bars with rate and ETA, handed to core jobs as a callback factory."""

from __future__ import annotations

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
    """Yield a factory ``make(label, total) -> advance(n)``; shows nothing when disabled."""
    if not enabled:
        yield lambda label, total: lambda n: None
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
        console=console or Console(stderr=True),
        transient=False,
    )

    def make(label: str, total: int | None) -> Callable[[int], None]:
        task = progress.add_task(label, total=total)
        return lambda n: progress.advance(task, n)

    with progress:
        yield make
