"""``catalens products list | show | update | delete``: the catalog's products from the command line (the
same core methods as the REST API's ``/api/v1/products``)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from catalens.cli_common import _catalog, _fail, cli_warnings, err, out, print_json
from catalens.errors import CatalensError, ConfigError, NotFoundError

products_app = typer.Typer(
    help=(
        "List, show, update and delete the catalog's products (and every image only they show): "
        "`catalens products list|show|update|delete`.\n\nExample: catalens products list --where \"gender = 'Women'\""
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


def register(app: typer.Typer) -> None:
    app.add_typer(products_app, name="products")


def _attrs_text(attrs: dict[str, Any], width: int = 60) -> str:
    text = ", ".join(f"{k}={v}" for k, v in sorted(attrs.items()))
    return text if len(text) <= width else text[: width - 1] + "\u2026"


@products_app.command(
    "list",
    epilog=(
        "Examples:\n\n"
        "  catalens products list\n\n"
        "  catalens products list -q shirt --sort -created --limit 20\n\n"
        "  catalens products list --where \"gender = 'Women' and baseColour in ('Red', 'Pink')\" --json\n\n"
        "Sorts: id, title, created (a leading - reverses)."
    ),
)
def products_list(
    q: Annotated[
        str | None, typer.Option("-q", "--query", help="Id or title contains this (any case).")
    ] = None,
    where: Annotated[
        str | None, typer.Option(help="Filter on attributes, as in search --where (e.g. \"gender = 'Men'\").")
    ] = None,
    sort: Annotated[str, typer.Option(help="id | title | created, - for descending.")] = "id",
    offset: Annotated[int, typer.Option(min=0, help="Skip this many products.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many products.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the page as JSON.")] = False,
) -> None:
    """One page of products with their image count and attributes."""
    try:
        with cli_warnings(), _catalog() as cat:
            page = cat.list_products(q=q, where=where, offset=offset, limit=limit, sort=sort)
    except CatalensError as exc:
        _fail(exc)
    if as_json:
        print_json(page)
        return
    from rich.table import Table

    table = Table(title=f"products {offset + 1}-{offset + len(page['items'])} of {page['total']}")
    for col in ("id", "title", "images", "attributes"):
        table.add_column(col, overflow="fold")
    for p in page["items"]:
        table.add_row(str(p["id"]), p["title"] or "", str(p["image_count"]), _attrs_text(p["attrs"]))
    out.print(table)
    for note in page["warnings"]:
        err.print(f"[yellow]warning:[/yellow] {note}", highlight=False, soft_wrap=True)


@products_app.command(
    "show", epilog="Examples:\n\n  catalens products show 15970\n\n  catalens products show 15970 --json"
)
def products_show(
    product_id: Annotated[str, typer.Argument(help="The product id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the product as JSON.")] = False,
) -> None:
    """A product: title, attributes and its images (sha256, size, source) in position order."""
    try:
        with _catalog() as cat:
            p = cat.product(product_id)
    except CatalensError as exc:
        _fail(exc)
    if as_json:
        print_json(p)
        return
    out.print(f"[bold]{p['id']}[/bold]  {p['title'] or ''}", highlight=False)
    for k, v in sorted(p["attrs"].items()):
        out.print(f"  {k}: {v}", highlight=False)
    for img in p["images"]:
        out.print(
            f"  image {img['sha256']}  {img['width']}x{img['height']}  {img['source']}", highlight=False
        )


@products_app.command(
    "update",
    epilog=(
        "Examples:\n\n"
        "  catalens products update 15970 --title 'Navy Check Shirt'\n\n"
        "  catalens products update 15970 --set baseColour=Navy --set season=Fall\n\n"
        "  catalens products update 15970 --unset usage\n\n"
        '  catalens products update 15970 --attrs \'{"baseColour": "Navy"}\' --replace'
    ),
)
def products_update(
    product_id: Annotated[str, typer.Argument(help="The product id.")],
    title: Annotated[str | None, typer.Option(help="The new title.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="FIELD=VALUE (repeatable).")] = None,
    unset: Annotated[list[str] | None, typer.Option(help="Remove this attribute (repeatable).")] = None,
    attrs: Annotated[str | None, typer.Option(help="Attributes as a JSON object.")] = None,
    replace: Annotated[bool, typer.Option(help="Replace every attribute instead of merging.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the updated product as JSON.")] = False,
) -> None:
    """Change a product's title and attributes (merged into the stored ones unless --replace)."""
    try:
        changes: dict[str, Any] = {}
        if attrs is not None:
            try:
                parsed = json.loads(attrs)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"--attrs is not JSON: {exc}") from exc
            if not isinstance(parsed, dict):
                raise ConfigError('--attrs must be a JSON object, e.g. \'{"baseColour": "Navy"}\'')
            changes.update(parsed)
        for item in set_ or []:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"--set takes FIELD=VALUE, not {item!r}")
            changes[key.strip()] = value
        changes.update({k: None for k in unset or []})
        if title is None and not changes and not replace:
            raise ConfigError("nothing to change: give --title, --set, --unset or --attrs")
        with _catalog() as cat:
            p = cat.update_product(
                product_id, title=title, attrs=changes if changes or replace else None, replace_attrs=replace
            )
    except CatalensError as exc:
        _fail(exc)
    if as_json:
        print_json(p)
    else:
        out.print(f"updated {p['id']}: {_attrs_text(p['attrs'], 200)}", highlight=False, soft_wrap=True)


@products_app.command(
    "delete",
    epilog=(
        "Examples:\n\n"
        "  catalens products delete 15970 --yes\n\n"
        "  catalens products delete 15970 15971 15972 --yes\n\n"
        "Deletes each product with its image links and events, and every image no other product shows "
        "(records, vectors, predictions, quality results, thumbnails, stored files). Exit status: 0 = all "
        "deleted, 1 = some ids unknown (the others are deleted), 2 = usage error."
    ),
)
def products_delete(
    product_ids: Annotated[list[str], typer.Argument(help="Product ids.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete products and everything keyed by them."""
    if not yes and not typer.confirm(f"delete {len(product_ids)} product(s) and the images only they show?"):
        raise typer.Exit(1)
    missing = 0
    try:
        with _catalog() as cat:
            for pid in product_ids:
                try:
                    cat.delete_product(pid)
                except NotFoundError as exc:  # one unknown id does not stop the rest
                    err.print(f"[red]error:[/red] {exc}", highlight=False)
                    missing += 1
                else:
                    out.print(f"deleted {pid}", highlight=False)
    except CatalensError as exc:
        _fail(exc)
    if missing:
        raise typer.Exit(1)
