"""Turn a SOURCE argument into a stream of :class:`SourceItem` (one per image reference).

* a folder: every file, recursively, with an image extension or image magic bytes;
  the product id is the relative path without its extension;
* a manifest (``.csv``, ``.tsv``, ``.jsonl``/``.ndjson``, ``.parquet``): one row per image;
  image paths are relative to the manifest's folder, or http(s) URLs;
* ``.txt`` with one URL or path per line;
* an http(s) URL.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalens.errors import CatalensWarning, EmptyInputError, ManifestError

IMAGE_EXTENSIONS = {
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".dib",
    ".tif", ".tiff", ".heic", ".heif", ".avif",
}  # fmt: skip
MANIFEST_EXTENSIONS = {".csv", ".tsv", ".jsonl", ".ndjson", ".parquet", ".txt"}
IMAGE_COLUMNS = ("image", "image_path", "path", "file", "filename", "image_url", "url")
ID_COLUMNS = ("id", "product_id", "sku", "item_id")
TEXT_COLUMNS = ("title", "productDisplayName", "name", "text", "description")
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")


@dataclass
class SourceItem:
    source: str
    path: Path | None = None
    url: str | None = None
    product_id: str | None = None
    title: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class ManifestColumns:
    image: str | None = None
    id: str | None = None
    text: str | None = None
    labels: list[str] | None = None  # None: every other column


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def _looks_like_image(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return True  # let the decoder report why it cannot be read
    return head.startswith(_MAGIC) or head[4:12] in {b"ftypheic", b"ftypavif", b"ftypmif1", b"ftypheix"}


def iter_folder(root: Path) -> Iterator[SourceItem]:
    for path in sorted(
        p for p in root.rglob("*") if not any(part.startswith(".") for part in p.relative_to(root).parts)
    ):
        if not path.is_file() and not path.is_symlink():
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS and not _looks_like_image(path):
            continue
        rel = path.relative_to(root).with_suffix("").as_posix()
        yield SourceItem(source=str(path), path=path, product_id=rel)


def _pick(
    columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, file: Path
) -> str | None:
    if wanted is not None:
        if wanted not in columns:
            raise ManifestError(
                f"{file}: no column {wanted!r} for the {what}; columns are: {', '.join(columns)}"
            )
        return wanted
    lower = {c.lower(): c for c in columns}
    for cand in candidates:
        if cand.lower() in lower:
            return lower[cand.lower()]
    return None


def _read_rows(file: Path) -> tuple[list[str], Iterator[dict[str, Any]]]:
    suffix = file.suffix.lower()
    try:
        if suffix in {".csv", ".tsv"}:
            fh = open(file, newline="", encoding="utf-8-sig")
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            try:
                header = list(reader.fieldnames or [])
            except (UnicodeDecodeError, csv.Error) as exc:
                fh.close()
                raise ManifestError(f"{file}: cannot read the header: {exc}") from exc
            if not header:
                fh.close()
                raise ManifestError(f"{file}: empty file, no header row")

            def rows() -> Iterator[dict[str, Any]]:
                with fh:
                    try:
                        for row in reader:
                            if None in row:
                                row = dict(row)
                                extra = row.pop(None)
                                row["__error__"] = f"{len(extra)} more fields than the header"
                            yield row
                    except (UnicodeDecodeError, csv.Error) as exc:
                        raise ManifestError(f"{file}: line {reader.line_num}: {exc}") from exc

            return header, rows()
        if suffix in {".jsonl", ".ndjson"}:
            lines = file.read_text(encoding="utf-8").splitlines()
            parsed: list[dict[str, Any]] = []
            header_set: dict[str, None] = {}
            for n, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    if not isinstance(obj, dict):
                        raise ValueError("not a JSON object")
                except ValueError as exc:
                    parsed.append({"__error__": f"line {n}: invalid JSON ({exc})"})
                    continue
                header_set.update(dict.fromkeys(obj))
                parsed.append(obj)
            if not header_set:
                raise ManifestError(f"{file}: no JSON object rows")
            return list(header_set), iter(parsed)
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(file)
            return list(table.column_names), iter(table.to_pylist())
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{file}: cannot read manifest: {exc}") from exc
    except Exception as exc:  # pyarrow raises its own error types
        if type(exc).__module__.startswith("pyarrow"):
            raise ManifestError(f"{file}: not a readable Parquet file: {exc}") from exc
        raise
    raise ManifestError(f"{file}: unknown manifest type {suffix!r}; use .csv, .tsv, .jsonl or .parquet")


def iter_manifest(file: Path, cols: ManifestColumns) -> Iterator[SourceItem]:
    if file.suffix.lower() == ".txt":
        yield from iter_list(file)
        return
    header, rows = _read_rows(file)
    image_col = _pick(header, cols.image, IMAGE_COLUMNS, "image path or URL", file)
    if image_col is None:
        raise ManifestError(
            f"{file}: no image column found (looked for {', '.join(IMAGE_COLUMNS)}); name it with --image-col"
        )
    id_col = _pick(header, cols.id, ID_COLUMNS, "product id", file)
    text_col = _pick(header, cols.text, TEXT_COLUMNS, "text", file)
    if cols.labels is not None:
        for label in cols.labels:
            _pick(header, label, (), "label", file)
        label_cols = list(cols.labels)
    else:
        label_cols = [c for c in header if c not in {image_col, id_col, text_col}]
    base = file.parent
    for n, row in enumerate(rows, 1):
        where = f"{file}:row {n}"
        if "__error__" in row:
            yield SourceItem(source=where, error=str(row["__error__"]))
            continue
        ref = row.get(image_col)
        ref = "" if ref is None else str(ref).strip()
        if not ref:
            yield SourceItem(source=where, error=f"empty {image_col!r} column")
            continue
        pid = row.get(id_col) if id_col else None
        pid_s = str(pid).strip() if pid not in (None, "") else None
        title = row.get(text_col) if text_col else None
        attrs = {c: row.get(c) for c in label_cols if row.get(c) not in (None, "")}
        if is_url(ref):
            item = SourceItem(source=ref, url=ref)
        else:
            path = Path(ref) if Path(ref).is_absolute() else base / ref
            item = SourceItem(source=str(path), path=path)
            if pid_s is None:
                pid_s = Path(ref).with_suffix("").as_posix()
        item.product_id = pid_s or (ref if item.url else None)
        item.title = str(title) if title not in (None, "") else None
        item.attrs = attrs
        yield item


def iter_list(file: Path) -> Iterator[SourceItem]:
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{file}: cannot read list: {exc}") from exc
    for line in lines:
        ref = line.strip()
        if not ref or ref.startswith("#"):
            continue
        if is_url(ref):
            yield SourceItem(source=ref, url=ref, product_id=ref)
        else:
            path = Path(ref) if Path(ref).is_absolute() else file.parent / ref
            yield SourceItem(source=str(path), path=path, product_id=Path(ref).with_suffix("").as_posix())


def _max_product_id_len() -> int:
    from catalens.catalog.schema import Product

    return int(Product.__table__.c.id.type.length)


def _checked(items: Iterator[SourceItem]) -> Iterator[SourceItem]:
    """An item whose product id is longer than the catalog's column becomes a per-item failure, on
    every database alike (PostgreSQL refuses the value, and with it the whole batch; SQLite would
    keep it)."""
    limit = _max_product_id_len()
    for item in items:
        if item.product_id is not None and len(item.product_id) > limit:
            yield SourceItem(
                source=item.source,
                error=f"product id of {len(item.product_id)} characters is longer than the catalog's "
                f"limit of {limit}; give the rows a shorter id column",
            )
        else:
            yield item


def iter_source(source: str | Path, cols: ManifestColumns | None = None) -> Iterator[SourceItem]:
    """Items of one SOURCE: folder, manifest, URL list or single URL / file."""
    yield from _checked(_iter_source(source, cols))


def _iter_source(source: str | Path, cols: ManifestColumns | None = None) -> Iterator[SourceItem]:
    text = str(source)
    if is_url(text):
        yield SourceItem(source=text, url=text, product_id=text)
        return
    path = Path(text)
    if path.is_dir():
        yield from iter_folder(path)
    elif path.suffix.lower() in MANIFEST_EXTENSIONS and path.is_file():
        yield from iter_manifest(path, cols or ManifestColumns())
    elif path.exists():
        yield SourceItem(source=str(path), path=path, product_id=path.stem)
    else:
        raise ManifestError(f"{text}: no such file, folder or URL")


def empty_source_message(source: str | Path) -> str:
    """What to say about a SOURCE that held no image: an empty folder, a manifest without rows."""
    path = Path(str(source))
    if path.is_dir():
        exts = " ".join(sorted(IMAGE_EXTENSIONS))
        return f"{source}: no images in this folder (looked recursively for {exts} and image magic bytes)"
    if path.suffix.lower() in MANIFEST_EXTENSIONS:
        return f"{source}: the manifest has no rows"
    return f"{source}: holds no image"


def refuse_empty(empty: list[str], allow_empty: bool) -> None:
    """Raise :class:`EmptyInputError` naming the ``empty`` sources; with ``allow_empty``, warn instead
    (:class:`CatalensWarning`) and let the job run on what there is."""
    if not empty:
        return
    msg = "; ".join(empty_source_message(src) for src in empty)
    if not allow_empty:
        raise EmptyInputError(f"{msg}. Nothing to do: check the path, or pass --allow-empty to accept it")
    import warnings

    warnings.warn(msg, CatalensWarning, stacklevel=3)
