"""CLI: ``catalens explain label|match|quality|regions`` (``catalens explain PHOTO`` is ``explain label``;
old ``explain-match``, ``explain-quality``, ``draw-regions``: hidden aliases with a deprecation notice)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from catalens.cli_common import _catalog, _fail, deprecated_alias, err, noun_group, out, print_json
from catalens.errors import CatalensError, ConfigError

_OUT_HELP = "Folder for the overlay PNG, the raw map (.npy) and the JSON (default: ./explanations)."


def explain(
    image: Annotated[str, typer.Argument(help="Image file, catalog image sha256 (or prefix) or product id.")],
    classifier: Annotated[
        str | None,
        typer.Option("--classifier", "-c", help="Trained classifier to explain (catalens classify)."),
    ] = None,
    field: Annotated[
        str | None, typer.Option("--field", "-f", help="Field of a multi-field classifier.")
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", "-l", help="Label to explain (default: the predicted one).")
    ] = None,
    imagenet: Annotated[
        bool,
        typer.Option(
            "--imagenet", help="Explain the model's own ImageNet-1k classifier (the default target)."
        ),
    ] = False,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Backbone (default: the catalog's model).")
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            help="gradcam (default), gradcam++, rollout (ViT), or lib:NAME (a pytorch-grad-cam method, e.g. lib:layercam).",
        ),
    ] = None,
    threshold: Annotated[float, typer.Option(help="Map level (0..1) that outlines a region.")] = 0.5,
    top_k: Annotated[int, typer.Option("--top-k", help="Regions to report.")] = 5,
    smooth: Annotated[
        float | None,
        typer.Option(
            "--smooth",
            help="Gaussian smoothing of the upsampled map, sigma as a fraction of the input side "
            "(default 0.04; 0 = plain bilinear upsampling).",
        ),
    ] = None,
    on_product: Annotated[
        bool,
        typer.Option(
            "--on-product/--whole-photo",
            help="Weight the map by the product the packaged detector finds: what on the product was "
            "recognised (bench/explain_product_mass.py); --whole-photo: the model's map as it is.",
        ),
    ] = True,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help=_OUT_HELP)] = Path("explanations"),
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show why a label was given: a Grad-CAM heatmap overlay, the raw map and the strongest regions."""
    try:
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"--threshold must be between 0 and 1, got {threshold}")
        if top_k < 1:
            raise ConfigError(f"--top-k must be at least 1, got {top_k}")
        with _catalog() as cat:
            e = cat.explain_label(
                image,
                classifier=classifier,
                field=field,
                label=label,
                imagenet=imagenet,
                model=model,
                method=method,
                threshold=threshold,
                top_k=top_k,
                smooth=smooth,
                on_product=on_product,
            )
            files = e.save(out_dir)
    except CatalensError as exc:
        _fail(exc)
    data = e.to_dict() | {"files": files}
    if as_json:
        print_json(data)
        return
    out.print(
        f"{e.source}: [bold]{e.label}[/bold] p={e.probability:.3f} ({e.target}, {e.model}, {e.method}, {e.seconds:.2f} s)"
    )
    for i, r in enumerate(e.regions, 1):
        box = ", ".join(f"{v:.0f}" for v in r.box)
        out.print(f"  region {i}: [{box}]  peak {r.peak:.2f}  share {r.share:.0%}")
    out.print(f"overlay {files['overlay']}\nmap     {files['map']}\njson    {files['json']}")


def explain_match(
    query: Annotated[str, typer.Argument(help="Query image (file, image sha256 or product id).")],
    match: Annotated[str, typer.Argument(help="Matched image (file, image sha256 or product id).")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Backbone (default: the catalog's model).")
    ] = None,
    mode: Annotated[
        str, typer.Option(help="contribution (splits the similarity score over regions) or cosine.")
    ] = "contribution",
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder (default: ./explanations).")
    ] = Path("explanations"),
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show which regions of a query and its match agree, drawn on both images side by side."""
    try:
        with _catalog() as cat:
            me = cat.explain_match(query, match, model=model, mode=mode)
            files = me.save(out_dir)
    except CatalensError as exc:
        _fail(exc)
    data = me.to_dict() | {"files": files}
    if as_json:
        print_json(data)
        return
    out.print(f"similarity {me.similarity:.3f} ({me.model}, {me.mode}{', exact split' if me.exact else ''})")
    for i, p in enumerate(me.pairs, 1):
        qb = ", ".join(f"{v:.0f}" for v in p.query_box)
        mb = ", ".join(f"{v:.0f}" for v in p.match_box)
        out.print(f"  pair {i}: query [{qb}] ~ match [{mb}]  cosine {p.cosine:.2f}")
    out.print(f"image {files['image']}\njson  {files['json']}")


def _read_regions(path: Path, source: str) -> Any:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read regions JSON ({exc})") from exc
    if isinstance(data, dict):  # a qc report / image result ({"results": [...]}) or an explanation
        for key in ("results", "regions", "query_regions"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            raise ConfigError(f"{path}: expected a list of boxes, or an object with 'results' or 'regions'")
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a list of boxes")
    images = [d for d in data if isinstance(d, dict) and isinstance(d.get("results"), list)]
    if images:  # per-image quality results: those of the image drawn (by file name), else the first
        same = [d for d in images if Path(str(d.get("source", ""))).name == Path(source).name]
        return (same or images)[0]["results"]
    return data


def draw_regions_cmd(
    image: Annotated[str, typer.Argument(help="Image file, catalog image sha256 or product id.")],
    regions: Annotated[
        Path,
        typer.Argument(
            help="JSON: [[x0,y0,x1,y1], ...], [{'box': [...], 'label': ...}], or a quality/explain JSON."
        ),
    ],
    output: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("regions.png"),
    include_pass: Annotated[bool, typer.Option(help="Also draw regions of checks that passed.")] = False,
) -> None:
    """Draw boxes (e.g. the regions behind quality verdicts) on an image."""
    try:
        items = _read_regions(regions, image)
        if not include_pass:
            items = [r for r in items if not (isinstance(r, dict) and r.get("verdict") == "pass")]
        with _catalog() as cat:
            drawn = cat.draw_regions(image, items)
        output.parent.mkdir(parents=True, exist_ok=True)
        drawn.save(output)
    except CatalensError as exc:
        _fail(exc)
    err.print(f"wrote {output}")


def explain_quality(
    image: Annotated[str, typer.Argument(help="Image file, catalog image sha256 or product id.")],
    profile: Annotated[
        str, typer.Option("--profile", "-p", help="Quality profile (see catalens qc).")
    ] = "general",
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write (default: <name>.qc.png).")
    ] = None,
    include_pass: Annotated[bool, typer.Option(help="Also draw regions of checks that passed.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Run the quality checks on one image and draw the regions behind their verdicts."""
    try:
        with _catalog() as cat:
            qc, drawn = cat.explain_quality(image, profile=profile, include_pass=include_pass)
        target = output or Path(f"{Path(image).stem}.qc.png")
        target.parent.mkdir(parents=True, exist_ok=True)
        drawn.save(target)
    except CatalensError as exc:
        _fail(exc)
    shown = [r for r in qc.results if r.regions and (include_pass or r.verdict != "pass")]
    if as_json:
        print_json(qc.to_dict() | {"drawn": [r.check for r in shown], "file": str(target)})
        return
    out.print(f"{qc.source}: verdict [bold]{qc.verdict}[/bold] ({qc.profile})")
    for r in qc.results:
        if r.verdict != "pass" or r in shown:
            out.print(f"  {r.check}: {r.verdict}  {r.reason}  regions {len(r.regions)}", highlight=False)
    out.print(f"image {target}")


def register(app: typer.Typer) -> None:
    group = noun_group(
        app,
        "explain",
        "Heatmaps of what the model looked at: `catalens explain label|match|quality|regions`."
        "\n\nExample: catalens explain shirt.jpg --classifier shop --field articleType   (= explain label ...)",
        default="label",
    )
    group.command(
        "label",
        epilog=(
            "Examples:\n\n"
            "  catalens explain shirt.jpg --imagenet\n\n"
            "  catalens explain shirt.jpg --classifier article --label Tshirts --out why/\n\n"
            "  catalens explain 1563 --classifier catalog --field articleType --json\n\n"
            "Writes <name>.overlay.png, <name>.map.npy (the map at the image's resolution, 0..1) and "
            "<name>.json (label, probability, regions as [x0, y0, x1, y1] pixel boxes). Needs the "
            "model's torch weights: ONNX-only models have no gradients."
        ),
    )(explain)
    group.command(
        "match",
        epilog=(
            "Examples:\n\n"
            "  catalens explain match query.jpg match.jpg\n\n"
            "  catalens explain match 1563 1580 --out why/ --json\n\n"
            "With --mode contribution the query's map sums to the cosine similarity of the two "
            "embeddings, so it shows where the score comes from."
        ),
    )(explain_match)
    group.command(
        "regions",
        epilog=(
            "Examples:\n\n"
            "  catalens explain regions photo.jpg boxes.json --out photo.boxes.png\n\n"
            "  catalens qc photo.jpg --json > qc.json && catalens explain regions photo.jpg qc.json\n\n"
            "Boxes are [x0, y0, x1, y1] in the image's pixels; quality results are coloured by verdict."
        ),
    )(draw_regions_cmd)
    group.command(
        "quality",
        epilog=(
            "Examples:\n\n"
            "  catalens explain quality photo.jpg\n\n"
            "  catalens explain quality photo.jpg --profile marketplace-main-image --out photo.qc.png --json\n\n"
            "Checks that return regions (text, watermark, border, background...) are drawn "
            "in red (fail) or orange (warn)."
        ),
    )(explain_quality)
    deprecated_alias(app, "explain-match", "explain match", explain_match)
    deprecated_alias(app, "explain-quality", "explain quality", explain_quality)
    deprecated_alias(app, "draw-regions", "explain regions", draw_regions_cmd)
