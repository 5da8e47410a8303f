"""CLI commands of the maintenance package: ``doctor``, ``backup``, ``restore``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from catalens.cli_common import _fail, err, out, print_json, state
from catalens.errors import CatalensError

DOCTOR_EPILOG = (
    "Examples:\n\n"
    "  catalens doctor\n\n"
    "  catalens --home shop-home doctor --json\n\n"
    "  catalens doctor --repair\n\n"
    "  catalens doctor --full   (re-encode every stored vector, PRAGMA integrity_check)\n\n"
    "Exit status: 0 sound (warnings allowed), 1 problems found (or left after --repair), 2 usage error."
)


def _settings() -> Any:
    from catalens.config import load_settings

    return load_settings(state.home, db_url=state.db, device=state.device, index_uri=state.index)


def _print_doctor(data: dict[str, Any]) -> None:
    from rich.table import Table

    out.print(f"home: {data['home']}\ndatabase: {data['database']}", highlight=False)
    counts = data.get("counts") or {}
    if counts:
        out.print(
            f"products: {counts.get('products')}  images: ok={counts.get('images_ok')} "
            f"failed={counts.get('images_failed')}",
            highlight=False,
        )
        mt = Table(title="vectors")
        for col in ("model", "store", "records", "vector rows", "re-encoded", "min cosine"):
            mt.add_column(col)
        for m in counts.get("models", []):
            mt.add_row(
                f"{m['model']} ({m['version']})", m["store"], str(m["records"]), str(m["vector_rows"]),
                str(m["re_encoded"]), "-" if m["min_cosine"] is None else f"{m['min_cosine']:.6f}",
            )  # fmt: skip
        out.print(mt)
    for line in data.get("repaired", []):
        out.print(f"[green]repaired[/green]: {line}", highlight=False, soft_wrap=True)
    for f in data["findings"]:
        colour = "red" if f["severity"] == "error" else "yellow"
        out.print(
            f"[{colour}]{f['severity']}[/{colour}] [{f['check']}] {f['message']}\n    -> {f['fix']}",
            highlight=False,
            soft_wrap=True,
        )
    for line in data.get("not_repaired", []):
        out.print(f"[red]not repaired[/red]: {line}", highlight=False, soft_wrap=True)
    verdict = "[green]sound[/green]" if data["ok"] else f"[red]{data['errors']} problem(s)[/red]"
    out.print(f"{verdict}  ({data['warnings']} warning(s), {data['seconds']} s)")


def register(app: typer.Typer) -> None:
    @app.command(epilog=DOCTOR_EPILOG)
    def doctor(
        repair: Annotated[
            bool, typer.Option("--repair", help="Rebuild what can be rebuilt (index, vectors from images).")
        ] = False,
        sample: Annotated[
            int, typer.Option(help="Stored vectors per model re-encoded and compared.", min=0)
        ] = 64,
        full: Annotated[
            bool, typer.Option("--full", help="Re-encode every stored vector; full SQLite integrity_check.")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    ) -> None:
        """Check a catalog: database integrity, counts, stored vectors against fresh encodings, index
        against the database, orphan files. Exits 1 on problems, each with what to do."""
        from catalens.maintenance.doctor import diagnose
        from catalens.maintenance.doctor import repair as do_repair

        try:
            settings = _settings()
            run = do_repair if repair else diagnose
            report = run(settings, sample=sample, full=full)
        except CatalensError as exc:
            _fail(exc)
        data = report.to_dict()
        if as_json:
            print_json(data)
        else:
            _print_doctor(data)
        raise typer.Exit(0 if report.ok else 1)

    @app.command(
        epilog=(
            "Examples:\n\n  catalens backup /backups/shop-2024-06-01\n\n"
            "  catalens --home shop-home backup /mnt/usb/shop --json\n\n"
            "Safe while a job is writing. PostgreSQL catalog: use pg_dump for the database "
            "(this copies the home's files)."
        )
    )
    def backup(
        dest: Annotated[Path, typer.Argument(help="New or empty folder to write the backup to.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    ) -> None:
        """Copy the catalog (database snapshot first, then vectors, index, classifiers...) online."""
        from catalens.maintenance.backup import backup as do_backup

        try:
            report = do_backup(_settings(), dest)
        except CatalensError as exc:
            _fail(exc)
        _print_copy(report.to_dict(), as_json, "backup")

    @app.command(
        epilog=(
            "Examples:\n\n  catalens --home restored-home restore /backups/shop-2024-06-01\n\n"
            "  catalens restore /backups/shop --force   (moves the current home aside first)"
        )
    )
    def restore(
        src: Annotated[Path, typer.Argument(help="A folder written by `catalens backup`.")],
        force: Annotated[
            bool, typer.Option("--force", help="Restore over a non-empty home (its content is moved aside).")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    ) -> None:
        """Bring a backup back into the home (refuses a non-empty home without --force)."""
        from catalens.maintenance.backup import restore as do_restore

        try:
            report = do_restore(src, _settings(), force=force)
        except CatalensError as exc:
            _fail(exc)
        _print_copy(report.to_dict(), as_json, "restore")


def _print_copy(data: dict[str, Any], as_json: bool, what: str) -> None:
    if as_json:
        print_json(data)
        return
    out.print(
        f"{what}: {data['source']} -> {data['destination']}: {data['files']} files, "
        f"{data['bytes'] / 1e6:.1f} MB in {data['seconds']} s",
        highlight=False,
        soft_wrap=True,
    )
    counts = data.get("counts") or {}
    if counts:
        models = ", ".join(f"{m['model']}={m['embeddings']}" for m in counts.get("models", []))
        out.print(f"products: {counts['products']}  images: {counts['images']}  embeddings: {models}")
    for note in data.get("notes", []):
        err.print(f"[yellow]note[/yellow]: {note}", highlight=False, soft_wrap=True)
