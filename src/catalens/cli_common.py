"""Shared pieces of the CLI: consoles, global options state, catalog opening, error exit.

Feature modules (``catalens.<feature>.cli``) import from here and expose
``register(app: typer.Typer) -> None``; ``catalens.cli`` calls each one.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from catalens.errors import CatalensError, CatalensWarning

out = Console()
err = Console(stderr=True)


class _State:
    home: Path | None = None
    db: str | None = None
    device: str | None = None
    index: str | None = None


state = _State()


def _catalog() -> Any:
    from catalens.core import Catalog

    return Catalog.open(state.home, db_url=state.db, device=state.device, index_uri=state.index)


def _fail(exc: CatalensError) -> NoReturn:
    # one logical line, never broken by Rich: the terminal wraps it, and logs and scripts can
    # grep the whole message whatever the terminal width or the length of the paths in it
    err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


RAY_HELP = (
    "Run on a Ray cluster (pip install 'catalens[ray]'): --ray alone (or auto) joins the running "
    "cluster (ray start --head), or give its address: --ray HOST:6379 | ray://HOST:10001."
)


def ray_flag_argv(argv: list[str]) -> list[str]:
    """A bare ``--ray`` (last, or followed by another option) means ``--ray auto``."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg == "--ray" and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out.append("auto")
    return out


def print_json(data: Any) -> None:
    """Stable JSON on stdout (no colour, no wrapping) for scripts."""
    typer.echo(json.dumps(data, default=str, ensure_ascii=False, indent=2))


@contextmanager
def cli_warnings() -> Iterator[None]:
    """Print every :class:`CatalensWarning` raised inside as one ``warning: ...`` line on stderr (even
    when the command then exits); other warnings go on to Python's usual handling."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CatalensWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, CatalensWarning):
                    err.print(f"[yellow]warning:[/yellow] {w.message}", highlight=False, soft_wrap=True)
    for w in caught:
        if not issubclass(w.category, CatalensWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
