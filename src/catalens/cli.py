"""The ``catalens`` command line: a thin Typer layer over :class:`catalens.Catalog`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from catalens.errors import CatalensError, ConfigError

app = typer.Typer(
    name="catalens",
    help=(
        "Understand e-commerce product photos offline: ingest a catalog, embed it once, "
        "then search, classify and check it.\n\n"
        "Example: catalens ingest shop/labels.csv --id-col id --text-col productDisplayName"
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(
    help="List and inspect the image and text models catalens can use.", no_args_is_help=True
)
app.add_typer(models_app, name="models")

from catalens.cli_common import RAY_HELP, _catalog, _fail, cli_warnings, err, out, state  # noqa: E402


def _show_version(value: bool) -> None:
    if value:
        from catalens import __version__

        typer.echo(f"catalens {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_options(
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="CATALENS_HOME",
            help="Catalog home folder (database, vectors, index). Default ./catalens-home.",
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="CATALENS_DB_URL",
            help="SQLAlchemy database URL, e.g. postgresql+psycopg://u@h/db. Default: SQLite in the home.",
        ),
    ] = None,
    index: Annotated[
        str | None,
        typer.Option(
            "--index",
            envvar="CATALENS_INDEX",
            help="Vector index: faiss (default, in the home) or milvus://...",
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="auto | cpu | cuda | cpu-torch (eager torch instead of ONNX Runtime) | openvino (OpenVINO on"
            " the CPU, bf16 where the CPU has it; needs the openvino extra; embeddings get their own version)."
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_show_version, help="Print the version and exit."),
    ] = False,
) -> None:
    state.home, state.db, state.device, state.index = home, db, device, index


def _print_report(report: Any, as_json: bool, title: str) -> None:
    data = report.to_dict()
    if as_json:
        out.print_json(json.dumps(data))
        return
    table = Table(title=title, show_header=False)
    for key in (
        "status",
        "seen",
        "new_images",
        "already_present",
        "embedded",
        "failed",
        "images_per_s",
        "model",
    ):
        table.add_row(key, str(data[key]))
    if "detected" in data:
        d = data["detected"]
        table.add_row("detected", f"{d['crops']} products in {d['photos']} photos ({d['new_crops']} new)")
    out.print(table)
    if data["failures"]:
        ft = Table(title=f"{len(data['failures'])} failed", show_lines=False)
        ft.add_column("source", overflow="fold")
        ft.add_column("kind")
        ft.add_column("reason", overflow="fold")
        for f in data["failures"][:200]:
            ft.add_row(f["source"], f["kind"], f["reason"])
        out.print(ft)
        if len(data["failures"]) > 200:
            out.print(f"... and {len(data['failures']) - 200} more (see `catalens info --json`)")


@app.command(
    epilog=(
        "Examples:\n\n"
        "  catalens ingest photos/\n\n"
        "  catalens ingest labels.csv --id-col id --text-col productDisplayName\n\n"
        "  catalens ingest items.parquet --image-col image_url --label-col colour --label-col gender\n\n"
        "  catalens ingest https://example.com/a.jpg https://example.com/b.jpg --no-embed"
    )
)
def ingest(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Folders (recursive), manifests (.csv .tsv .jsonl .parquet), .txt URL lists or http(s) URLs."
        ),
    ],
    image_col: Annotated[
        str | None,
        typer.Option(help="Manifest column with the image path or URL (default: image/path/url/...)."),
    ] = None,
    id_col: Annotated[
        str | None, typer.Option(help="Manifest column with the product id (default: id/product_id/sku).")
    ] = None,
    text_col: Annotated[str | None, typer.Option(help="Manifest column with the product title/text.")] = None,
    label_col: Annotated[
        list[str] | None,
        typer.Option(
            help="Label column to keep as a product attribute (repeatable; default: all other columns)."
        ),
    ] = None,
    embed: Annotated[bool, typer.Option("--embed/--no-embed", help="Embed new images right away.")] = True,
    model: Annotated[
        str | None, typer.Option(help="Model to embed with (see `catalens models list`).")
    ] = None,
    allow_private_urls: Annotated[
        bool, typer.Option(help="Allow URLs that resolve to loopback/private/link-local addresses.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ray: Annotated[str | None, typer.Option("--ray", metavar="[ADDRESS]", help=RAY_HELP)] = None,
    allow_empty: Annotated[
        bool,
        typer.Option(help="An empty folder or manifest is a warning, not an error (exit 0 with 0 images)."),
    ] = False,
    detect: Annotated[
        bool,
        typer.Option(
            "--detect",
            help="Also find the products in each photo and store each, cut out, as an image of its own "
            "(linked to its photo and box): user photos become searchable item by item.",
        ),
    ] = False,
) -> None:
    """Add images to the catalog (idempotent by content hash; resumable) and embed them.

    Exit status: 0 when every item went in, 1 when some failed (each is listed with its reason), 2 on a
    usage error (also an empty folder or manifest, unless --allow-empty).
    """
    from catalens.progress import rich_progress

    try:
        cat = _catalog()
        if allow_private_urls:
            cat.settings = cat.settings.with_(allow_private_urls=True)
        with cli_warnings(), rich_progress(err, enabled=not quiet and not as_json) as progress:
            report = cat.ingest(
                sources, image_col=image_col, id_col=id_col, text_col=text_col, label_cols=label_col,
                embed=embed, model=model, progress=progress, ray=ray, allow_empty=allow_empty, detect=detect,
            )  # fmt: skip
    except CatalensError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        err.print(
            "[yellow]interrupted[/yellow]: whole batches already written are kept; run the same command again to resume."
        )
        raise typer.Exit(130) from None
    _print_report(report, as_json, "ingest")
    raise typer.Exit(1 if report.failed else 0)


@app.command(epilog="Examples:\n\n  catalens embed\n\n  catalens embed --model efficientnet-lite2")
def embed(
    model: Annotated[
        str | None, typer.Option(help="Model to embed with (default: the configured default model).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ray: Annotated[str | None, typer.Option("--ray", metavar="[ADDRESS]", help=RAY_HELP)] = None,
) -> None:
    """Embed every stored image that has no vector for the model yet (resumable)."""
    from catalens.progress import rich_progress

    try:
        cat = _catalog()
        with rich_progress(err, enabled=not quiet and not as_json) as progress:
            report = cat.embed(model, progress=progress, ray=ray)
    except CatalensError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/yellow]: run the same command again to resume.")
        raise typer.Exit(130) from None
    _print_report(report, as_json, "embed")
    raise typer.Exit(1 if report.failed else 0)


@app.command(epilog="Examples:\n\n  catalens info\n\n  catalens --home shop-home info --json")
def info(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """Show image counts by status, the models embedded, text-search status, classifiers, events, stored
    QC results, recent jobs and failures."""
    try:
        data = _catalog().info()
    except CatalensError as exc:
        _fail(exc)
    if as_json:
        out.print_json(json.dumps(data, default=str))
        return
    out.print(f"home: {data['home']}\ndatabase: {data['database']} (schema v{data['schema_version']})")
    out.print(
        f"products: {data['products']}  images: " + ", ".join(f"{k}={v}" for k, v in data["images"].items())
    )
    mt = Table(title="embeddings")
    for col in ("model", "version", "dim", "vectors"):
        mt.add_column(col)
    for m in data["models"]:
        mt.add_row(m["model_id"], m["version"], str(m["dim"]), str(m["embeddings"]))
    out.print(mt)
    _print_info_parts(data)
    if data["failures"]:
        ft = Table(title=f"failures ({data['failures_total']})")
        ft.add_column("source", overflow="fold")
        ft.add_column("kind")
        ft.add_column("reason", overflow="fold")
        for f in data["failures"]:
            ft.add_row(f["source"], f["kind"] or "", f["reason"] or "")
        out.print(ft)


def _table(title: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> Table:
    t = Table(title=title)
    for col in cols:
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    return t


_JOB_COUNTS = ("seen", "new_images", "embedded", "failed")


def _print_info_parts(data: dict[str, Any]) -> None:
    """The text-search, classifier, event, QC and job parts of `catalens info`."""

    def failed(key: str) -> bool:
        part = data.get(key)
        if isinstance(part, dict) and "error" in part:
            out.print(f"{key}: could not be read ({part['error']})", highlight=False)
            return True
        return part is None

    if not failed("text_search") and data["text_search"]:
        rows = [
            (t["model"], t["status"], t.get("heldout_recall_at_10"), t.get("trained_at"))
            for t in data["text_search"]
        ]
        out.print(_table("text search", ("model", "status", "held-out R@10", "trained"), rows))
    if not failed("classifiers"):
        if data["classifiers"]:
            rows = [
                (c["name"], c["latest"], c["method"], c["model"], ", ".join(c["fields"]))
                for c in data["classifiers"]
            ]
            out.print(_table("classifiers", ("name", "latest", "method", "model", "fields"), rows))
        else:
            out.print("classifiers: none (catalens classify train NAME --field ...)")
    if not failed("events"):
        ev = data["events"]
        if ev["events"]:
            kinds = ", ".join(f"{k}={v}" for k, v in sorted(ev["by_kind"].items()))
            out.print(
                f"events: {ev['events']} ({kinds}) by {ev['users']} users on {ev['products']} products, "
                f"{ev['first']} .. {ev['last']}"
            )
        else:
            out.print("events: none (catalens events import FILE)")
    if not failed("qc_runs"):
        if data["qc_runs"]:
            rows = [
                (q["profile"], q["images"], ", ".join(f"{k}={v}" for k, v in sorted(q["verdicts"].items())),
                 q["last_run"])
                for q in data["qc_runs"]
            ]  # fmt: skip
            out.print(_table("QC results stored", ("profile", "images", "verdicts", "last run"), rows))
        else:
            out.print("QC results: none (catalens qc --all)")
    jobs = data.get("recent_jobs") or []
    if jobs:
        rows = [
            (j["id"], j["kind"], j["status"],
             ", ".join(f"{k}={v}" for k, v in (j["counts"] or {}).items() if k in _JOB_COUNTS), j["source"])
            for j in jobs
        ]  # fmt: skip
        out.print(_table("recent jobs", ("id", "kind", "status", "counts", "source"), rows))


@app.command(
    epilog=(
        "Examples:\n\n"
        "  catalens export review --format csv --out review.csv\n\n"
        "  catalens export disagreements -c shop --field articleType --format csv --out suspects.csv\n\n"
        "  catalens export predictions --format parquet --out predictions.parquet\n\n"
        "  catalens export qc --profile marketplace-main-image --verdict fail --format jsonl\n\n"
        "  catalens export dedup --format csv --out dups.csv\n\n"
        "  catalens export recommendations -k 20 --max-users 1000 --format parquet --out recs.parquet\n\n"
        "Kinds: predictions (stored by classify --all), review (flagged for review), disagreements (prediction "
        "differs from the product's stored label, most confident first), qc (stored by qc), dedup (images in "
        "duplicate groups), recommendations (top-k per user of the event log). Lists are JSON text in CSV "
        "and Parquet cells."
    )
)
def export(
    kind: Annotated[
        str, typer.Argument(help="predictions | review | disagreements | qc | dedup | recommendations")
    ],
    fmt: Annotated[str, typer.Option("--format", help="csv | jsonl | parquet")] = "csv",
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output file (default: stdout; parquet needs one).")
    ] = None,
    classifier: Annotated[
        str | None, typer.Option("--classifier", "-c", help="Predictions of this classifier only.")
    ] = None,
    field: Annotated[list[str] | None, typer.Option("--field", "-f", help="Only these fields.")] = None,
    profile: Annotated[str | None, typer.Option(help="qc: only this profile.")] = None,
    verdict: Annotated[str | None, typer.Option(help="qc: only this verdict (pass|warn|fail|error).")] = None,
    user: Annotated[
        list[str] | None, typer.Option("--user", "-u", help="recommendations: these users.")
    ] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="recommendations: list length.")] = 10,
    max_users: Annotated[
        int | None, typer.Option(min=1, help="recommendations: at most this many users of the log.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="dedup / recommendations: embedding model.")] = None,
) -> None:
    """Write per-image results (one row per image, per image and field, or per user and rank) as CSV,
    JSON lines or Parquet."""
    from catalens.exports import COLUMNS, KINDS, export_rows, write_rows

    try:
        if kind not in KINDS:
            raise ConfigError(f"unknown export {kind!r}; use one of {', '.join(KINDS)}")
        opts: dict[str, Any] = {}
        if kind in ("predictions", "review", "disagreements"):
            opts = {"classifier": classifier, "fields": field or ()}
        elif kind == "qc":
            opts = {"profile": profile, "verdict": verdict}
        elif kind == "dedup":
            opts = {"model": model}
        else:
            opts = {"users": user or (), "k": k, "max_users": max_users, "model": model}
        cat = _catalog()
        with cli_warnings():
            n = write_rows(export_rows(cat, kind, **opts), fmt, out_path, COLUMNS[kind])
    except CatalensError as exc:
        _fail(exc)
    if out_path is not None:
        err.print(f"{n} {kind} rows -> {out_path}", highlight=False)


@models_app.command("list", epilog="Example:\n\n  catalens models list --json")
def models_list(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """List registered models. Any `timm:NAME`, `open_clip:ARCH/TAG`, `hf:REPO` or `file:PATH` also works."""
    from catalens.models import list_models

    specs = list_models()
    if as_json:
        out.print_json(json.dumps([s.to_dict() for s in specs]))
        return
    table = Table(title="models")
    for col in ("name", "source", "kind", "dim", "input", "description"):
        table.add_column(col, overflow="fold")
    for s in specs:
        d = s.to_dict()
        kind = "text" if d.get("kind") == "text" else ("image+text" if d.get("has_text") else "image")
        size = "x".join(map(str, d.get("input_size") or [])) if d.get("input_size") else "-"
        table.add_row(
            s.name, d.get("source", ""), kind, str(d.get("dim") or "?"), size, d.get("description", "")
        )
    out.print(table)


@models_app.command(
    "info",
    epilog="Examples:\n\n  catalens models info efficientnet-lite0\n\n  catalens models info timm:convnext_tiny.fb_in22k",
)
def models_info(name: Annotated[str, typer.Argument(help="Model name.")]) -> None:
    """Show a model's spec: source, architecture, weights, preprocessing, dimension, text tower."""
    from catalens.models import get_spec

    try:
        spec = get_spec(name)
    except CatalensError as exc:
        _fail(exc)
    out.print_json(json.dumps(spec.to_dict(), default=str))


# Feature packages add their commands here; each module exposes register(app).
FEATURE_CLIS = (
    "catalens.catalog.cli",
    "catalens.search.cli",
    "catalens.classify.cli",
    "catalens.quality.cli",
    "catalens.recommend.cli",
    "catalens.explain.cli",
    "catalens.detect.cli",
    "catalens.api.cli",
    "catalens.maintenance.cli",
)


def _register_features() -> None:
    import importlib

    for name in FEATURE_CLIS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # feature not built yet
            raise
        module.register(app)


_register_features()


def main() -> None:
    from catalens.cli_common import ray_flag_argv

    try:
        app(args=ray_flag_argv(sys.argv[1:]))
    except CatalensError as exc:  # pragma: no cover - commands catch their own
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
