"""CLI: ``catalens events import``, ``catalens recommend``, ``catalens recommend eval``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from catalens.cli_common import _catalog, _fail, deprecated_alias, err, noun_group, out, print_json
from catalens.errors import CatalensError

events_app = typer.Typer(
    help="Shopper events (views, clicks, carts, purchases, likes).", no_args_is_help=True
)


@events_app.command(
    "import",
    epilog=(
        "Examples:\n\n"
        "  catalens events import events.csv\n\n"
        "  catalens events import clicks.jsonl --json\n\n"
        "Columns: user_id, product_id, event (view|click|cart|purchase|like), timestamp "
        "(ISO 8601 or Unix seconds/ms), optional weight and session. Re-importing a file adds nothing twice.\n\n"
        "Events of products not in the catalog are stored (used once the product is ingested) and "
        "reported per row; --skip-unknown leaves them out (also reported per row)."
    ),
)
def events_import(
    file: Annotated[Path, typer.Argument(help="CSV, TSV, JSONL or Parquet events file.")],
    skip_unknown: Annotated[
        bool, typer.Option("--skip-unknown", help="Leave out events of products not in the catalog.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report.")] = False,
) -> None:
    """Import events; malformed rows are reported per row and skipped, the rest is stored."""
    try:
        with _catalog() as cat:
            report = cat.import_events(file, skip_unknown=skip_unknown)
    except CatalensError as exc:
        _fail(exc)
    data = report.to_dict()
    if as_json:
        print_json(data)
    else:
        out.print(
            f"seen {data['seen']}  inserted {data['inserted']}  duplicates {data['duplicates']}  "
            f"new users {data['new_users']}  failed {data['n_failed']}  warnings {data['n_warnings']}  "
            f"skipped {data['n_skipped']}"
        )
        for kind, rows in (
            ("failed", report.failed),
            ("warning", report.warnings),
            ("skipped", report.skipped),
        ):
            for r in rows[:50]:
                who = f" user={r.user_id} product={r.product_id}" if r.user_id or r.product_id else ""
                err.print(f"row {r.row}: {kind}: {r.reason}{who}", highlight=False)
            if len(rows) > 50:
                err.print(f"... and {len(rows) - 50} more {kind} rows (use --json)")
        if data["seen"] == 0:
            err.print(f"{file}: no events in the file")
    if report.failed or data["seen"] == 0:
        raise typer.Exit(1)


def _print_result(res: Any, as_json: bool) -> None:
    if as_json:
        print_json(res.to_dict())
        return
    from rich.table import Table

    who = f"user {res.user}" if res.user is not None else f"products {', '.join(res.products)}"
    if res.note:
        err.print(f"note: {res.note}", highlight=False)
    fallback = f" (fallback: {res.fallback}; score = popularity)" if res.fallback else ""
    table = Table(title=f"{res.recommender} recommendations for {who}{fallback}")
    table.add_column("#", justify="right")
    table.add_column("product")
    table.add_column("title", overflow="fold")
    table.add_column("score", justify="right")
    table.add_column("reason", overflow="fold")
    for n, r in enumerate(res.items, 1):
        table.add_row(str(n), r.product_id, r.title or "", f"{r.score:.3f}", r.reason)
    out.print(table)


def recommend(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Shopper id.")] = None,
    products: Annotated[
        str | None,
        typer.Option("--products", "-p", help="Comma-separated product ids (anonymous session/basket)."),
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=1000, help="Number of recommendations.")] = 20,
    where: Annotated[
        str | None, typer.Option(help="Attribute filter as in search, e.g. \"gender = 'Women'\".")
    ] = None,
    exclude: Annotated[
        str | None, typer.Option(help="Comma-separated product ids never to recommend.")
    ] = None,
    recommender: Annotated[
        str,
        typer.Option(
            "--recommender", "-r", help="hybrid | visual | item2item | cf | attributes | popular | random"
        ),
    ] = "hybrid",
    diversity: Annotated[str | None, typer.Option(help="interests (default) | mmr | none")] = None,
    max_per_category: Annotated[
        int | None, typer.Option(help="At most this many items per category.")
    ] = None,
    include_out_of_stock: Annotated[bool, typer.Option(help="Also recommend out-of-stock products.")] = False,
    model: Annotated[str | None, typer.Option(help="Embedding model (default: the configured one).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Recommend products for a shopper or for a list of products, each with a score and a reason."""
    try:
        if (user is None) == (products is None):
            from catalens.errors import ConfigError

            raise ConfigError("give exactly one of --user or --products")
        plist = [p.strip() for p in products.split(",") if p.strip()] if products is not None else None
        ex = [p.strip() for p in exclude.split(",") if p.strip()] if exclude else []
        with _catalog() as cat:
            res = cat.recommend(
                user,
                plist,
                k=k,
                recommender=recommender,
                where=where,
                exclude=ex,
                include_out_of_stock=include_out_of_stock,
                diversity=diversity,
                max_per_category=max_per_category,
                model=model,
            )
    except CatalensError as exc:
        _fail(exc)
    _print_result(res, as_json)


def recommend_eval(
    events: Annotated[
        Path | None, typer.Argument(help="Events file to evaluate on (default: the stored event log).")
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=200, help="List length for Recall/NDCG.")] = 10,
    recommender: Annotated[
        list[str] | None, typer.Option("--recommender", "-r", help="Recommenders to compare (repeatable).")
    ] = None,
    holdout: Annotated[int, typer.Option(min=1, help="Last purchases held out per user.")] = 1,
    max_users: Annotated[
        int | None, typer.Option(help="Evaluate a random sample of this many users.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Embedding model (default: the configured one).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Leave-last-out evaluation: every recommender beside popularity and random, in one table."""
    try:
        names = list(recommender) if recommender else None
        if names:
            names = list(dict.fromkeys(["random", "popular", *names]))
        with _catalog() as cat:
            report = cat.recommend_eval(
                events, recommenders=names, k=k, n_holdout=holdout, max_users=max_users, model=model
            )
    except CatalensError as exc:
        _fail(exc)
    if as_json:
        print_json(report.to_dict())
        return
    from rich.table import Table

    table = Table(
        title=(
            f"leave-last-out, {report.users} users, {report.held_out} held-out purchases "
            f"({report.cold_held_out} of items without training events), {report.items} items"
        )
    )
    for col in (
        "recommender",
        f"Recall@{k}",
        f"NDCG@{k}",
        "coverage",
        "diversity",
        "recall warm",
        "recall cold",
        "ms/user",
    ):
        table.add_column(col, justify="left" if col == "recommender" else "right")
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    for r in report.rows:
        table.add_row(
            r.recommender, fmt(r.recall), fmt(r.ndcg), fmt(r.coverage), fmt(r.diversity),
            fmt(r.recall_warm), fmt(r.recall_cold), f"{r.ms_per_user:.2f}",
        )  # fmt: skip
    out.print(table)


K = Annotated[int, typer.Option("-k", "--k", min=1, max=1000, help="Number of recommendations.")]
WHERE = Annotated[str | None, typer.Option(help="Attribute filter as in search.")]
EXCLUDE = Annotated[str | None, typer.Option(help="Comma-separated product ids never to recommend.")]
RECOMMENDER = Annotated[str, typer.Option("--recommender", "-r", help="See catalens recommend query --help.")]
JSON = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def recommend_user(
    user: Annotated[str, typer.Argument(help="Shopper id.")],
    k: K = 20,
    where: WHERE = None,
    exclude: EXCLUDE = None,
    recommender: RECOMMENDER = "hybrid",
    as_json: JSON = False,
) -> None:
    """Recommendations for a shopper from the images they viewed and bought."""
    _by_verb(
        user=user, products=None, k=k, where=where, exclude=exclude, recommender=recommender, as_json=as_json
    )


def recommend_items(
    products: Annotated[list[str], typer.Argument(help="Product ids (an anonymous session or basket).")],
    k: K = 20,
    where: WHERE = None,
    exclude: EXCLUDE = None,
    recommender: RECOMMENDER = "hybrid",
    as_json: JSON = False,
) -> None:
    """Recommendations for a list of products (what goes with these, more like these)."""
    _by_verb(
        user=None,
        products=",".join(products),
        k=k,
        where=where,
        exclude=exclude,
        recommender=recommender,
        as_json=as_json,
    )  # noqa: E501


def _by_verb(**query: Any) -> None:
    """The flag form (``recommend query``) with the verbs' few options; the rest at their defaults."""
    recommend(**query, diversity=None, max_per_category=None, include_out_of_stock=False, model=None)


def register(app: typer.Typer) -> None:
    app.add_typer(events_app, name="events")
    group = noun_group(
        app,
        "recommend",
        "Personalised recommendations and their evaluation: `catalens recommend user|items|query|eval`."
        "\n\nExample: catalens recommend user u42 -k 10   (= catalens recommend --user u42 -k 10)",
        default="query",
    )
    group.command(
        "query",
        epilog=(
            "Examples:\n\n"
            "  catalens recommend --user u42\n\n"
            "  catalens recommend --user u42 -k 10 --where \"gender = 'Women'\" --json\n\n"
            "  catalens recommend --products 1563,1580 --recommender item2item\n\n"
            "  catalens recommend --user u42 --max-per-category 3 --exclude 1563"
        ),
    )(recommend)
    group.command(
        "user",
        epilog="Examples:\n\n  catalens recommend user u42\n\n  catalens recommend user u42 -k 10 --json",
    )(recommend_user)
    group.command(
        "items",
        epilog="Examples:\n\n  catalens recommend items 1563 1580\n\n  catalens recommend items 1563 -r item2item --json",
    )(recommend_items)
    epilog_eval = (
        "Examples:\n\n"
        "  catalens recommend eval events.csv\n\n"
        "  catalens recommend eval --max-users 2000 --json\n\n"
        "  catalens recommend eval events.parquet -r visual -r hybrid -k 20"
    )
    group.command("eval", epilog=epilog_eval)(recommend_eval)
    deprecated_alias(app, "recommend-eval", "recommend eval", recommend_eval)
