"""``catalens qc``: check images against a quality / compliance profile, and manage accepted
exceptions (``catalens qc dismiss | undismiss | exceptions``).

``catalens qc PATHS...`` is ``catalens qc check PATHS...``: a first word that names no subcommand
(a path, an option) goes to ``check``, so the command reads as it always did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

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
    "without images, unless --allow-empty).\n\n"
    "Accepted exceptions: a check dismissed on an image (catalens qc dismiss IMAGE CHECK) reads as "
    "pass (counted as dismissed) in the summary, --json, --csv, --report, the gate and catalens export qc; "
    "see catalens qc exceptions. `catalens qc PATHS` is `catalens qc check PATHS` (write ./dismiss for "
    "a folder named like a subcommand)."
)
IMAGE_HELP = (
    "The image: its sha256 (or a unique prefix of 6+ hex characters), a file, the source of a "
    "catalog image or of a stored QC result, or a product id with one image."
)


class QCGroup(TyperGroup):
    """``catalens qc``: a first argument that names no subcommand (a path, an option, nothing)
    goes to ``check``; ``catalens qc --help`` is the check's help (it lists the subcommands)."""

    default_command = "check"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


qc_app = typer.Typer(
    cls=QCGroup,
    help="Check photos against a quality profile (catalens qc PATHS | --all), and dismiss false positives.",
    rich_markup_mode="markdown",
)


def register(app: typer.Typer) -> None:
    app.add_typer(qc_app, name="qc")


@qc_app.command("check", epilog=EPILOG)
def qc_check(
    paths: Annotated[list[str] | None, typer.Argument(help="Image files or folders (recursive).")] = None,
    all_images: Annotated[bool, typer.Option("--all", help="Check every image in the catalog.")] = False,
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
    store: Annotated[bool, typer.Option("--store/--no-store", help="Save results in the catalog.")] = True,
    list_checks: Annotated[bool, typer.Option("--list-checks", help="List the checks and exit.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ray: Annotated[str | None, typer.Option("--ray", metavar="[ADDRESS]", help=RAY_HELP)] = None,
    allow_empty: Annotated[
        bool, typer.Option(help="A folder without images is a warning, not an error (exit 2).")
    ] = False,
    exceptions: Annotated[
        bool,
        typer.Option(
            "--exceptions/--no-exceptions",
            help="Apply accepted exceptions (catalens qc dismiss): a dismissed check reads as pass.",
        ),
    ] = True,
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
                ray=ray, allow_empty=allow_empty, exceptions=exceptions,
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


@qc_app.command(
    "summary",
    epilog=(
        "Examples:\n\n"
        "  catalens qc summary\n\n"
        "  catalens qc summary --profile marketplace-main-image --worst 50\n\n"
        "  catalens qc summary --check text --json\n\n"
        "The stored results of one profile (default: the one run on most images; see catalens qc --all): "
        "counts by verdict and by check, and the worst images with their reasons and products - what "
        "the web page's quality dashboard shows. Dismissed checks count as passing."
    ),
)
def qc_summary(
    profile: Annotated[
        str | None, typer.Option(help="Profile name (default: the one run on most images).")
    ] = None,
    worst: Annotated[int, typer.Option(min=0, max=1000, help="List this many of the worst images.")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many of the worst images.")] = 0,
    check: Annotated[str | None, typer.Option(help="Only images where this check does not pass.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Counts and the worst images of the stored quality results."""
    try:
        with _catalog() as cat:
            data = cat.qc_summary(profile, worst=worst, offset=offset, check=check)
    except CatalensError as exc:
        _fail(exc)
    if as_json:
        print_json(data)
        return
    if data["profile"] is None:
        out.print("no stored quality results (catalens qc --all)")
        return
    v = data["verdicts"]
    out.print(
        f"[bold]{data['profile']}[/bold]: {data['images']} images - pass {v['pass']}, warn {v['warn']}, "
        f"fail {v['fail']}, error {v['error']}; {data['dismissed']} dismissed",
        highlight=False,
    )
    from rich.table import Table

    if data["by_issue"]:
        table = Table(title="by check")
        for col in ("check", "fail", "warn", "error"):
            table.add_column(col)
        for row in data["by_issue"]:
            table.add_row(row["check"], str(row["fail"]), str(row["warn"]), str(row["error"]))
        out.print(table)
    if data["worst"]:
        table = Table(
            title=f"worst images ({offset + 1}-{offset + len(data['worst'])} of {data['worst_total']})"
        )
        for col in ("image", "verdict", "products", "reasons"):
            table.add_column(col, overflow="fold")
        for row in data["worst"]:
            reasons = "; ".join(f"{r['check']} {r['verdict']}: {r['reason']}" for r in row["reasons"])
            table.add_row(row["sha256"][:12], row["verdict"], ", ".join(row["products"]), reasons)
        out.print(table)


@qc_app.command(
    "dismiss",
    epilog=(
        "Examples:\n\n"
        "  catalens qc dismiss 3fa9c2 overexposed --note 'white studio background'\n\n"
        "  catalens qc dismiss shop/p0.jpg text\n\n"
        "  catalens qc dismiss 1563 watermark          # product 1563 (one image)\n\n"
        "The dismissal holds for the image's bytes (its sha256) in every profile and every later run; "
        "an error (a check that could not run) is never dismissed. Exit status: 0 = dismissed, "
        "2 = unknown image or check."
    ),
)
def qc_dismiss(
    image: Annotated[str, typer.Argument(help=IMAGE_HELP)],
    check: Annotated[str, typer.Argument(help="The check to dismiss (see catalens qc --list-checks).")],
    note: Annotated[str, typer.Option(help="Why it is a false positive (kept with the dismissal).")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the dismissal as JSON.")] = False,
) -> None:
    """Dismiss a check's warning or failure on an image as a false positive (an accepted exception):
    later qc outputs, stored results and exports read it as pass."""
    from catalens.quality.exceptions import dismiss, resolve_image, stored_verdicts

    try:
        with _catalog() as cat:
            sha = resolve_image(cat.db, image)
            row = dismiss(cat.db, sha, check, note)
            seen = stored_verdicts(cat.db, sha, check)
    except CatalensError as exc:
        _fail(exc)
    hits = [f"{p} ({v})" for p, v in seen if v in ("warn", "fail")]
    if as_json:
        print_json(row | {"stored": [{"profile": p, "verdict": v} for p, v in seen]})
    else:
        out.print(f"dismissed [bold]{check}[/bold] on {sha}", highlight=False)
        if hits:
            out.print(f"stored results that now read pass: {', '.join(hits)}", highlight=False)
    if not hits:
        err.print(
            f"[yellow]warning:[/yellow] no stored result has {check} warning or failing on this image; "
            "the dismissal applies when it does",
            highlight=False,
            soft_wrap=True,
        )


@qc_app.command(
    "undismiss",
    epilog=(
        "Examples:\n\n"
        "  catalens qc undismiss 3fa9c2 overexposed\n\n"
        "  catalens qc undismiss shop/p0.jpg text\n\n"
        "Exit status: 0 = forgotten, 2 = unknown image or no such dismissal."
    ),
)
def qc_undismiss(
    image: Annotated[str, typer.Argument(help=IMAGE_HELP)],
    check: Annotated[str, typer.Argument(help="The dismissed check.")],
) -> None:
    """Forget a dismissal: the check counts again."""
    from catalens.quality.exceptions import resolve_image, undismiss

    try:
        with _catalog() as cat:
            sha = resolve_image(cat.db, image)
            undismiss(cat.db, sha, check)
    except CatalensError as exc:
        _fail(exc)
    out.print(f"{check} on {sha} counts again", highlight=False)


@qc_app.command(
    "exceptions",
    epilog="Examples:\n\n  catalens qc exceptions\n\n  catalens qc exceptions --json",
)
def qc_exceptions(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the accepted exceptions: (image, check) pairs dismissed as false positives, with the
    image's source and products."""
    from catalens.quality.exceptions import list_exceptions

    try:
        with _catalog() as cat:
            rows = list_exceptions(cat.db, images=True)
    except CatalensError as exc:
        _fail(exc)
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no accepted exceptions (catalens qc dismiss IMAGE CHECK)")
        return
    from rich.table import Table

    t = Table(title=f"accepted exceptions ({len(rows)})")
    for col in ("image", "source", "products", "check", "note", "dismissed at"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(
            r["sha256"][:12],
            r["source"] or "",
            ", ".join(r["product_ids"]),
            r["check"],
            r["note"] or "",
            (r["created_at"] or "")[:19],
        )
    out.print(t)


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
    dismissed = f"; {c['dismissed']} dismissed (catalens qc exceptions lists them)" if c["dismissed"] else ""
    out.print(
        f"profile [bold]{rep.profile}[/bold]: {len(rep.images)} images - "
        f"[green]{c['pass']} pass[/green], [yellow]{c['warn']} warn[/yellow], [red]{c['fail']} fail[/red], "
        f"[magenta]{c['error']} error[/magenta] "
        f"({c['file_errors']} file errors){dismissed} in {rep.seconds:.1f}s"
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
