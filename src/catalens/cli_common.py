"""Shared pieces of the CLI: consoles, global options state, catalog opening, error exit.

Feature modules (``catalens.<feature>.cli``) import from here and expose
``register(app: typer.Typer) -> None``; ``catalens.cli`` calls each one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from catalens.errors import CatalensError

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
    err.print(f"[red]error:[/red] {exc}", highlight=False)
    raise typer.Exit(exc.exit_code)


def print_json(data: Any) -> None:
    """Stable JSON on stdout (no colour, no wrapping) for scripts."""
    typer.echo(json.dumps(data, default=str, ensure_ascii=False, indent=2))
