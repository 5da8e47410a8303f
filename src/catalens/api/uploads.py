"""Staging of uploaded files: images to ingest (kept under ``<home>/uploads``, since the catalogue
records their paths), URL lists and manifests (checked before a job starts), and query images
(a temporary file, removed after the request).

Everything is checked before anything is stored: each upload's size and header (format,
dimensions, pixel count, via :func:`catalens.imageio.probe`), each URL's scheme and address.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalens.config import Settings
from catalens.errors import BlockedAddressError, ConfigError, FetchError, ManifestError, TooLargeError
from catalens.imageio import probe
from catalens.ingest.fetch import check_url
from catalens.ingest.sources import MANIFEST_EXTENSIONS, ManifestColumns, is_url, iter_source

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Upload:
    filename: str
    data: bytes


@dataclass
class UrlItem:
    url: str
    product_id: str | None = None
    title: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


def safe_name(name: str, default: str = "upload") -> str:
    base = os.path.basename(name.replace("\\", "/")).strip()
    base = _SAFE.sub("_", base).strip("._")[:120]
    return base or default


def check_image_bytes(data: bytes, source: str, settings: Settings, max_bytes: int) -> str:
    """Raise an ImageError unless ``data`` is an acceptable image; returns its format."""
    if len(data) > max_bytes:
        raise TooLargeError(source, f"{len(data)} bytes is over the {max_bytes}-byte upload limit")
    fmt, _w, _h = probe(data, source, max_pixels=settings.max_pixels, max_side=settings.max_side)
    return fmt


def _new_dir(home: Path) -> Path:
    d = home / "uploads" / f"{secrets.token_hex(8)}"
    d.mkdir(parents=True, exist_ok=False)
    return d


def _write_manifest(folder: Path, rows: list[dict[str, Any]]) -> Path:
    path = folder / "manifest.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def _flatten(attrs: dict[str, Any]) -> dict[str, Any]:
    reserved = {"image", "id", "title"}
    bad = reserved & set(attrs)
    if bad:
        raise ConfigError(f"attribute names {sorted(bad)} are reserved")
    return attrs


def stage_images(
    home: Path,
    uploads: Sequence[Upload],
    settings: Settings,
    *,
    max_bytes: int,
    product_id: str | None = None,
    title: str | None = None,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """Check and store uploaded images; returns a manifest (image, id, title, attrs) to ingest.
    Without ``product_id`` each file becomes its own product named after the file."""
    if not uploads:
        raise ConfigError("no files uploaded")
    for up in uploads:
        check_image_bytes(up.data, up.filename or "upload", settings, max_bytes)
    folder = _new_dir(home)
    rows = []
    for i, up in enumerate(uploads):
        name = f"{i:04d}_{safe_name(up.filename)}"
        (folder / name).write_bytes(up.data)
        pid = product_id or Path(safe_name(up.filename, f"upload-{i}")).stem
        rows.append({"image": name, "id": pid, "title": title} | _flatten(dict(attrs or {})))
    return _write_manifest(folder, rows)


def check_fetch_url(url: str, *, allow_private: bool) -> None:
    """Refuse non-http(s) URLs and URLs whose host resolves to a private address. A host that
    does not resolve now is left to the job (it reports the failure per item)."""
    try:
        check_url(url, allow_private=allow_private)
    except BlockedAddressError:
        raise
    except FetchError as exc:
        if "cannot resolve host" not in exc.reason:
            raise


def stage_urls(home: Path, items: Sequence[UrlItem], *, allow_private: bool) -> Path:
    if not items:
        raise ConfigError("no URLs given")
    for it in items:
        check_fetch_url(it.url, allow_private=allow_private)
    folder = _new_dir(home)
    rows = [
        {"image": it.url, "id": it.product_id or it.url, "title": it.title} | _flatten(dict(it.attrs))
        for it in items
    ]
    return _write_manifest(folder, rows)


def stage_manifest(
    home: Path,
    upload: Upload,
    cols: ManifestColumns,
    *,
    allow_private: bool,
    allow_local_paths: bool,
) -> Path:
    """Store an uploaded manifest after checking every row: its images must be http(s) URLs
    (local paths only with ``allow_local_paths``, i.e. an admin key)."""
    suffix = Path(safe_name(upload.filename)).suffix.lower()
    if suffix not in MANIFEST_EXTENSIONS:
        raise ManifestError(
            f"{upload.filename!r}: a manifest must end in one of {', '.join(sorted(MANIFEST_EXTENSIONS))}"
        )
    folder = _new_dir(home)
    path = folder / f"manifest{suffix}"
    path.write_bytes(upload.data)
    try:
        n = 0
        for item in iter_source(path, cols):
            n += 1
            if item.url is None and item.error is None and not allow_local_paths:
                raise ManifestError(
                    f"row {n}: {item.source!r} is not an http(s) URL; "
                    "an uploaded manifest may reference local files only with an admin key"
                )
            if item.url is not None:
                check_fetch_url(item.url, allow_private=allow_private)
        if n == 0:
            raise ManifestError(f"{upload.filename!r}: no rows")
    except Exception:
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
        raise
    return path


@contextmanager
def query_image(upload: Upload, settings: Settings, *, max_bytes: int) -> Iterator[Path]:
    """A checked uploaded image as a temporary file, removed after use."""
    fmt = check_image_bytes(upload.data, upload.filename or "upload", settings, max_bytes)
    fd, name = tempfile.mkstemp(prefix="catalens-q-", suffix=f".{fmt.lower()}")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(upload.data)
        yield Path(name)
    finally:
        try:
            os.unlink(name)
        except OSError:
            pass


__all__ = ["Upload", "UrlItem", "is_url", "query_image", "stage_images", "stage_manifest", "stage_urls"]
