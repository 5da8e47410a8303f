"""``catalens qc``: check images against a quality / compliance profile."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from catalens.cli_common import RAY_HELP, _catalog, _fail, cli_warnings, err, out, print_json
from catalens.errors import CatalensError, ConfigError

EPILOG = (
    "Examples:\n\n"
    "  catalens qc photos/\n\n"
    "  catalens qc --all --profile marketplace-main-image --report qc-report/\n\n"
    "  catalens qc a.jpg b.png --json\n\n"
    "  catalens qc --all --csv qc.csv --fail-on warn     # CI gate: exit 1 on any warning\n\n"
    "  catalens qc shop/ --profile my-rules.yaml          # your own YAML profile\n\n"
    "  catalens qc --list-checks\n\n"
    "Profiles: general, marketplace-main-image, marketplace-secondary, HOME/profiles/NAME.yaml (HOME = the catalog home), or a path.\n\n"
    "Exit status: 0 = gate passed, 1 = gate failed (see --fail-on), 2 = usage error (also a folder "
    "without images, unless --allow-empty)."
)


def register(app: typer.Typer) -> None:
    @app.command(epilog=EPILOG)
    def qc(
        paths: Annotated[list[str] | None, typer.Argument(help="Image files or folders (recursive).")] = None,
        all_images: Annotated[
            bool, typer.Option("--all", help="Check every image in the catalogue.")
        ] = False,
        profile: Annotated[str, typer.Option(help="Profile name or YAML path.")] = "general",
        as_json: Annotated[bool, typer.Option("--json", help="Print all results as JSON on stdout.")] = False,
        csv_path: Annotated[Path | None, typer.Option("--csv", help="Write one CSV row per image.")] = None,
        report: Annotated[
            Path | None, typer.Option(help="Write an HTML report (index.html) into this folder.")
        ] = None,
        fail_on: Annotated[
            str,
            typer.Option(
                help="error (any fail, or a check that could not run) | warn (any warn, fail or error) | never."
            ),
        ] = "error",
        store: Annotated[
            bool, typer.Option("--store/--no-store", help="Save results in the catalogue.")
        ] = True,
        list_checks: Annotated[bool, typer.Option("--list-checks", help="List the checks and exit.")] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
        ray: Annotated[str | None, typer.Option("--ray", metavar="[ADDRESS]", help=RAY_HELP)] = None,
        allow_empty: Annotated[
            bool, typer.Option(help="A folder without images is a warning, not an error (exit 2).")
        ] = False,
    ) -> None:
        """Check photos for blur, exposure, size, background, borders, text, watermarks, NSFW,
        duplicates and file problems, with reasons, against a policy profile."""
        from catalens.progress import rich_progress

        try:
            if list_checks:
                _print_checks(as_json)
                return
            if fail_on not in ("error", "fail", "warn", "never"):
                raise ConfigError(f"--fail-on must be error, warn or never, not {fail_on!r}")
            if not paths and not all_images:
                raise ConfigError("give image files/folders or --all (see catalens qc --help)")
            cat = _catalog()
            with cli_warnings(), rich_progress(err, enabled=not quiet and not as_json) as progress:
                rep = cat.qc(
                    paths or [], all_images=all_images, profile=profile, store=store, progress=progress,
                    ray=ray, allow_empty=allow_empty,
                )  # fmt: skip
            from catalens.quality.report import write_csv, write_html

            if csv_path:
                write_csv(rep, csv_path)
            if report:
                write_html(rep, report / "index.html", title=f"catalens qc - {rep.profile}")
            if as_json:
                print_json(rep.to_dict())
            else:
                _print_summary(rep, csv_path, report)
        except CatalensError as exc:
            _fail(exc)
        raise typer.Exit(rep.exit_code(fail_on))


def _print_checks(as_json: bool) -> None:
    from catalens.quality.profiles import builtin_profiles
    from catalens.quality.registry import list_checks

    data = {
        n: {"scope": c.scope, "unit": c.unit, "params": c.params, "doc": (c.__doc__ or "").strip()}
        for n, c in list_checks().items()
    }
    if as_json:
        print_json({"checks": data, "profiles": builtin_profiles()})
        return
    from rich.table import Table

    t = Table(title="quality checks")
    for col in ("check", "scope", "score unit", "default parameters"):
        t.add_column(col, overflow="fold")
    for n, d in data.items():
        t.add_row(
            n,
            d["scope"],
            d["unit"],
            ", ".join(f"{k}={v}" for k, v in d["params"].items() if k != "promo_words"),
        )
    out.print(t)
    out.print(f"profiles: {', '.join(builtin_profiles())}")


def _print_summary(rep, csv_path: Path | None, report: Path | None) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    c = rep.counts
    out.print(
        f"profile [bold]{rep.profile}[/bold]: {len(rep.images)} images - "
        f"[green]{c['pass']} pass[/green], [yellow]{c['warn']} warn[/yellow], [red]{c['fail']} fail[/red], "
        f"[magenta]{c['error']} error[/magenta] "
        f"({c['file_errors']} file errors) in {rep.seconds:.1f}s"
    )
    issues = [im for im in rep.images if im.verdict != "pass"]
    if issues:
        t = Table(show_lines=False)
        t.add_column("verdict")
        t.add_column("source", overflow="fold")
        t.add_column("issues", overflow="fold")
        for im in sorted(issues, key=lambda i: i.verdict not in ("fail", "error"))[:100]:
            t.add_row(im.verdict, im.source, "; ".join(f"{r.check}: {r.reason}" for r in im.issues))
        out.print(t)
        if len(issues) > 100:
            out.print(f"... and {len(issues) - 100} more (use --json, --csv or --report)")
    if csv_path:
        out.print(f"CSV: {csv_path}")
    if report:
        out.print(f"HTML report: {report / 'index.html'}")
