"""Shared pieces of the CLI: consoles, global options state, catalog opening, error exit.

Feature modules (``catalens.<feature>.cli``) import from here and expose
``register(app: typer.Typer) -> None``; ``catalens.cli`` calls each one.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

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


# ---- noun-verb groups ----------------------------------------------------------------------------
class DefaultCommandGroup(TyperGroup):
    """A noun group (``catalens classify train|eval|run|...``) whose first argument, when it names no
    subcommand (a path, an option), goes to ``default_command``: ``catalens classify photo.jpg`` is
    ``catalens classify run photo.jpg``. ``--help`` alone shows the group's help."""

    default_command = ""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def noun_group(app: typer.Typer, name: str, help_text: str, default: str) -> typer.Typer:
    """Add the group ``catalens <name>`` whose default verb is ``default``; returns it for its verbs."""
    cls = type(f"{name.title()}Group", (DefaultCommandGroup,), {"default_command": default})
    group = typer.Typer(cls=cls, help=help_text, no_args_is_help=True, rich_markup_mode="markdown")
    app.add_typer(group, name=name)
    return group


def deprecated_alias(app: typer.Typer, old: str, new: str, fn: Callable[..., Any], epilog: str = "") -> None:
    """Keep ``catalens <old>`` working for one release as a hidden command that prints a deprecation
    notice (on stderr) and then runs ``catalens <new>``."""

    @functools.wraps(fn)
    def alias(*args: Any, **kwargs: Any) -> Any:
        err.print(
            f"[yellow]deprecated:[/yellow] `catalens {old}` is now `catalens {new}`; the old name goes in "
            "the next release",
            highlight=False,
            soft_wrap=True,
        )
        return fn(*args, **kwargs)

    app.command(old, hidden=True, epilog=epilog or f"Example:\n\n  catalens {new} --help")(alias)
