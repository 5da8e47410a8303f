"""Connection-level database failures become :class:`DatabaseUnavailableError`, naming the database.

A server that is down, restarts or refuses the login mid-job surfaces as a driver error
(``psycopg.OperationalError``, SQLite's "unable to open database file") deep in SQLAlchemy. One
``handle_error`` listener on every engine turns those into a typed catalens error whose message
names the database (password hidden) and says what to do, so the CLI prints one clear line instead
of a traceback. Statement errors (constraint violations, bad SQL) are left as they are.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.exc import OperationalError

from catalens.errors import DatabaseUnavailableError

_INSTALLED = False


def _translate(ctx: ExceptionContext) -> BaseException | None:
    exc = ctx.sqlalchemy_exception
    connecting = ctx.connection is None
    if not (ctx.is_disconnect or isinstance(exc, OperationalError) and connecting):
        return None
    engine = ctx.engine
    name = engine.url.render_as_string(hide_password=True) if engine is not None else "(unknown)"
    cause = str(ctx.original_exception).strip().splitlines()[0] if str(ctx.original_exception).strip() else ""
    cause = cause or type(ctx.original_exception).__name__
    if connecting:
        reason = f"cannot connect ({cause})"
    else:
        reason = (
            f"the connection was lost ({cause}); the server stopped or restarted. The transaction in "
            "progress was rolled back and whole batches already committed are kept: run the job again "
            "to resume"
        )
    return DatabaseUnavailableError(name, reason)


def install() -> None:
    """Listen on every engine (idempotent)."""
    global _INSTALLED
    if not _INSTALLED:
        event.listen(Engine, "handle_error", _translate)
        _INSTALLED = True


install()
