"""CLI commands of the search package: ``search query|image|product|text|train-text|index`` and ``dedup``.
``catalens search --text ...`` (a first argument that names no verb) is ``catalens search query ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from catalens.cli_common import _catalog, _fail, cli_warnings, deprecated_alias, noun_group, out, print_json
from catalens.errors import CatalensError, ConfigError

SEARCH_EPILOG = (
    "Examples:\n\n"
    "  catalens search --image query.jpg -k 10\n\n"
    "  catalens search --id 15970 --where \"gender = 'Men'\"\n\n"
    '  catalens search --text "red running shoes" --json\n\n'
    "  catalens search --image q.jpg --where \"articleType in ('Tshirts','Tops') and year >= 2012\"\n\n"
    "  catalens --index milvus://milvus.db search --id 15970\n\n"
    "--where: field = 'value', !=, <, <=, >, >=, in (...), not in (...), like '%x%', and, or, not, "
    "parentheses; fields are product attributes plus id and title. Exit 2 on bad input, also on a field "
    "no product has (the error lists the known ones); a value no product has is a warning with 'did you mean'."
)


K = Annotated[int, typer.Option("-k", "--k", help="Number of results.", min=1, max=10_000)]
WHERE = Annotated[str | None, typer.Option("--where", help="Filter on product attributes.")]
ALL_IMAGES = Annotated[
    bool, typer.Option("--all-images", help="One result per image instead of per product.")
]
MODEL = Annotated[str | None, typer.Option(help="Embedding model (default: configured).")]
JSON = Annotated[bool, typer.Option("--json", help="Print results as JSON.")]


def _print_each(found: Any, as_json: bool, k: int, where: str | None) -> None:
    """Results of ``search --image PHOTO --each``: one table per detected product."""
    if as_json:
        print_json(
            {"query": {"image": found.source, "each": True}, "k": k, "where": where, **found.to_dict()}
        )
        return
    from rich.table import Table

    if not found.items:
        out.print(f"no products found in {found.source}; search the whole photo without --each")
        return
    for item in found.items:
        det = item.detection
        box = ", ".join(f"{v:.0f}" for v in det.box)
        table = Table(title=f"product {item.index + 1}: {det.category} ({det.score:.2f}), box [{box}]")
        for col in ("#", "score", "product", "title", "image"):
            table.add_column(col, overflow="fold")
        for r in item.answer or []:
            table.add_row(
                str(r.rank),
                f"{r.score:.4f}",
                r.product_id or "-",
                r.title or "",
                r.image_source or r.image_sha256[:12],
            )
        out.print(table)


def search(
    image: Annotated[Path | None, typer.Option("--image", help="Query image file.")] = None,
    product_id: Annotated[str | None, typer.Option("--id", help="Query product id (more like this).")] = None,
    text: Annotated[str | None, typer.Option("--text", help="Query text.")] = None,
    k: Annotated[int, typer.Option("-k", "--k", help="Number of results.", min=1, max=10_000)] = 10,
    where: Annotated[str | None, typer.Option("--where", help="Filter on product attributes.")] = None,
    all_images: Annotated[
        bool, typer.Option("--all-images", help="One result per image instead of per product.")
    ] = False,
    model: Annotated[str | None, typer.Option(help="Embedding model (default: configured).")] = None,
    each: Annotated[
        bool,
        typer.Option("--each", help="With --image: find the products in the photo and search for each one."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Find products by photo, by product id or by words (one result per product by default)."""
    try:
        given = [x is not None for x in (image, product_id, text)]
        if sum(given) != 1:
            raise ConfigError("give exactly one of --image, --id, --text")
        if each and image is None:
            raise ConfigError("--each needs --image (it searches each product found in the photo)")
        if where is not None:
            from catalens.search.filters import parse_where

            parse_where(where)  # fail fast on a malformed filter, before opening anything heavy
        cat = _catalog()
        with cli_warnings():
            if each and image is not None:
                found = cat.search_image_each(image, k, where=where, all_images=all_images, model=model)
                _print_each(found, as_json, k, where)
                return
            if image is not None:
                res = cat.search_image(image, k, where=where, all_images=all_images, model=model)
                query = {"image": str(image)}
            elif product_id is not None:
                res = cat.search_product(product_id, k, where=where, all_images=all_images, model=model)
                query = {"id": product_id}
            else:
                res = cat.search_text(text or "", k, where=where, all_images=all_images, model=model)
                query = {"text": text}
    except CatalensError as exc:
        _fail(exc)
    if as_json:
        print_json({"query": query, "k": k, "where": where, "results": [r.to_dict() for r in res]})
        return
    from rich.table import Table

    table = Table(title=f"{len(res)} results")
    for col in ("#", "score", "product", "title", "image"):
        table.add_column(col, overflow="fold")
    for r in res:
        table.add_row(
            str(r.rank),
            f"{r.score:.4f}",
            r.product_id or "-",
            r.title or "",
            r.image_source or r.image_sha256[:12],
        )
    out.print(table)


def search_image(
    image: Annotated[Path, typer.Argument(help="Query image file.")],
    k: K = 10,
    where: WHERE = None,
    all_images: ALL_IMAGES = False,
    model: MODEL = None,
    each: Annotated[
        bool, typer.Option("--each", help="Find the products in the photo and search for each.")
    ] = False,
    as_json: JSON = False,
) -> None:
    """Products that look like a photo."""
    _by_verb(image=image, k=k, where=where, all_images=all_images, model=model, each=each, as_json=as_json)


def search_product(
    product_id: Annotated[str, typer.Argument(help="Query product id (more like this).")],
    k: K = 10,
    where: WHERE = None,
    all_images: ALL_IMAGES = False,
    model: MODEL = None,
    as_json: JSON = False,
) -> None:
    """More like this: products that look like a cataloged product."""
    _by_verb(product_id=product_id, k=k, where=where, all_images=all_images, model=model, as_json=as_json)


def search_text(
    text: Annotated[str, typer.Argument(help="Query words.")],
    k: K = 10,
    where: WHERE = None,
    all_images: ALL_IMAGES = False,
    model: MODEL = None,
    as_json: JSON = False,
) -> None:
    """Products matching words (titles, and photos without a title by their pixels)."""
    _by_verb(text=text, k=k, where=where, all_images=all_images, model=model, as_json=as_json)


def _by_verb(**query: Any) -> None:
    """The flag form (``search query``) with one query given by the verb."""
    search(**({"image": None, "product_id": None, "text": None, "each": False} | query))


def search_train_text(
    model: Annotated[str | None, typer.Option(help="Embedding model (default: configured).")] = None,
    method: Annotated[
        str,
        typer.Option(
            help="krr: kernel ridge on the MiniLM title vectors (default, better); "
            "ridge: linear ridge (smaller, faster to train)."
        ),
    ] = "krr",
    holdout: Annotated[
        float, typer.Option(help="Share of products held out to pick and report quality.")
    ] = 0.2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metadata as JSON.")] = False,
) -> None:
    """(Re)train the catalog-aligned text projection (titles -> image space) used by `search --text`."""
    from catalens.progress import step

    try:
        cat = _catalog()
        with step("search train-text", enabled=not as_json):
            meta = cat.train_text_projection(model, holdout=holdout, method=method)
    except CatalensError as exc:
        _fail(exc)
    if as_json:
        print_json(meta)
    else:
        out.print(
            f"trained {meta['method_key']} on {meta['pairs']} pairs / {meta['products']} products; "
            f"held-out Recall@10 = {meta['heldout_recall_at_10']} (setting {meta['picked']})"
        )


def search_index(
    model: Annotated[str | None, typer.Option(help="Embedding model (default: configured).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Build or catch up the vector index with the database and show its kind and parameters."""
    try:
        data = _catalog().sync_index(model)
    except CatalensError as exc:
        _fail(exc)
    if as_json:
        print_json(data)
    else:
        out.print_json(data=data)


def dedup(
    image: Annotated[
        Path | None, typer.Option("--image", help="Check one new image against the catalog.")
    ] = None,
    candidate_cosine: Annotated[
        float | None, typer.Option(help="Embedding cosine for candidates (0.65).")
    ] = None,
    neighbours: Annotated[int | None, typer.Option(help="Neighbours asked per image (10).")] = None,
    min_structure: Annotated[
        float | None,
        typer.Option(help="Minimum aligned copy-structure (ECC correlation) score, coarse stage (0.90)."),
    ] = None,
    max_colour: Annotated[
        float | None,
        typer.Option(help="Maximum colour difference of the product's cells, Lab units, coarse stage (8)."),
    ] = None,
    max_colour_p90: Annotated[
        float | None,
        typer.Option(
            help="Maximum colour difference of the product's 90th-percentile cell, Lab units, coarse stage (12)."
        ),
    ] = None,
    include_reshoots: Annotated[
        bool,
        typer.Option("--include-reshoots", help="Count re-shoots of the same product as duplicates."),
    ] = False,
    gate_cosine: Annotated[
        float | None, typer.Option(help="Cosine from which every candidate is aligned (0.75).")
    ] = None,
    no_detail: Annotated[
        bool,
        typer.Option(
            "--no-detail",
            help="Skip the full-detail check of the photos (faster; two products on one studio "
            "template can then pass as copies).",
        ),
    ] = False,
    model: Annotated[str | None, typer.Option(help="Embedding model (default: configured).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Group exact duplicates (same pixels) and copies (resized, re-compressed, cropped, bordered, text or a
    label pasted over); colour variants of one style are listed apart as families."""
    opts = {
        "candidate_cosine": candidate_cosine,
        "neighbours": neighbours,
        "min_structure": min_structure,
        "max_colour": max_colour,
        "max_colour_p90": max_colour_p90,
        "include_reshoots": include_reshoots or None,
        "gate_cosine": gate_cosine,
        "detail": False if no_detail else None,
    }
    try:
        from catalens.search.dedup import DedupOptions

        cat = _catalog()
        if image is not None:
            res = cat.dedup_image(image, model, options=DedupOptions.overridden(**opts))
            if as_json:
                print_json(res)
            else:
                out.print(f"{'DUPLICATE' if res['duplicate'] else 'no duplicate'}: {image}")
                for m in res["matches"]:
                    out.print(
                        f"  {m['kind']:13s} {m['image_sha256'][:12]} {m.get('source')} {m.get('product_ids')}"
                    )
            raise typer.Exit(1 if res["duplicate"] else 0)
        report = cat.dedup(model, options=DedupOptions.overridden(**opts))
    except CatalensError as exc:
        _fail(exc)
    data = report.to_dict()
    if as_json:
        print_json(data)
        return
    out.print(
        f"{data['stats']['groups']} groups ({data['stats']['images_in_groups']} images) among "
        f"{data['stats']['images']} images in {data['stats']['seconds']['total']} s"
    )
    for i, g in enumerate(data["groups"], 1):
        out.print(f"[bold]group {i}[/bold] {g['kind']} score={g['score']}")
        for im in g["images"]:
            out.print(f"  {im['image_sha256'][:12]} {im['source']} {im['product_ids']}")
    if data["families"]:
        out.print(
            f"{len(data['families'])} variant families (same style, other colour or pattern; not duplicates)"
        )
    for i, g in enumerate(data["families"], 1):
        out.print(f"[bold]family {i}[/bold] {len(g['images'])} images")
        for im in g["images"]:
            out.print(f"  {im['image_sha256'][:12]} {im['source']} {im['product_ids']}")


def register(app: typer.Typer) -> None:
    group = noun_group(
        app,
        "search",
        "Find products by photo, by product id or by words, and keep the index and the text projection "
        "up to date: `catalens search image|product|text|query|train-text|index`."
        '\n\nExample: catalens search text "red running shoes"   (= catalens search --text ...)',
        default="query",
    )
    group.command("query", epilog=SEARCH_EPILOG)(search)
    group.command(
        "image",
        epilog=(
            "Examples:\n\n  catalens search image query.jpg -k 10\n\n"
            "  catalens search image outfit.jpg --each   (one result list per product found in the photo)"
        ),
    )(search_image)
    group.command(
        "product",
        epilog="Examples:\n\n  catalens search product 15970\n\n  catalens search product 15970 --where \"gender = 'Men'\" --json",
    )(search_product)
    group.command(
        "text",
        epilog='Examples:\n\n  catalens search text "red running shoes"\n\n  catalens search text "navy kurta" -k 20 --json',
    )(search_text)
    group.command(
        "train-text",
        epilog=(
            "Examples:\n\n  catalens search train-text\n\n"
            "  catalens search train-text --model efficientnet-lite2 --json\n\n"
            "  catalens search train-text --method ridge"
        ),
    )(search_train_text)
    group.command(
        "index",
        epilog="Examples:\n\n  catalens search index\n\n  catalens --index milvus://milvus.db search index --json",
    )(search_index)
    app.command(
        epilog=(
            "Examples:\n\n  catalens dedup\n\n  catalens dedup --json > dups.json\n\n"
            "  catalens dedup --image new-photo.jpg\n\n  catalens dedup --min-structure 0.9 --max-colour 15\n\n"
            "A pair is a near-duplicate when embedding cosine >= --candidate-cosine (among --neighbours "
            "nearest), it passes the cheap gate (cosine >= --gate-cosine, or coarse structure and colour "
            "close), and after alignment copy-structure >= --min-structure and colour difference <= "
            "--max-colour (75th percentile of the product's own cells) and <= --max-colour-p90 (90th), or one pasted-over "
            "blob (label, sticker, price tag) with the rest identical. Pairs the coarse stage cannot settle (and "
            "each image's nearest candidates) are then compared on the photos themselves (keypoints, a fitted "
            "warp, pixels outside pasted regions), which has the last word on copies unless --no-detail. "
            "Re-shoots count only with --include-reshoots; "
            "variants (same style, other colour) are listed as families (see catalens.search.dedup). "
            "Exit status: 0, or 1 with --image when the image duplicates a catalog image."
        )
    )(dedup)
    deprecated_alias(app, "search-train-text", "search train-text", search_train_text)
    deprecated_alias(app, "search-index", "search index", search_index)
