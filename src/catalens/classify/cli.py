"""CLI: ``catalens classify run|train|eval|list|taxonomy``, ``colour`` and ``brand`` (old flat names: hidden
aliases with a deprecation notice)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from catalens.cli_common import (
    RAY_HELP,
    _catalog,
    _fail,
    cli_warnings,
    deprecated_alias,
    err,
    noun_group,
    out,
    print_json,
)
from catalens.errors import CatalensError, ClassifierError

if TYPE_CHECKING:
    from catalens.classify.classifier import Classifier


def _print_predictions(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        parts = []
        # the built-in taxonomy abstains below its threshold: its best guess is shown, flagged
        word = "abstain" if r.get("classifier") == "builtin" else "review"
        for f, p in r["fields"].items():
            flag = f" [{word}]" if p["needs_review"] else ""
            parts.append(f"{f}={p['label']} ({p['prob']:.2f}){flag}")
        out.print(f"{r['source']}: " + "  ".join(parts), highlight=False, markup=False)


def classify(
    paths: Annotated[list[Path] | None, typer.Argument(help="Image files to classify.")] = None,
    classifier: Annotated[
        str,
        typer.Option(
            "--classifier", "-c", help="Classifier name, NAME@VERSION, 'builtin', or A+B (ensemble)."
        ),
    ] = "builtin",
    all_: Annotated[
        bool, typer.Option("--all", help="Classify every stored image and store the predictions.")
    ] = False,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Alternatives per field.")] = 3,
    hierarchy: Annotated[
        str, typer.Option(help="joint | mask | none: how hierarchy levels are kept consistent.")
    ] = "joint",
    threshold: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Abstain threshold (default: the classifier's).")
    ] = None,
    title: Annotated[
        list[str] | None, typer.Option(help="Title per image (fused image+text classifiers).")
    ] = None,
    zero_shot: Annotated[
        str | None,
        typer.Option(
            "--zero-shot", help="CLIP-type model: zero-shot over the built-in taxonomy (no training)."
        ),
    ] = None,
    each: Annotated[
        bool, typer.Option("--each", help="Find the products in each photo and classify each one.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ray: Annotated[
        str | None, typer.Option("--ray", metavar="[ADDRESS]", help="With --all: " + RAY_HELP)
    ] = None,
) -> None:
    """Classify images into a taxonomy with calibrated probabilities (no training needed for 'builtin')."""
    if zero_shot:
        classifier = f"zeroshot:{zero_shot}"
    _need_inputs(all_, paths, "classify")
    try:
        if each and (all_ or title):
            raise ClassifierError(
                "--each classifies the products found in photo files: not with --all or --title"
            )
        with _catalog() as cat, cli_warnings():
            if each:
                found = [
                    cat.classify_each(str(p), classifier, top_k=top_k, hierarchy=hierarchy).to_dict()
                    for p in paths or []
                ]
                _print_each(found, as_json)
                return
            if all_:
                from catalens.progress import rich_progress

                with rich_progress(err, enabled=not as_json) as progress:
                    res: Any = cat.classify_all(
                        classifier,
                        hierarchy=hierarchy,
                        threshold=threshold,
                        top_k=top_k,
                        ray=ray,
                        progress=progress,
                    ).to_dict()
            else:
                predictions = cat.classify(
                    [str(p) for p in paths or []],
                    classifier,
                    top_k=top_k,
                    hierarchy=hierarchy,
                    threshold=threshold,
                    titles=title or None,
                )
                res = [p.to_dict() for p in predictions]
    except CatalensError as exc:
        _fail(exc)
    if as_json:
        print_json(res)
    elif all_:
        out.print(
            f"{res['images']} images classified by {res['classifier']} in {res['seconds']} s; "
            f"{res['needs_review']} need review; stored={res['stored']}"
        )
        for f, counts in res["labels"].items():
            out.print(
                f"  {f}: " + ", ".join(f"{k} {v}" for k, v in list(counts.items())[:8]), highlight=False
            )
    else:
        _print_predictions(res)


def train(
    name: Annotated[str, typer.Argument(help="Classifier name (a new version is saved each time).")],
    field: Annotated[list[str], typer.Option("--field", "-f", help="Label column to learn (repeatable).")],
    labels: Annotated[
        Path | None,
        typer.Option(help="Labels CSV (image|id|sha256 + field columns); default: catalog attributes."),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            help="prototype | prototype-lr (few-shot) | linear | finetune | zeroshot (CLIP --model, no labels)"
        ),
    ] = "linear",
    model: Annotated[str | None, typer.Option(help="Embedding model (default: the catalog's).")] = None,
    text_model: Annotated[
        str | None, typer.Option(help="Fuse the title embedding of this text model (e.g. minilm).")
    ] = None,
    title_words: Annotated[
        bool,
        typer.Option(
            "--title-words", help="Fuse a hashed bag of title words (with or without --text-model)."
        ),
    ] = False,
    colour_features: Annotated[
        bool | None,
        typer.Option(
            "--colour-features/--no-colour-features",
            help="The product's colour descriptor as an input: for every field, or none. Default: for "
            "colour fields (baseColour, color...) of linear classifiers without title inputs.",
            show_default=False,
        ),
    ] = None,
    hierarchy: Annotated[
        str | None,
        typer.Option(help="Hierarchy of fields, parent first: 'masterCategory>subCategory>articleType'."),
    ] = None,
    taxonomy: Annotated[Path | None, typer.Option(help="Taxonomy YAML (hierarchy + allowed values).")] = None,
    drop_rare: Annotated[
        bool, typer.Option(help="Drop classes with too few examples instead of failing.")
    ] = False,
    skip_unknown: Annotated[
        bool, typer.Option(help="Skip label rows whose image is not in the catalog.")
    ] = False,
    calibration: Annotated[
        str,
        typer.Option(
            help="holdout | crossfit | vector, or per field 'gender=vector,articleType=crossfit' "
            "(temperature on a 15% hold-out; on 5-fold out-of-fold logits; per-class vector scaling)."
        ),
    ] = "holdout",
    epochs: Annotated[int, typer.Option(help="finetune: maximum epochs.")] = 8,
    unfreeze_blocks: Annotated[
        int, typer.Option(min=0, help="finetune: train the last N backbone blocks (+ head conv).")
    ] = 2,
    full: Annotated[bool, typer.Option("--full", help="finetune: train the whole backbone.")] = False,
    ft_device: Annotated[
        str, typer.Option("--device", help="finetune: auto | cpu | cuda[:N] (auto: CUDA when present).")
    ] = "auto",
    batch_size: Annotated[
        int | None, typer.Option(min=2, help="finetune: batch size (default: GPU largest that fits; CPU 64).")
    ] = None,
    views: Annotated[
        str,
        typer.Option(
            help="Extra training views of each image: auto (linear: thumb) | none | thumb (the photo "
            "shrunk to 60x80, so that thumbnails are classified as well as full photos; computed once, cached)."
        ),
    ] = "auto",
    holdout: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.9,
            help="Share of the labelled products kept out of training (stratified by the first field); "
            "`catalens classify eval -c NAME` scores them. 0: train on everything.",
        ),
    ] = 0.2,
    holdout_out: Annotated[
        Path | None, typer.Option(help="Also write the held-out rows as a labels CSV (for eval --labels).")
    ] = None,
    propagate: Annotated[
        list[str] | None,
        typer.Option(
            "--propagate",
            help="Spread this field's labels to the catalog's unlabelled images before training "
            "(repeatable; helps a many-class field such as articleType with a few hundred labels, not "
            "colour or gender: bench/RESULTS.md 'classify: from few labels').",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Train a classifier from labelled data on the stored embeddings (or fine-tune the backbone).

    A held-out split (--holdout, default 20% of the products) is kept out of training and saved with
    the classifier; `catalens classify eval -c NAME` scores it."""
    opts = _train_options(
        method, calibration, views, as_json, epochs, unfreeze_blocks, full, ft_device, batch_size
    )
    from catalens.progress import step

    try:
        with _catalog() as cat, step(f"train {name}", err, enabled=not as_json):
            if method == "zeroshot":
                if not model:
                    raise ClassifierError("--method zeroshot needs --model (a CLIP-type model)")
                clf = cat.zeroshot_classifier(model, taxonomy=taxonomy, fields=field, name=name, save=True)
            else:
                clf = cat.train_classifier(
                    name,
                    field,
                    labels=labels,
                    method=method,
                    model=model,
                    text_model=text_model,
                    hierarchy=[h.strip() for h in hierarchy.split(">")] if hierarchy else None,
                    taxonomy=taxonomy,
                    drop_rare=drop_rare,
                    skip_unknown=skip_unknown,
                    use_colour=colour_features,
                    title_words=title_words,
                    holdout=holdout,
                    holdout_out=holdout_out,
                    propagate=propagate or (),
                    **opts,
                )
    except CatalensError as exc:
        _fail(exc)
    data = _trained_summary(clf)
    if as_json:
        print_json(data)
    else:
        _print_trained(clf, data, holdout_out)


def _train_options(
    method: str,
    calibration: str,
    views: str,
    as_json: bool,
    epochs: int,
    unfreeze_blocks: int,
    full: bool,
    ft_device: str,
    batch_size: int | None,
) -> dict[str, Any]:
    """The method-specific keyword options of ``train_classifier`` from the ``train`` flags."""
    opts: dict[str, Any] = {}
    if method not in ("finetune", "zeroshot"):
        opts.update(train_views=views, view_progress=_view_progress(as_json))
    if calibration != "holdout":
        opts["calibration"] = _parse_calibration(calibration)
    if method == "finetune":
        opts.update(epochs=epochs, unfreeze_blocks=unfreeze_blocks, full=full, device=ft_device)
        opts.update(batch_size=batch_size, progress=_finetune_progress(as_json))
    return opts


def _trained_summary(clf: Classifier) -> dict[str, Any]:
    """What ``train`` reports about the saved classifier (the ``--json`` document)."""
    return {
        "name": clf.name,
        "version": clf.version,
        "folder": str(clf.folder),
        "method": clf.method,
        "model": clf.model,
        "input": clf.input,
        "fields": {
            f: {"classes": len(h.classes), "temperature": h.temperature, "threshold": h.threshold}
            for f, h in clf.heads.items()
        },
        "held_out": clf.metrics.get("held_out", {}),
        "views": clf.extra.get("views", []),
        "view_problems": clf.extra.get("view_problems", {}),
        "colour_problems": clf.extra.get("colour_problems", {}),
        "holdout": clf.data.get("holdout"),
        "propagated": clf.data.get("propagated"),
    }


def _print_trained(clf: Classifier, data: dict[str, Any], holdout_out: Path | None) -> None:
    """The human-readable report of ``train``."""
    out.print(f"saved {clf.name} {clf.version} ({clf.method}, {clf.model}) -> {clf.folder}", highlight=False)
    if clf.method == "finetune":
        out.print(
            f"  new model: {clf.model}\n  embed with it: catalens embed --model '{clf.model}' "
            "(classify --all embeds missing images itself)",
            highlight=False,
        )
    if data["holdout"]:
        kept = f", also written to {holdout_out}" if holdout_out else ""
        out.print(
            f"  held out {data['holdout']['rows']} labelled images for evaluation{kept}: "
            f"catalens classify eval -c {clf.name}",
            highlight=False,
        )
    if data["propagated"]:
        p = data["propagated"]
        joined = ", ".join(f"{f} {n}" for f, n in p["joined"].items())
        out.print(
            f"  labels spread to {p['unlabelled']} unlabelled images; joined: {joined}", highlight=False
        )
    if data["views"]:
        out.print(f"  trained on views: stored + {', '.join(data['views'])}", highlight=False)
    vp = data["view_problems"]
    if vp:
        err.print(f"warning: {vp['count']} image(s) had no view (stored embedding used): {vp['first'][:3]}")
    cp = data["colour_problems"]
    if cp:
        err.print(
            f"warning: {cp['count']} image(s) could not be read for their colour descriptor (the average "
            f"one used): {cp['first'][:3]}"
        )
    for f, h in data["fields"].items():
        ho = data["held_out"].get(f) or {}
        acc = f"  held-out acc {ho['accuracy']:.3f} ECE {ho['ece']:.3f}" if ho else ""
        out.print(
            f"  {f}: {h['classes']} classes, T={h['temperature']:.3f}, review below {h['threshold']:.2f}{acc}"
        )


def _parse_calibration(text: str) -> str | dict[str, str]:
    """``MODE`` or ``FIELD=MODE,...`` (unknown modes are reported by training)."""
    if "=" not in text:
        return text.strip()
    out: dict[str, str] = {}
    for part in text.split(","):
        f, sep, mode = part.partition("=")
        if not sep or not f.strip():
            err.print(f"error: --calibration: expected FIELD=MODE, got {part!r}")
            raise typer.Exit(2)
        out[f.strip()] = mode.strip()
    return out


def _view_progress(quiet: bool) -> Any:
    """One stderr line per 512 view embeddings computed (nothing with --json; cached ones are free)."""

    def show(done: int, total: int) -> None:
        if not quiet and (done == total or done % 512 < 32):
            err.print(f"view embeddings: {done}/{total}", highlight=False)

    return show


def _finetune_progress(quiet: bool) -> Any:
    """Per-epoch lines on stderr while fine-tuning (nothing with --json)."""

    def show(row: dict[str, Any]) -> None:
        if quiet:
            return
        if row.get("stage") == "cache":
            err.print(f"cached front activations: {row['views']} views {row['shape']} in {row['seconds']} s")
            return
        acc = ", ".join(f"{k} {v:.3f}" for k, v in (row.get("val_accuracy") or {}).items())
        secs = f" {row['epoch_s']} s ({row['images_per_s']} img/s)" if "epoch_s" in row else ""
        err.print(f"epoch {row['epoch']}:{secs} val acc {acc}", highlight=False)

    return show


def eval_(
    classifier: Annotated[str, typer.Option("--classifier", "-c", help="Classifier name (or A+B ensemble).")],
    labels: Annotated[
        Path | None, typer.Option(help="Labels CSV; default: the catalog's attributes.")
    ] = None,
    field: Annotated[
        list[str] | None, typer.Option("--field", "-f", help="Fields to evaluate (default: all).")
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Folder for the HTML report.")] = None,
    hierarchy: Annotated[str, typer.Option(help="joint | mask | none")] = "joint",
    skip_unknown: Annotated[
        bool, typer.Option(help="Skip label rows whose image is not in the catalog.")
    ] = False,
    allow_train_overlap: Annotated[
        bool,
        typer.Option(help="Score label rows the classifier was trained on (refused otherwise: optimistic)."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Machine-readable output (always JSON per field).")
    ] = False,
) -> None:
    """Accuracy, macro-F1, weighted-F1 and ECE per field; an HTML report with --report.

    Without --labels it scores the classifier's own held-out split (kept by `train`). Label rows the
    classifier was trained on are refused (exit 2) unless --allow-train-overlap."""
    try:
        with _catalog() as cat:
            res = cat.evaluate_classifier(
                classifier,
                labels,
                fields=field or None,
                report_dir=report,
                hierarchy=hierarchy,
                skip_unknown=skip_unknown,
                allow_train_overlap=allow_train_overlap,
            ).to_dict()
    except CatalensError as exc:
        _fail(exc)
    if res.get("warning"):
        err.print(f"[bold red]WARNING:[/bold red] {res['warning']}", highlight=False, soft_wrap=True)
    print_json(res)


def _print_each(found: list[dict[str, Any]], as_json: bool) -> None:
    """Per-product answers of ``classify --each`` / ``colour --each``."""
    if as_json:
        print_json(found)
        return
    for photo in found:
        out.print(f"{photo['source']}: {photo['count']} products", highlight=False)
        for it in photo["items"]:
            head = f"  {it['item'] + 1}. {it['category']} ({it['score']:.2f})"
            if "colours" in it:
                cols = ", ".join(f"{c['name']} {c['percent']}%" for c in it["colours"]["colours"])
                out.print(f"{head}: {it['colours']['primary']}  ({cols})", highlight=False)
                continue
            fields = "; ".join(
                f"{f}={v.get('label')} ({v.get('prob', 0):.2f})" for f, v in it.get("fields", {}).items()
            )
            out.print(f"{head}: {fields}", highlight=False)


def colour(
    paths: Annotated[list[Path], typer.Argument(help="Image files.")],
    each: Annotated[
        bool, typer.Option("--each", help="Find the products in each photo and name each one's colours.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Dominant product colours (the product's, not the background's), named, with percentages."""
    results = []
    try:
        with _catalog() as cat:
            if each:
                _print_each([cat.colours_each(p).to_dict() for p in paths], as_json)
                return
            for p in paths:
                results.append({"source": str(p), **cat.colours(p).to_dict()})
    except CatalensError as exc:
        _fail(exc)
    if as_json:
        print_json(results)
        return
    for r in results:
        cols = ", ".join(f"{c['name']} {c['percent']}%" for c in r["colours"])
        out.print(f"{r['source']}: {r['primary']}  ({cols})", highlight=False)


def classifiers(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List trained classifiers."""
    try:
        with _catalog() as cat:
            rows = [c.to_dict() for c in cat.classifiers()]
    except CatalensError as exc:
        _fail(exc)
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no classifiers; train one with `catalens classify train NAME --field FIELD`")
    for r in rows:
        out.print(f"{r['name']}  {r['latest']}  {r['method']}  {r['model']}  fields={','.join(r['fields'])}")


def taxonomy(
    file: Annotated[str, typer.Argument(help="Taxonomy YAML, or 'builtin'.")] = "builtin",
    mapping: Annotated[
        bool, typer.Option(help="Print the ImageNet class -> node mapping (builtin).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Validate and show a taxonomy (hierarchy, attribute fields); the built-in one by default."""
    from catalens.classify.taxonomy import load_taxonomy

    try:
        tax = load_taxonomy(file)
        rows = None
        if mapping:
            from catalens.classify.builtin import mapping_table

            rows = mapping_table(tax)
    except CatalensError as exc:
        _fail(exc)
    data = tax.to_dict() | ({"imagenet_mapping": rows} if rows is not None else {})
    if as_json:
        print_json(data)
        return
    out.print(
        f"{tax.name}: hierarchy {' > '.join(tax.hierarchy) or '-'}; {len(tax.paths)} leaf paths",
        highlight=False,
    )
    if tax.hierarchy:
        for v in tax.values(tax.hierarchy[0]):
            kids = list(dict.fromkeys(p[1] for p in tax.paths if p[0] == v and len(p) > 1))
            out.print(f"  {v}: {', '.join(kids)}", highlight=False)
    for a, vals in tax.attributes.items():
        out.print(f"  attribute {a}: {', '.join(vals)}", highlight=False)
    for r in rows or []:
        out.print(f"  {r['index']:4d} {r['imagenet'][:40]:40s} -> {r['node'] or 'none'}", highlight=False)


brand_app = typer.Typer(
    help="Brand tagging: OCR'd text matched against the brand list + a learned logo head.",
    epilog=(
        "Examples:\n\n  catalens brand train brands\n\n  catalens brand tag photo.jpg -c brands\n\n"
        "  catalens brand tag --all -c brands --json"
    ),
    no_args_is_help=True,
)


@brand_app.command(
    "train",
    epilog=(
        "Examples:\n\n  catalens brand train brands\n\n"
        "  catalens brand train brands --brand-col brand   (a brand column of the ingested manifest)\n\n"
        "  catalens brand train brands --min-examples 20 --model efficientnet-lite2 --json"
    ),
)
def brand_train(
    name: Annotated[str, typer.Argument(help="Brand tagger name (a new version is saved each time).")],
    model: Annotated[str | None, typer.Option(help="Embedding model (default: the catalog's).")] = None,
    min_examples: Annotated[
        int, typer.Option(min=2, help="Brands with fewer titled products get no logo class (OCR only).")
    ] = 10,
    brand_col: Annotated[
        str | None,
        typer.Option(help="Product attribute (manifest column) holding the brand; default: from titles."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Learn a brand tagger; brand labels come from --brand-col, else the title words before the gender word."""
    try:
        with _catalog() as cat:
            clf = cat.train_brand_tagger(name, model=model, min_examples=min_examples, brand_col=brand_col)
    except CatalensError as exc:
        _fail(exc)
    h = clf.head("brand")
    data = {
        "name": clf.name,
        "version": clf.version,
        "folder": str(clf.folder),
        "model": clf.model,
        "brands": len(h.classes),
        "brands_seen": len(clf.extra["brand"]["all_brands"]),
        "temperature": h.temperature,
        "threshold": h.threshold,
    }
    if as_json:
        print_json(data)
    else:
        out.print(
            f"saved {clf.name} {clf.version} -> {clf.folder}: {data['brands']} brands learned "
            f"(of {data['brands_seen']} seen), 'unknown' below {h.threshold:.2f}",
            highlight=False,
        )


@brand_app.command(
    "tag",
    epilog=(
        "Examples:\n\n  catalens brand tag photo.jpg -c brands\n\n"
        "  catalens brand tag a.jpg b.jpg -c brands --no-ocr --json\n\n"
        "  catalens brand tag --all -c brands   (stored as predictions, field 'brand')"
    ),
)
def brand_tag(
    paths: Annotated[list[Path] | None, typer.Argument(help="Image files.")] = None,
    classifier: Annotated[str, typer.Option("--classifier", "-c", help="Brand tagger name.")] = "brands",
    all_: Annotated[bool, typer.Option("--all", help="Tag every stored image and store the result.")] = False,
    ocr: Annotated[
        bool | None,
        typer.Option("--ocr/--no-ocr", help="Read text with OCR (default: on for files, off for --all)."),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Abstain threshold (default: the tagger's).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Brand of product photos: a read brand name wins, else the logo head, else 'unknown'."""
    _need_inputs(all_, paths, "tag")
    try:
        with _catalog() as cat:
            if all_:
                res: Any = cat.brands_all(classifier, ocr=bool(ocr), threshold=threshold).to_dict()
            else:
                tags = cat.brands(
                    [str(p) for p in paths or []], classifier, ocr=ocr is not False, threshold=threshold
                )
                res = [t.to_dict() for t in tags]
    except CatalensError as exc:
        _fail(exc)
    if as_json:
        print_json(res)
    elif all_:
        out.print(
            f"{res['images']} images tagged by {res['classifier']} in {res['seconds']} s; "
            f"{res['unknown']} unknown, {res['by_ocr']} read by OCR",
            highlight=False,
        )
        out.print("  " + ", ".join(f"{k} {v}" for k, v in list(res["brands"].items())[:10]), highlight=False)
    else:
        for r in res:
            out.print(f"{r['source']}: {r['brand']} ({r['prob']:.2f}, {r['by']})", highlight=False)


def _need_inputs(all_: bool, paths: list[Path] | None, verb: str) -> None:
    """Exit 2 with a message when neither image files nor ``--all`` were given."""
    if not all_ and not paths:
        err.print(f"error: give image files, or --all to {verb} the whole catalog")
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.add_typer(brand_app, name="brand")
    group = noun_group(
        app,
        "classify",
        "Classify photos, and train, evaluate and list classifiers: `catalens classify run|train|eval|list|taxonomy`."
        "\n\nExample: catalens classify photo.jpg   (= catalens classify run photo.jpg; --all for the whole catalog)",
        default="run",
    )
    group.command(
        "run",
        epilog=(
            "Examples:\n\n  catalens classify photo.jpg\n\n  catalens classify a.jpg b.jpg --json\n\n"
            "  catalens classify --all --classifier shop-types\n\n"
            "  catalens classify photo.jpg -c types-lite0+types-lite2   (ensemble)\n\n"
            "  catalens classify photo.jpg --zero-shot open_clip:ViT-B-32/path/to/weights.safetensors"
        ),
    )(classify)
    group.command(
        "train",
        epilog=(
            "Examples:\n\n  catalens classify train shop-types --labels labels.csv --field articleType\n\n"
            "  catalens classify train shop --labels labels.csv --field articleType --holdout-out test.csv   "
            "(then: catalens classify eval -c shop, or --labels test.csv)\n\n"
            "  catalens classify train tags --field masterCategory --field subCategory --field articleType "
            "--hierarchy 'masterCategory>subCategory>articleType' --drop-rare\n\n"
            "  catalens classify train colours --field baseColour --colour-features\n\n"
            "  catalens classify train few0 --labels ten_per_class.csv --field label --method prototype-lr; "
            "catalens classify train few2 ... --model efficientnet-lite2   (few examples; classify -c few0+few2)\n\n"
            "  catalens classify train tags --field articleType --field gender --calibration vector\n\n"
            "  catalens classify train fused --field articleType --text-model minilm --title-words   "
            "(image + title; classify with --title)\n\n"
            "  catalens classify train ft --labels labels.csv --field articleType --field gender --method finetune "
            "--unfreeze-blocks 2 --epochs 6   (then: catalens classify --all -c ft)\n\n"
            "  catalens classify train zs --method zeroshot --model hf:/path/to/clip --taxonomy shop.yaml "
            "--field articleType"
        ),
    )(train)
    group.command(
        "eval",
        epilog=(
            "Examples:\n\n  catalens classify eval --classifier shop-types --report report/   (its held-out split)\n\n"
            "  catalens classify eval --classifier shop-types --labels test.csv --report report/\n\n"
            "Label rows the classifier was trained on are refused (exit 2) unless --allow-train-overlap."
        ),
    )(eval_)
    app.command("colour", epilog="Examples:\n\n  catalens colour photo.jpg --json")(colour)
    group.command("list", epilog="Examples:\n\n  catalens classify list --json")(classifiers)
    group.command(
        "taxonomy",
        epilog="Examples:\n\n  catalens classify taxonomy\n\n  catalens classify taxonomy --mapping\n\n  catalens classify taxonomy my-shop.yaml",
    )(taxonomy)
    for old, new, fn in (
        ("train", "classify train", train),
        ("eval", "classify eval", eval_),
        ("classifiers", "classify list", classifiers),
        ("taxonomy", "classify taxonomy", taxonomy),
    ):
        deprecated_alias(app, old, new, fn)
