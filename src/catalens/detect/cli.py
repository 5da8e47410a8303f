"""CLI: ``catalens detect`` (the products in a photo: boxes, masks, categories)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from catalens.cli_common import _fail, out, print_json
from catalens.errors import CatalensError

DETECT_EPILOG = (
    "Examples:\n\n  catalens detect outfit.jpg\n\n  catalens detect outfit.jpg --draw shown/ --crops crops/ --json\n\n"
    "  catalens search --image outfit.jpg --each"
)


def detect(
    paths: Annotated[list[Path], typer.Argument(help="Photo files.")],
    draw: Annotated[
        Path | None,
        typer.Option("--draw", help="Folder for each photo with its boxes and masks drawn (PNG)."),
    ] = None,
    crops: Annotated[
        Path | None, typer.Option("--crops", help="Folder for each detected product's crop (PNG).")
    ] = None,
    on_white: Annotated[
        bool, typer.Option("--on-white", help="With --crops: set the pixels off the product's mask to white.")
    ] = False,
    threshold: Annotated[
        float | None, typer.Option(min=0.01, max=0.99, help="Score threshold (default: the model's).")
    ] = None,
    max_items: Annotated[
        int, typer.Option("--max-items", min=1, max=100, help="Most products per photo.")
    ] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Find the products in photos: a box, a mask, a score and a coarse category for each.

    A photo that cannot be read is reported with its error and the others go on (exit 1 if any failed)."""
    from catalens.detect.crops import product_crop
    from catalens.detect.per_product import detect_photo
    from catalens.detect.per_product import draw as draw_items

    results: list[dict] = []
    failed = 0
    try:
        for folder in (draw, crops):
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
        for p in paths:
            try:
                rgb, found = detect_photo(p, threshold=threshold, max_items=max_items)
            except (CatalensError, OSError, ValueError) as exc:
                failed += 1
                results.append({"source": str(p), "error": str(exc)})
                continue
            row = found.to_dict()
            if draw is not None:
                target = draw / f"{p.stem}.detect.png"
                draw_items(rgb, found).save(target)
                row["drawn"] = str(target)
            if crops is not None:
                for it in found.items:
                    target = crops / f"{p.stem}-{it.index + 1}-{it.detection.category}.png"
                    product_crop(rgb, it.detection, on_white=on_white).save(target)
                    row["items"][it.index]["crop"] = str(target)
            results.append(row)
    except CatalensError as exc:
        _fail(exc)
    if as_json:
        print_json(results)
    else:
        for r in results:
            if "error" in r:
                out.print(f"[red]{r['source']}: {r['error']}[/red]")
                continue
            out.print(f"{r['source']}: {r['count']} products", highlight=False)
            for it in r["items"]:
                box = ", ".join(f"{v:.0f}" for v in it["box"])
                out.print(
                    f"  {it['item'] + 1}. {it['category']:<10} {it['score']:.2f}  box [{box}]",
                    highlight=False,
                )
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("detect", epilog=DETECT_EPILOG)(detect)
